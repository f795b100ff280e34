"""Store faults and first starts, as a user meets them: the time `stackwise run` takes to
fail on each kind of bad tracking or state store (with its exit code and message), and
`--rounds` pairs of `stackwise run` started at once in fresh projects.

    python benchmarks/stores.py [--rounds 5] [--skip-concurrent]

The read-only cases use `chattr +i` (root with CAP_LINUX_IMMUTABLE on ext4/xfs); without it
they are reported as not measured. The PostgreSQL cases expect nothing on 127.0.0.1:1.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

PIPE = """
from stackwise import pipeline, step

@step
def make() -> int:
    return 1

@step
def use(x: int) -> int:
    return x + 1

@pipeline
def pipe():
    use(make())
"""


@contextlib.contextmanager
def project() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="stackwise-bench-"))
    (folder / "pipe.py").write_text(textwrap.dedent(PIPE))
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, timeout: float = 300) -> tuple[int, float, str]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "stackwise", "run", "pipe.py:pipe"], cwd=folder,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, time.perf_counter() - started, lines[-1] if lines else ""


def immutable(path: Path) -> bool:
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


def fault(name: str, key: str, value: str, setup: str | None = None) -> None:
    with project() as folder:
        value = value.format(folder=folder)
        if setup == "ro-folder":
            (folder / "ro").mkdir()
            if not immutable(folder / "ro"):
                print(f"{name:34s} not measured (chattr +i refused)")
                return
        if setup == "ro-file":
            (folder / "ro").mkdir()
            seed = folder / "seed"
            seed.mkdir()
            (seed / "pipe.py").write_text(textwrap.dedent(PIPE))
            (seed / "stackwise.yaml").write_text(f"{key}: '{value}'\n")
            run(seed)  # creates the store
            if not immutable(Path(value.removeprefix("sqlite:///"))):
                print(f"{name:34s} not measured (chattr +i refused)")
                return
        (folder / "stackwise.yaml").write_text(f"{key}: '{value}'\n")
        code, seconds, line = run(folder)
        print(f"{name:34s} exit {code}  {seconds:6.2f} s  {line[:150]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-concurrent", action="store_true")
    args = parser.parse_args()

    with socket.socket() as silent:  # accepts (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        cases = [
            ("tracking: sqlite, read-only folder", "tracking_uri", "sqlite:///{folder}/ro/m.db",
             "ro-folder"),
            ("tracking: sqlite, read-only db", "tracking_uri", "sqlite:///{folder}/ro/m.db",
             "ro-file"),
            ("tracking: file:// folder", "tracking_uri", "file://{folder}/mlruns", None),
            ("tracking: bare folder", "tracking_uri", "mlruns", None),
            ("tracking: non-numeric port", "tracking_uri", "postgresql://u@127.0.0.1:abc/d", None),
            ("tracking: unknown scheme", "tracking_uri", "foo://bar", None),
            ("tracking: refused", "tracking_uri", "postgresql://nobody@127.0.0.1:1/none", None),
            ("tracking: host never answers", "tracking_uri",
             f"postgresql://nobody@127.0.0.1:{port}/none", None),
            ("state: sqlite, read-only folder", "state_store", "sqlite:///{folder}/ro/s.db",
             "ro-folder"),
            ("state: refused", "state_store", "postgresql://nobody@127.0.0.1:1/none", None),
            ("state: host never answers", "state_store",
             f"postgresql://nobody@127.0.0.1:{port}/none", None),
        ]  # fmt: skip
        for case in cases:
            fault(*case)

    if not args.skip_concurrent:
        ok = 0
        for i in range(args.rounds):
            with project() as folder:
                started = time.perf_counter()
                cmd = [sys.executable, "-m", "stackwise", "run", "pipe.py:pipe"]
                procs = [subprocess.Popen(cmd, cwd=folder, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL) for _ in range(2)]  # fmt: skip
                codes = [p.wait(300) for p in procs]
                ok += codes == [0, 0]
                print(f"two first starts, round {i + 1}: exits {codes}  "
                      f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        print(f"two first starts: {ok} of {args.rounds} rounds had both succeed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
