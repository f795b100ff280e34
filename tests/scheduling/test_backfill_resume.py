"""A backfill whose process is SIGKILLed mid-interval: rerunning the same command skips what
succeeded, resumes the interrupted interval's run (reusing its finished steps) and runs the
rest; every step of every interval executes exactly once overall, and nothing is left
RUNNING in the state store or in MLflow."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sched_support import (
    WAIT_S,
    all_runs,
    children_of,
    day,
    days,
    executions,
    pid_alive,
    pipe_source,
    run_json,
    set_behaviour,
    stackwise_cmd,
    wait_until,
)

from stackwise.config import StackConfig
from stackwise.orchestrators.local import StateStore
from stackwise.scheduling.ledger import IntervalLedger, decide

WritePipeline = Callable[..., str]


def test_sigkilled_backfill_resumes_without_running_anything_twice(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(pipe_source('Schedule("@daily", start="2026-01-01")'))
    args = ("backfill", ref, "--start", "2026-01-01", "--end", "2026-01-06", "--parallel", "1")
    set_behaviour(project, sleep={"transform": {"2026-01-03": 60}})
    state = StateStore(stack.state_store_resolved)
    ledger = IntervalLedger(state)

    with (project / "first.out").open("wb") as out:
        proc = subprocess.Popen(
            stackwise_cmd(*args), cwd=project, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def third_in_transform() -> bool:
            if proc.poll() is not None:
                raise AssertionError((project / "first.out").read_text())
            row = {day(r.interval_start): r for r in ledger.rows("pipe").values()}.get("2026-01-03")
            if row is None or row.status != "RUNNING" or row.run_id is None:
                return False
            try:
                run = state.get_run(row.run_id)
            except Exception:
                return False
            if run.steps["transform"].status != "RUNNING" or not run.mlflow_run_id:
                return False
            kids = children_of(all_runs(stack.tracking_uri_resolved, "pipe"), run.mlflow_run_id)
            return any(k.data.tags.get("stackwise.step") == "transform" for k in kids)

        wait_until(third_in_transform, WAIT_S, "interval 2026-01-03 to be in step transform")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # What the dead process left: two intervals done, the third RUNNING with a dead owner.
    rows = {day(r.interval_start): r for r in ledger.rows("pipe").values()}
    assert {d: r.status for d, r in rows.items()} == {
        "2026-01-01": "SUCCEEDED",
        "2026-01-02": "SUCCEEDED",
        "2026-01-03": "RUNNING",
    }
    third = rows["2026-01-03"]
    assert third.pid == proc.pid and not pid_alive(proc.pid) and not third.owner_alive
    assert decide(third, "failed").action == "resume"
    assert decide(third, "none").action == "resume"
    killed_run = third.run_id
    assert killed_run is not None
    assert state.get_run(killed_run).stale
    assert Counter(day(e["logical_date"]) for e in executions(project)) == {
        "2026-01-01": 3,
        "2026-01-02": 3,
        "2026-01-03": 1,  # extract finished; transform was killed
    }

    # The same command again, with the slow step made fast.
    set_behaviour(project)
    code, report = run_json(project, *args)

    assert code == 0, report
    outcome = {day(i["logical_date"]): i for i in report["intervals"]}
    assert {d: (o["action"], o["status"]) for d, o in outcome.items()} == {
        "2026-01-01": ("skip", "SKIPPED"),
        "2026-01-02": ("skip", "SKIPPED"),
        "2026-01-03": ("resume", "SUCCEEDED"),
        "2026-01-04": ("run", "SUCCEEDED"),
        "2026-01-05": ("run", "SUCCEEDED"),
        "2026-01-06": ("run", "SUCCEEDED"),
    }
    assert outcome["2026-01-03"]["run_id"] == killed_run
    assert "died" in outcome["2026-01-03"]["reason"]

    # Every step of every interval executed exactly once across both processes.
    counted = Counter((e["step"], day(e["logical_date"])) for e in executions(project))
    assert counted == Counter(
        {
            (s, d): 1
            for s in ("extract", "transform", "load")
            for d in days("2026-01-01", "2026-01-06")
        }
    )
    assert {e["run_id"] for e in executions(project) if day(e["logical_date"]) == "2026-01-03"} == {
        killed_run
    }

    # Nothing left RUNNING: ledger, state store, MLflow.
    rows = {day(r.interval_start): r for r in ledger.rows("pipe").values()}
    assert sorted(rows) == days("2026-01-01", "2026-01-06")
    assert {r.status for r in rows.values()} == {"SUCCEEDED"}
    assert len(state.list_runs(limit=100)) == 6
    assert {r.status for r in state.list_runs(limit=100)} == {"SUCCEEDED"}
    runs = all_runs(stack.tracking_uri_resolved, "pipe")
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    parent = state.get_run(killed_run).mlflow_run_id
    assert parent is not None and parent == outcome["2026-01-03"]["mlflow_run_id"]
    kids = children_of(runs, parent)
    statuses = sorted((k.data.tags["stackwise.step"], k.info.status) for k in kids)
    assert statuses == [
        ("extract", "FINISHED"),
        ("load", "FINISHED"),
        ("transform", "FINISHED"),
        ("transform", "KILLED"),
    ]
