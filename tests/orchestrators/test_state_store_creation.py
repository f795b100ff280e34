"""The run state store is created like the MLflow store: once, under a cross-process lock
(a file lock for SQLite, an advisory lock for PostgreSQL), a new SQLite file appearing whole;
and a state store that cannot be used is a one-line user error found before anything runs."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.stores_support import (
    FAULT_TIMEOUT_S,
    PIPE,
    error_lines,
    immutable,
    run_cli,
    silent_port,
)

from stackwise.orchestrators.local import StateStore

WritePipeline = Callable[..., str]


def _fails_cleanly(project: Path, ref: str, url: str, *expected: str) -> str:
    (project / "stackwise.yaml").write_text(f"state_store: '{url}'\n")
    code, out, err, _ = run_cli(project, "run", ref, timeout=FAULT_TIMEOUT_S)
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("state store error: the run state store "), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    assert out == ""
    assert not (project / ".stackwise" / "mlflow.db").exists()  # stopped before tracking
    return lines[0]


@pytest.fixture
def silent() -> Iterator[int]:
    with silent_port() as port:
        yield port


def test_state_store_in_a_read_only_folder(project: Path, write_pipeline: WritePipeline) -> None:
    folder = project / "readonly"
    folder.mkdir()
    with immutable(folder):
        _fails_cleanly(
            project, write_pipeline(PIPE), f"sqlite:///{folder}/state.db",
            "read-only folder", str(folder), "state_store",
        )  # fmt: skip
    assert list(folder.iterdir()) == []


def test_existing_read_only_state_store(project: Path, write_pipeline: WritePipeline) -> None:
    db = project / "kept" / "state.db"
    StateStore(f"sqlite:///{db}").engine.dispose()
    with immutable(db):
        _fails_cleanly(project, write_pipeline(PIPE), f"sqlite:///{db}", "is read-only", str(db))
    assert StateStore(f"sqlite:///{db}").list_runs() == []


def test_postgres_state_store_that_refuses(project: Path, write_pipeline: WritePipeline) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"
    _fails_cleanly(project, write_pipeline(PIPE), url, url, "cannot be reached", "refused")


def test_postgres_state_store_host_that_never_answers(
    project: Path, write_pipeline: WritePipeline, silent: int
) -> None:
    url = f"postgresql://nobody@127.0.0.1:{silent}/none"
    _fails_cleanly(project, write_pipeline(PIPE), url, url, "cannot be reached", "timeout")


def test_leftovers_of_a_killed_creator_are_removed(project: Path) -> None:
    """A creator SIGKILLed mid-build leaves only its temporary file (and journal), never a
    partial store under the real name; the next opener removes them and creates it whole."""
    db = project / ".stackwise" / "state.db"
    db.parent.mkdir()
    killed = db.parent / ".state.db.tmp-4242-deadbeef"
    leftovers = [killed, killed.with_name(killed.name + "-journal")]
    for path in leftovers:
        path.write_bytes(b"partial")
    state = StateStore(f"sqlite:///{db}")
    assert state.list_runs() == []
    assert not any(p.exists() for p in leftovers)


def test_fresh_postgres_state_store_created_by_four_processes_at_once(pg_url: str) -> None:
    name = f"sw_state_{uuid.uuid4().hex[:10]}"
    host = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["createdb", *host, name], check=True)
    try:
        url = pg_url.rsplit("/", 1)[0] + "/" + name
        code = (
            "import sys; from stackwise.orchestrators.local import StateStore;"
            "from stackwise.scheduling.ledger import IntervalLedger;"
            "IntervalLedger(StateStore(sys.argv[1]))"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
        assert StateStore(url).list_runs() == []
    finally:
        subprocess.run(["dropdb", *host, "--force", name], check=True)
