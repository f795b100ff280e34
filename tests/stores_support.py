"""Helpers for the store creation and store fault tests (imported as `tests.stores_support`).

Tests run as root, who passes every permission-bit check, so "read-only" is made real with
the immutable attribute (`chattr +i`, ext4 here, needs CAP_LINUX_IMMUTABLE): then even root
gets EPERM when creating a file in the folder or opening the file for writing, as a user gets
EACCES from a read-only folder, or anyone EROFS from a read-only mount.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support import stackwise_cmd

PIPE = """
    from stackwise import Schedule, pipeline, step


    @step
    def make() -> int:
        return 1


    @step
    def use(x: int) -> int:
        return x + 1


    @pipeline(schedule=Schedule("@daily", start="2026-01-01"))
    def pipe():
        use(make())
"""

#: Far below MLflow's ~105 s of retries on a dead store, far above the few seconds expected.
FAULT_TIMEOUT_S = 60.0


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """`chattr +i path` for the block (a folder: no file can be created in it)."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A local TCP port that accepts connections (the kernel does) but never answers, as a
    firewalled or hung database server."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def run_cli(cwd: Path, *args: str, timeout: float = 180.0) -> tuple[int, str, str, float]:
    """`python -m stackwise ARGS` in `cwd`: exit code, stdout, stderr, seconds taken."""
    started = time.monotonic()
    proc = subprocess.run(
        stackwise_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def state_runs(project: Path) -> int:
    """Runs recorded in the project's default SQLite state store (0 when there is none)."""
    db = project / ".stackwise" / "state.db"
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "stackwise_runs" not in tables:
            return 0
        return int(conn.execute("SELECT COUNT(*) FROM stackwise_runs").fetchone()[0])


def schema_revisions(db: Path) -> list[str]:
    """Rows of MLflow's alembic_version in a SQLite store."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]


def mlflow_head() -> str:
    """The schema revision this MLflow creates and expects."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())
