"""Intervals of a backfill (or of the scheduler's catch-up) start at once on threads of one
process and share one tracker per store: its MLflow client is made once, so the durability
settings are registered once on MLflow's shared engine, never while another thread connects
through it (which failed an interval with "MlflowException: deque mutated during iteration").
Pointing MLflow's fluent API at a store writes nothing to the environment, which other threads
iterate (a variable deleted meanwhile failed a step with KeyError: 'MLFLOW_TRACKING_URI')."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from stackwise.config import StackConfig
from stackwise.tracking import durability
from stackwise.tracking.mlflow_tracker import MlflowTracker, tracker_for

THREADS = 8
#: Environment writes (os.putenv / os.unsetenv audit events) seen while a test watches.
_env_writes: list[tuple[str, str]] = []
_watching = threading.Event()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _watching.is_set() and event in ("os.putenv", "os.unsetenv"):
        _env_writes.append((event, os.fsdecode(args[0])))


sys.addaudithook(_audit)  # hooks cannot be removed: it records only while a test watches


def _durability_listeners(engine: Any) -> int:
    return sum(
        1 for fn in engine.pool.dispatch.connect if fn.__qualname__ == "apply.<locals>.on_connect"
    )


def test_threads_first_using_a_tracker_at_once_share_one_client(
    stack: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(durability.ENV, "[]")
    uri = stack.tracking_uri_resolved
    durability.relax(uri)
    tracker = tracker_for(uri)
    start = threading.Barrier(THREADS)
    clients: list[Any] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        start.wait()
        try:
            client = tracker.client
            # What an interval does next: create or find its experiment (it connects).
            tracker.experiment_id("pipe", None)
            clients.append(client)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len({id(c) for c in clients}) == 1, "each thread made its own MLflow client"
    engine = tracker.client._tracking_client.store.engine
    assert _durability_listeners(engine) == 1
    with engine.connect() as conn:  # and the settings hold on the shared engine
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1


def test_switching_the_fluent_api_between_stores_writes_nothing_to_the_environment(
    project: Path, mlflow_db_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trackers = []
    for name in ("a.db", "b.db"):
        shutil.copyfile(mlflow_db_template, project / name)
        trackers.append(MlflowTracker(f"sqlite:///{project / name}"))
        _ = trackers[-1].client
    _env_writes.clear()
    _watching.set()
    try:
        for tracker in (*trackers, *trackers):
            tracker.activate()
            assert mlflow.get_tracking_uri() == tracker.uri
    finally:
        _watching.clear()
    assert _env_writes == []
    assert "MLFLOW_TRACKING_URI" not in os.environ
