"""Two backfills started at the same moment on overlapping ranges, against one state store
(SQLite, then PostgreSQL): the interval ledger lets exactly one of them run each interval, so
every step of every interval executes exactly once and each interval has one run."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sched_support import (
    all_runs,
    day,
    days,
    executions,
    parents,
    pipe_source,
    run_cli,
    set_behaviour,
    stackwise_cmd,
)
from tests.support import start_together

from stackwise.config import StackConfig, load_stack
from stackwise.orchestrators.local import StateStore
from stackwise.scheduling.ledger import IntervalLedger

WritePipeline = Callable[..., str]

RANGES = (("2026-01-01", "2026-01-12"), ("2026-01-06", "2026-01-18"))


def _race(project: Path, ref: str) -> list[tuple[int, dict[str, Any], str]]:
    """Start both backfills together; return each one's exit code, JSON report and stderr."""
    commands = [stackwise_cmd("backfill", ref, "--start", lo, "--end", hi, "--parallel", "2",
                              "--workers", "processes", "--json")
                for lo, hi in RANGES]  # fmt: skip
    results = []
    for code, out, err in start_together(project, *commands):
        try:
            report = json.loads(out)
        except json.JSONDecodeError:
            raise AssertionError(f"exit {code}\n{out}\n{err}") from None
        results.append((code, report, err))
    return results


def _check_each_interval_ran_once(
    project: Path, stack: StackConfig, pipeline: str, ref: str
) -> None:
    # Slow in the backfills' own processes, so that their worker processes (which take a
    # moment to start) run most intervals: four processes race for the same rows.
    set_behaviour(project, sleep={"extract": {"*": 0.2}}, outside_workers={"extract": 1.5})
    # The stores' tables exist before the race: this is about claiming intervals. Creating a
    # fresh store from two processes at once is test_fresh_state_store_opened_at_once_by_two.
    IntervalLedger(StateStore(load_stack().state_store_resolved))

    results = _race(project, ref)

    everything = days("2026-01-01", "2026-01-18")
    for (code, report, err), (lo, hi) in zip(results, RANGES, strict=True):
        assert code == 0, (report, err)
        assert [day(i["logical_date"]) for i in report["intervals"]] == days(lo, hi)
        assert {i["status"] for i in report["intervals"]} <= {"SUCCEEDED", "SKIPPED"}
        assert report["mode"] == "processes", err  # each with two worker processes
    ran = Counter(
        day(i["logical_date"])
        for _, report, _ in results
        for i in report["intervals"]
        if i["status"] == "SUCCEEDED"
    )
    assert ran == Counter(everything), ran
    # Each ran at least the days only its own range covers.
    assert all(r["counts"].get("SUCCEEDED", 0) >= 5 for _, r, _ in results)

    counted = Counter((e["step"], day(e["logical_date"])) for e in executions(project))
    pids = {e["pid"] for e in executions(project)}
    assert len(pids) > 2, pids  # the backfills' worker processes ran intervals too
    duplicates = {k: n for k, n in counted.items() if n > 1}
    assert not duplicates, duplicates
    assert counted == Counter(
        {(s, d): 1 for s in ("extract", "transform", "load") for d in everything}
    )

    state = StateStore(load_stack().state_store_resolved)
    rows = IntervalLedger(state).rows(pipeline)
    assert sorted(day(r.interval_start) for r in rows.values()) == everything
    assert {r.status for r in rows.values()} == {"SUCCEEDED"}
    runs = state.list_runs(limit=100, pipeline=pipeline)
    assert len(runs) == 18 and {r.status for r in runs} == {"SUCCEEDED"}
    assert {r.run_id for r in rows.values()} == {r.run_id for r in runs}

    mlflow_runs = all_runs(stack.tracking_uri_resolved, pipeline)
    tops = parents(mlflow_runs)
    assert sorted(day(r.data.tags["stackwise.logical_date"]) for r in tops) == everything
    assert {r.info.status for r in mlflow_runs} == {"FINISHED"}


def test_overlapping_backfills_on_sqlite_run_each_interval_once(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(pipe_source('Schedule("@daily", start="2026-01-01")'))
    assert stack.state_store_resolved.startswith("sqlite:///")

    _check_each_interval_ran_once(project, stack, "pipe", ref)


@pytest.mark.slow
def test_overlapping_backfills_on_postgres_run_each_interval_once(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, pg_url: str
) -> None:
    # The driver is named explicitly here (psycopg 3, what the `postgres` extra installs); the
    # bare postgresql:// form is covered by test_postgres_state_store_url_as_documented_works.
    url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"bf_{uuid.uuid4().hex[:12]}"
    (project / "stackwise.yaml").write_text(f"state_store: {url}\n")
    ref = write_pipeline(pipe_source('Schedule("@daily", start="2026-01-01")', name=name))
    assert load_stack().state_store_resolved == url

    _check_each_interval_ran_once(project, stack, name, ref)


@pytest.mark.slow
def test_postgres_state_store_url_as_documented_works(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, pg_url: str
) -> None:
    """`state_store: postgresql://user@host:5432/db` (the README's form) with the driver the
    `postgres` extra installs (psycopg 3)."""
    assert pg_url.startswith("postgresql://")
    name = f"bf_{uuid.uuid4().hex[:12]}"
    (project / "stackwise.yaml").write_text(f"state_store: {pg_url}\n")
    ref = write_pipeline(pipe_source('Schedule("@daily", start="2026-01-01")', name=name))

    result = run_cli(project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-02")

    assert result.returncode == 0, result.stderr
    assert executions(project) and len(executions(project)) == 6
    state = StateStore(pg_url)
    rows = IntervalLedger(state).rows(name)
    assert sorted(day(r.interval_start) for r in rows.values()) == days("2026-01-01", "2026-01-02")
    assert {r.status for r in rows.values()} == {"SUCCEEDED"}


def test_fresh_state_store_opened_at_once_by_two(project: Path, stack: StackConfig) -> None:
    """Two backfills started together in a fresh project both create the state store's tables.
    Made deterministic: another connection holds SQLite's write lock while both openers look
    for the tables (reads go on in WAL mode), then lets go, so both try to create them."""
    url = stack.state_store_resolved
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    errors: list[str] = []

    def open_store() -> None:
        try:
            IntervalLedger(StateStore(url))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])

    openers = [threading.Thread(target=open_store) for _ in range(2)]
    db.execute("BEGIN IMMEDIATE")
    try:
        for t in openers:
            t.start()
        time.sleep(1.5)
    finally:
        db.execute("ROLLBACK")
        db.close()
    for t in openers:
        t.join(timeout=60)

    assert errors == []
    state = StateStore(url)
    assert state.list_runs() == []
    assert IntervalLedger(state).rows("pipe") == {}


def test_a_backfill_waits_for_an_interval_another_process_runs_and_takes_it_over_if_it_dies(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    """Never exit 0 with an interval left unrun: an interval claimed by a live process is
    waited for, and when that process is SIGKILLed the waiting backfill resumes it."""
    import os
    import signal

    from tests.support import wait_until

    ref = write_pipeline(pipe_source('Schedule("@daily", start="2026-01-01")'))
    set_behaviour(project, sleep={"transform": {"2026-01-02": 60, "*": 0}})
    first = subprocess.Popen(
        stackwise_cmd("backfill", ref, "--start", "2026-01-02", "--end", "2026-01-02"),
        cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: any(e["step"] == "extract" for e in executions(project)), 60,
                   "the first backfill to reach the slow step")  # fmt: skip
        time.sleep(0.5)
        second = subprocess.Popen(
            stackwise_cmd("backfill", ref, "--start", "2026-01-01", "--end", "2026-01-03",
                          "--json"),
            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # It runs 2026-01-01 first, then finds 2026-01-02 busy: wait for the first part, not
        # for a fixed time (a loaded machine starts a process in seconds).
        wait_until(lambda: any(e["step"] == "load" and e["pid"] == second.pid
                               and day(e["logical_date"]) == "2026-01-01"
                               for e in executions(project)), 120,
                   "the second backfill to finish 2026-01-01")  # fmt: skip
        time.sleep(3)  # then it claims 2026-01-02 and finds it busy
        assert second.poll() is None, "the second backfill finished while an interval ran"
        set_behaviour(project, sleep={"*": 0})  # the takeover must not sleep a minute
        os.killpg(first.pid, signal.SIGKILL)
        out, err = second.communicate(timeout=180)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert second.returncode == 0, err
    report = json.loads(out)
    statuses = {day(i["logical_date"]): i["status"] for i in report["intervals"]}
    assert statuses == dict.fromkeys(days("2026-01-01", "2026-01-03"), "SUCCEEDED")
    taken = next(i for i in report["intervals"] if day(i["logical_date"]) == "2026-01-02")
    assert "after waiting" in taken["reason"] and taken["action"] == "resume"
    rows = IntervalLedger(StateStore(load_stack().state_store_resolved)).rows("pipe")
    assert {r.status for r in rows.values()} == {"SUCCEEDED"}
