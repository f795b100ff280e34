"""The embedded MLflow store stackwise owns runs in WAL mode with synchronous=NORMAL on
stackwise's own engine; `durability: full` and a store the user names are left as MLflow
configures them (rollback journal, full sync)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import stackwise
from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator
from stackwise.tracking import durability
from stackwise.tracking.mlflow_tracker import tracker_for

PIPELINE = """
import stackwise as sw

@sw.step
def a() -> int:
    return 1

@sw.step
def b(x: int) -> int:
    return x + 1

@sw.pipeline
def pipe():
    b(a())
"""


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(durability.ENV, "[]")


def _journal(uri: str) -> str:
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def _synchronous(uri: str) -> int:
    """The setting of a connection of stackwise's own MLflow engine (0 off, 1 normal, 2 full)."""
    engine: Any = tracker_for(uri).client._tracking_client.store.engine
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar())


def _run(stack: StackConfig, write_pipeline: Any) -> None:
    record = LocalOrchestrator(stack).run(stackwise.load_pipeline(write_pipeline(PIPELINE)))
    assert record.status == "SUCCEEDED"


def test_the_default_store_runs_in_wal_mode_with_normal_sync(
    project: Path, write_pipeline: Any
) -> None:
    stack = StackConfig(base_dir=project)
    _run(stack, write_pipeline)
    uri = stack.tracking_uri_resolved
    assert durability.relaxed(uri)
    assert _journal(uri) == "wal"
    assert _synchronous(uri) == 1


def test_durability_full_keeps_mlflows_full_sync(project: Path, write_pipeline: Any) -> None:
    stack = StackConfig(base_dir=project, durability="full")
    _run(stack, write_pipeline)
    uri = stack.tracking_uri_resolved
    assert not durability.relaxed(uri)
    assert _journal(uri) == "delete"
    assert _synchronous(uri) == 2


def test_a_store_the_user_names_is_left_as_configured(project: Path, write_pipeline: Any) -> None:
    uri = f"sqlite:///{project / 'mine.db'}"
    stack = StackConfig(base_dir=project, tracking_uri=uri)
    assert not stack.owns_tracking_store
    _run(stack, write_pipeline)
    assert not durability.relaxed(uri)
    assert _journal(uri) == "delete"
    assert _synchronous(uri) == 2


def test_worker_processes_inherit_the_choice_and_a_bad_value_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json
    import os

    durability.relax("sqlite:////data/a.db")
    durability.relax("sqlite:////data/a.db")
    durability.relax("postgresql://db/x")  # a server is never touched
    assert json.loads(os.environ[durability.ENV]) == ["sqlite:////data/a.db"]
    monkeypatch.setenv(durability.ENV, "not json")
    assert not durability.relaxed("sqlite:////data/a.db")
