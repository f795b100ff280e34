"""A real `mlflow server` on a fresh PostgreSQL database (127.0.0.1:5432, trust auth) for the
benchmarks, and readers of what its worker processes use.

The server's configuration is `ServerSetup`: its HTTP server (uvicorn, MLflow's default, or
gunicorn's sync workers), how many workers, and PostgreSQL's `synchronous_commit` for the
server's own connections (`on`, PostgreSQL's default, or `off`: PostgreSQL documents that a
crash can then lose the last transactions reported committed, up to three times
wal_writer_delay, and never corrupts the database;
https://www.postgresql.org/docs/current/wal-async-commit.html). The state store databases
stackwise writes to are always left at PostgreSQL's default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
#: The server tracks and does nothing else. MLflow 3's server also starts its job runners by
#: default (7 Huey consumer processes for GenAI jobs here), which poll whether or not there is
#: work: they took ~0.4 of this machine's 2 cores all along, a third of what --parallel 2 has
#: to spare. A tracking-only deployment turns them off the same way.
SERVER_ENV = {"MLFLOW_TRACKING_URI": "", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclasses.dataclass(frozen=True)
class ServerSetup:
    """How the benchmark's `mlflow server` is run (see the module docstring)."""

    gunicorn: bool = False
    workers: int = 4
    synchronous_commit: str = "on"

    def env(self) -> dict[str, str]:
        """The server's environment on top of this process's."""
        env = dict(SERVER_ENV)
        if self.synchronous_commit != "on":  # libpq passes PGOPTIONS to every connection
            env["PGOPTIONS"] = f"-c synchronous_commit={self.synchronous_commit}"
        return env

    def describe(self) -> str:
        served = "gunicorn sync workers" if self.gunicorn else "uvicorn, MLflow's default"
        commit = (
            "PostgreSQL's default synchronous_commit=on"
            if self.synchronous_commit == "on"
            else f"synchronous_commit={self.synchronous_commit} on the server's connections"
        )
        return f"{self.workers} workers: {served}; {commit}; job runners off"


@contextlib.contextmanager
def postgres_server(
    folder: Path, setup: ServerSetup | None = None
) -> Iterator[tuple[str, Callable[[str], str], Callable[[], dict[int, float]]]]:
    """A real `mlflow server` on a fresh PostgreSQL database, configured by `setup`, a maker of
    fresh state store databases, and a reader of the CPU seconds each of the server's worker
    processes has used so far; everything is stopped and dropped on the way out."""
    setup = setup or ServerSetup()
    import sqlalchemy as sa

    admin = sa.create_engine(f"{PG}/test", isolation_level="AUTOCOMMIT")
    tag = uuid.uuid4().hex[:8]
    made: list[str] = []

    def database(name: str) -> str:  # name: [a-z0-9_]
        full = f"swbench_{tag}_{name}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{full}"'))
        made.append(full)
        return f"{PG}/{full}"

    port = _free_port()
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", database("mlflow"),
         "--artifacts-destination", str(folder / "server-artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(setup.workers),
         *(["--gunicorn-opts", "--worker-class=sync"] if setup.gunicorn else [])],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **setup.env()},
        start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_http(uri + "/health", server, folder / "server.log")
        yield uri, lambda which: database(f"state{which}"), lambda: _workers_cpu_s(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        with admin.connect() as conn:
            for name in made:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _workers_cpu_s(root: int) -> dict[int, float]:
    """CPU seconds used so far by each process under `root` that has no child of its own (the
    server's workers: `mlflow server` starts uvicorn or gunicorn, which starts them), by pid
    (Linux /proc)."""
    tick, parents, cpu = os.sysconf("SC_CLK_TCK"), {}, {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[pid] = int(fields[1])  # fields: state, ppid, ..., utime (11), stime (12)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick

    def under_root(pid: int) -> bool:
        while pid in parents and pid != root:
            pid = parents[pid]
        return pid == root

    has_child = set(parents.values())
    return {p: t for p, t in cpu.items() if p != root and p not in has_child and under_root(p)}


def busiest_share(before: dict[int, float], after: dict[int, float]) -> float:
    """Of the CPU the server's workers used between two readings, the share of the busiest
    one (a worker that started or ended in between is left out): 1/workers when requests
    spread evenly, 1.0 when one worker served them all."""
    used = [after[p] - before[p] for p in before.keys() & after.keys()]
    return max(used) / sum(used) if used and sum(used) > 0 else 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mlflow server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"mlflow server did not answer {url} within 120 s")
