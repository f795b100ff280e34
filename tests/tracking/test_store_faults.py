"""Every kind of bad tracking store is a user error found before anything runs: exit 2 in
seconds (not MLflow's ~105 s of retries, then exit 3 and a traceback), one line that names
the store, the problem and the fix, and no run recorded anywhere.

Times to the error are measured by benchmarks/store_faults.py; here a generous subprocess
timeout only tells "seconds" from MLflow's retry loop."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import free_port
from tests.stores_support import (
    FAULT_TIMEOUT_S,
    PIPE,
    error_lines,
    immutable,
    run_cli,
    silent_port,
    state_runs,
)

WritePipeline = Callable[..., str]


@pytest.fixture
def silent() -> Iterator[int]:
    with silent_port() as port:
        yield port


def _fails_cleanly(project: Path, ref: str, uri: str, *expected: str) -> str:
    (project / "stackwise.yaml").write_text(f"tracking_uri: '{uri}'\n")
    code, out, err, _ = run_cli(project, "run", ref, timeout=FAULT_TIMEOUT_S)
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("tracking error: the MLflow tracking store "), line
    assert "Traceback" not in err and "internal error" not in err
    for text in expected:
        assert text in line, line
    assert out == ""
    assert state_runs(project) == 0  # nothing ran
    return line


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file://{project}/mlruns", ["maintenance mode", "sqlite:///", "MLFLOW_ALLOW_FILE_STORE"]),
        ("mlruns", ["maintenance mode", "sqlite:///"]),
        ("postgresql://postgres@127.0.0.1:abc/test", ["not a valid database URL", "abc"]),
        ("http://127.0.0.1:abc", ["not a valid URL", "port"]),
        ("foo://bar", ["unknown scheme 'foo'", "sqlite://", "postgresql://"]),
        ("htp://127.0.0.1:5000", ["unknown scheme 'htp'", "did you mean 'http'"]),
        ("postgresql://nobody@127.0.0.1:1/none", ["cannot be reached", "Connection refused"]),
    ],
    ids=["file-uri", "bare-folder", "bad-port", "bad-http-port", "unknown-scheme", "typo-scheme",
         "refused"],
)  # fmt: skip
def test_bad_tracking_uri_is_a_one_line_user_error(
    project: Path, write_pipeline: WritePipeline, uri: str, expected: list[str]
) -> None:
    uri = uri.format(project=project)
    _fails_cleanly(project, write_pipeline(PIPE), uri, uri, *expected)
    assert not (project / "mlruns").exists()  # nothing was created for the refused store


def test_database_host_that_never_answers_fails_after_a_short_timeout(
    project: Path, write_pipeline: WritePipeline, silent: int
) -> None:
    uri = f"postgresql://nobody@127.0.0.1:{silent}/none"
    _fails_cleanly(project, write_pipeline(PIPE), uri, uri, "cannot be reached", "timeout")


def test_sqlite_store_in_a_read_only_folder(project: Path, write_pipeline: WritePipeline) -> None:
    folder = project / "readonly"
    folder.mkdir()
    with immutable(folder):
        line = _fails_cleanly(
            project, write_pipeline(PIPE), f"sqlite:///{folder}/mlflow.db",
            "read-only folder", str(folder), "writable",
        )  # fmt: skip
    assert list(folder.iterdir()) == []
    assert "mlflow.db" in line


def test_existing_read_only_sqlite_store(
    project: Path, write_pipeline: WritePipeline, mlflow_db_template: Path
) -> None:
    db = project / "kept" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(mlflow_db_template, db)
    before = db.read_bytes()
    with immutable(db):
        _fails_cleanly(
            project, write_pipeline(PIPE), f"sqlite:///{db}", "is read-only", str(db), "writable"
        )
    assert db.read_bytes() == before


def test_the_ui_command_checks_the_store_too(project: Path) -> None:
    (project / "stackwise.yaml").write_text("tracking_uri: 'foo://bar'\n")
    code, _, err, _ = run_cli(project, "ui", "--port", str(free_port()), timeout=FAULT_TIMEOUT_S)
    assert code == 2, err
    assert len(error_lines(err)) == 1, err
    assert "unknown scheme 'foo'" in err
