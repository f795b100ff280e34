"""`stackwise backfill` end to end, as a user runs it: one pipeline run per data interval,
each its own MLflow parent run, idempotent on rerun, failed intervals resumed, dry runs that
run nothing, intervals overlapping with --parallel, and bad input refused before anything
runs (exit 2, one line on stderr)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sched_support import (
    all_runs,
    children_of,
    day,
    days,
    every_run,
    executions,
    parents,
    pipe_source,
    run_cli,
    run_json,
    set_behaviour,
)

from stackwise.config import StackConfig
from stackwise.orchestrators.local import StateStore
from stackwise.scheduling.ledger import IntervalLedger

WritePipeline = Callable[..., str]

DAILY = 'Schedule("@daily", start="2026-01-01")'
OUTCOME_KEYS = {
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "action",
    "status",
    "reason",
    "run_id",
    "mlflow_run_id",
    "duration_s",
    "error",
}


def _by_day(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {day(i["logical_date"]): i for i in report["intervals"]}


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _step_days(project: Path, step: str) -> list[str]:
    return sorted(day(e["logical_date"]) for e in executions(project) if e["step"] == step)


def test_backfill_runs_one_tagged_mlflow_run_per_interval_then_skips_then_reprocesses(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(pipe_source(DAILY))
    uri = stack.tracking_uri_resolved
    wanted = days("2026-01-01", "2026-01-10")

    code, report = run_json(
        project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-10"
    )

    assert code == 0, report
    assert set(report) == {"backfill_id", "pipeline", "counts", "intervals", "parallel",
                           "mode", "warnings"}  # fmt: skip
    assert (report["parallel"], report["mode"], report["warnings"]) == (1, "threads", [])
    assert report["pipeline"] == "pipe"
    assert report["counts"] == {"SUCCEEDED": 10}
    assert [day(i["logical_date"]) for i in report["intervals"]] == wanted
    for item in report["intervals"]:
        assert set(item) >= OUTCOME_KEYS, item
        assert (item["action"], item["status"], item["error"]) == ("run", "SUCCEEDED", None)
        start, end = _ts(item["data_interval_start"]), _ts(item["data_interval_end"])
        assert _ts(item["logical_date"]) == start
        assert end - start == dt.timedelta(days=1)
        assert start.utcoffset() == dt.timedelta(0)
        assert item["run_id"] and item["mlflow_run_id"]
        assert isinstance(item["duration_s"], float) and item["duration_s"] > 0
    assert len({i["run_id"] for i in report["intervals"]}) == 10

    # Every step of every interval ran once and saw exactly the planned half-open interval.
    planned = {
        day(i["logical_date"]): (_ts(i["data_interval_start"]), _ts(i["data_interval_end"]))
        for i in report["intervals"]
    }
    runs_of = {day(i["logical_date"]): i["run_id"] for i in report["intervals"]}
    seen = executions(project)
    assert len(seen) == 30
    for step in ("extract", "transform", "load"):
        assert _step_days(project, step) == wanted
    for e in seen:
        d = day(e["logical_date"])
        assert (_ts(e["start"]), _ts(e["end"])) == planned[d]
        assert e["run_id"] == runs_of[d]
    chained = [planned[d] for d in wanted]
    assert all(a[1] == b[0] for a, b in zip(chained, chained[1:], strict=False))

    # MLflow: one parent run per interval, tagged with its interval and the backfill id.
    runs = all_runs(uri, "pipe")
    tops = parents(runs)
    assert len(tops) == 10
    by_mlflow = {i["mlflow_run_id"]: i for i in report["intervals"]}
    assert {r.info.run_id for r in tops} == set(by_mlflow)
    for parent in tops:
        item, tags = by_mlflow[parent.info.run_id], parent.data.tags
        assert parent.info.status == "FINISHED"
        assert tags["stackwise.backfill_id"] == report["backfill_id"]
        assert _ts(tags["stackwise.logical_date"]) == _ts(item["logical_date"])
        assert _ts(tags["stackwise.data_interval_start"]) == _ts(item["data_interval_start"])
        assert _ts(tags["stackwise.data_interval_end"]) == _ts(item["data_interval_end"])
        assert tags["stackwise.run_id"] == item["run_id"]
        kids = children_of(runs, parent.info.run_id)
        assert sorted(k.data.tags["stackwise.step"] for k in kids) == [
            "extract",
            "load",
            "transform",
        ]
        assert all(k.info.status == "FINISHED" for k in kids)

    # The ledger has one SUCCEEDED row per interval, pointing at its run.
    rows = IntervalLedger(StateStore(stack.state_store_resolved)).rows("pipe")
    assert {day(r.interval_start): (r.status, r.run_id) for r in rows.values()} == {
        d: ("SUCCEEDED", runs_of[d]) for d in wanted
    }

    # The same command again: nothing to do.
    code, again = run_json(project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-10")
    assert code == 0, again
    assert again["counts"] == {"SKIPPED": 10}
    assert again["backfill_id"] != report["backfill_id"]
    for item in again["intervals"]:
        assert (item["action"], item["status"], item["reason"]) == (
            "skip",
            "SKIPPED",
            "already succeeded",
        )
        assert item["run_id"] is None and item["mlflow_run_id"] is None
    assert len(executions(project)) == 30
    assert len(parents(all_runs(uri, "pipe"))) == 10

    # --reprocess all: every interval runs again, as a new run.
    code, redo = run_json(
        project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-10",
        "--reprocess", "all",
    )  # fmt: skip
    assert code == 0, redo
    assert redo["counts"] == {"SUCCEEDED": 10}
    assert all(i["action"] == "run" for i in redo["intervals"])
    assert not {i["run_id"] for i in redo["intervals"]} & set(runs_of.values())
    tops = parents(all_runs(uri, "pipe"))
    assert len(tops) == 20
    redo_tops = [r for r in tops if r.data.tags["stackwise.backfill_id"] == redo["backfill_id"]]
    assert sorted(day(r.data.tags["stackwise.logical_date"]) for r in redo_tops) == wanted
    rows = IntervalLedger(StateStore(stack.state_store_resolved)).rows("pipe")
    assert {r.run_id for r in rows.values()} == {i["run_id"] for i in redo["intervals"]}
    assert {r.status for r in rows.values()} == {"SUCCEEDED"}


def test_reprocess_all_executes_the_steps_again(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    """Reprocessing is for when the data behind an interval changed (a corrected raw
    partition), which the step cache cannot see: the steps must run again, not be served from
    the cache of the first backfill (backfill has no --no-cache to ask for it otherwise)."""
    ref = write_pipeline(pipe_source(DAILY))
    rng = ("--start", "2026-01-01", "--end", "2026-01-02")
    code, first = run_json(project, "backfill", ref, *rng)
    assert code == 0, first

    code, redo = run_json(project, "backfill", ref, *rng, "--reprocess", "all")

    assert code == 0, redo
    assert [(i["action"], i["status"]) for i in redo["intervals"]] == [("run", "SUCCEEDED")] * 2
    state = StateStore(stack.state_store_resolved)
    cached = {
        (day(i["logical_date"]), s.name): s.cached
        for i in redo["intervals"]
        for s in state.get_run(i["run_id"]).steps.values()
    }
    assert not any(cached.values()), cached
    for step in ("extract", "transform", "load"):
        assert _step_days(project, step) == sorted(days("2026-01-01", "2026-01-02") * 2), step


def test_failed_interval_is_resumed_after_the_fix_and_skipped_with_reprocess_none(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(pipe_source(DAILY))
    rng = ("--start", "2026-01-01", "--end", "2026-01-06")
    set_behaviour(project, fail={"transform": ["2026-01-04"]})

    code, first = run_json(project, "backfill", ref, *rng)

    assert code == 1, first
    assert first["counts"] == {"SUCCEEDED": 5, "FAILED": 1}
    outcome = _by_day(first)
    assert outcome["2026-01-04"]["status"] == "FAILED"
    assert "transform" in outcome["2026-01-04"]["error"]
    assert all(o["status"] == "SUCCEEDED" for d, o in outcome.items() if d != "2026-01-04")
    failed_run = outcome["2026-01-04"]["run_id"]
    state = StateStore(stack.state_store_resolved)
    assert state.get_run(failed_run).status == "FAILED"
    assert _step_days(project, "extract") == days("2026-01-01", "2026-01-06")
    assert "2026-01-04" not in _step_days(project, "load")

    # --reprocess none leaves the failed interval alone.
    code, untouched = run_json(project, "backfill", ref, *rng, "--reprocess", "none")
    assert code == 0, untouched
    assert untouched["counts"] == {"SKIPPED": 6}
    assert _by_day(untouched)["2026-01-04"]["reason"] == "failed; --reprocess none"
    assert len(executions(project)) == 5 * 3 + 1

    # A dry run over a wider range says what the default would do.
    code, plan = run_json(
        project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-08", "--dry-run"
    )
    assert code == 0, plan
    assert plan["dry_run"] is True
    actions = {day(i["logical_date"]): (i["action"], i["run_id"]) for i in plan["intervals"]}
    assert actions == {
        **{d: ("skip", None) for d in days("2026-01-01", "2026-01-06")},
        "2026-01-04": ("resume", failed_run),
        "2026-01-07": ("run", None),
        "2026-01-08": ("run", None),
    }
    assert len(state.list_runs(limit=100)) == 6
    assert len(executions(project)) == 16

    # Fix the cause; the default (--reprocess failed) resumes only that interval.
    set_behaviour(project)
    code, fixed = run_json(project, "backfill", ref, *rng)

    assert code == 0, fixed
    assert fixed["counts"] == {"SKIPPED": 5, "SUCCEEDED": 1}
    redone = _by_day(fixed)["2026-01-04"]
    assert (redone["action"], redone["status"], redone["run_id"]) == (
        "resume",
        "SUCCEEDED",
        failed_run,
    )
    assert state.get_run(failed_run).status == "SUCCEEDED"
    # extract had succeeded for 01-04 and was reused; transform and load ran once each.
    for step in ("extract", "transform", "load"):
        assert _step_days(project, step) == days("2026-01-01", "2026-01-06"), step
    assert len(state.list_runs(limit=100)) == 6
    mlflow_parent = redone["mlflow_run_id"]
    assert mlflow_parent == outcome["2026-01-04"]["mlflow_run_id"]
    runs = all_runs(stack.tracking_uri_resolved, "pipe")
    assert {r.info.run_id: r.info.status for r in parents(runs)}[mlflow_parent] == "FINISHED"
    assert all(r.info.status != "RUNNING" for r in runs)
    rows = IntervalLedger(state).rows("pipe")
    assert {r.status for r in rows.values()} == {"SUCCEEDED"}


def test_dry_run_lists_intervals_and_runs_nothing(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(pipe_source(DAILY))

    code, plan = run_json(
        project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-05", "--dry-run"
    )
    text = run_cli(
        project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-05", "--dry-run"
    )

    assert code == 0, plan
    assert plan["dry_run"] is True and plan["pipeline"] == "pipe"
    assert [day(i["logical_date"]) for i in plan["intervals"]] == days("2026-01-01", "2026-01-05")
    assert all(i["action"] == "run" and i["reason"] == "new interval" for i in plan["intervals"])
    assert text.returncode == 0, text.stderr
    assert "dry run: 5 intervals" in text.stdout
    assert text.stdout.count("new interval") == 5
    assert executions(project) == []
    assert StateStore(stack.state_store_resolved).list_runs() == []
    assert IntervalLedger(StateStore(stack.state_store_resolved)).rows("pipe") == {}
    assert every_run(stack.tracking_uri_resolved) == []


def test_backfill_of_a_fall_back_day_runs_one_interval_as_airflow(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    """Issue 20: a daily 01:00 schedule in New York, backfilled for 2024-11-03 (when 01:00-01:59
    happens twice), ran two pipeline runs, one covering an hour. Airflow has one interval,
    from the later 01:00; the steps see exactly it."""
    schedule = 'Schedule("0 1 * * *", start="2024-10-01", timezone="America/New_York")'
    ref = write_pipeline(pipe_source(schedule))

    code, report = run_json(
        project, "backfill", ref, "--start", "2024-11-03", "--end", "2024-11-03"
    )

    assert code == 0, report
    interval = ("2024-11-03T01:00:00-05:00", "2024-11-04T01:00:00-05:00")
    assert [
        (i["data_interval_start"], i["data_interval_end"], i["status"]) for i in report["intervals"]
    ] == [(*interval, "SUCCEEDED")]
    seen = {(e["step"], e["start"], e["end"]) for e in executions(project)}
    assert seen == {(step, *interval) for step in ("extract", "transform", "load")}


def _spans(project: Path) -> list[tuple[float, float]]:
    """Per interval: from its first step's start to its last step's end."""
    spans: dict[str, list[float]] = {}
    for e in executions(project):
        span = spans.setdefault(e["logical_date"], [e["t0"], e["t1"]])
        span[0], span[1] = min(span[0], e["t0"]), max(span[1], e["t1"])
    return [(a, b) for a, b in spans.values()]


def _overlaps(spans: list[tuple[float, float]]) -> int:
    return sum(
        1 for i, (a0, a1) in enumerate(spans) for b0, b1 in spans[i + 1 :] if a0 < b1 and b0 < a1
    )


@pytest.mark.parametrize("parallel", [1, 2])
def test_parallel_overlaps_intervals_only_when_asked(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, parallel: int
) -> None:
    ref = write_pipeline(pipe_source(DAILY))
    set_behaviour(project, sleep={"extract": {"*": 0.7}})

    code, report = run_json(
        project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-04",
        "--parallel", str(parallel),
    )  # fmt: skip

    assert code == 0, report
    assert report["counts"] == {"SUCCEEDED": 4}
    spans = _spans(project)
    assert len(spans) == 4
    if parallel == 1:
        assert _overlaps(spans) == 0, spans
    else:
        # Two workers over four intervals of >= 0.7 s each: at least two pairs overlap.
        assert _overlaps(spans) >= 2, spans
        ordered = sorted(spans)
        assert max(b for _, b in spans) - ordered[0][0] < sum(b - a for a, b in spans) * 0.8


# -- bad input: exit 2, one line on stderr, nothing run ---------------------------------------
BAD_INPUT = [
    pytest.param(DAILY, ["--start", "2026-01-10", "--end", "2026-01-01"],
                 "--end 2026-01-01 is before --start 2026-01-10", id="end-before-start"),
    pytest.param('Schedule("@daily", start="2026-01-01", end="2026-01-05")',
                 ["--start", "2026-02-01", "--end", "2026-02-03"],
                 "no interval of the schedule", id="schedule-ends-before-range"),
    pytest.param(DAILY, ["--start", "2026-03-01", "--end", "2026-03-31",
                         "--schedule", "0 0 1 1 *"],
                 "no interval of the schedule", id="cron-matches-nothing-in-range"),
    pytest.param(DAILY, ["--start", "2026-01-01", "--end", "2026-01-02",
                         "--schedule", "61 * * * *"],
                 "invalid cron expression '61 * * * *'", id="invalid-cron"),
    pytest.param(DAILY, ["--start", "2026-01-01", "--end", "2026-01-02",
                         "--schedule", "@fortnightly"],
                 "unknown schedule preset '@fortnightly'", id="unknown-preset"),
    pytest.param('Schedule("@daily", start="2026-01-01", timezone="Mars/Olympus")',
                 ["--start", "2026-01-01", "--end", "2026-01-02"],
                 "unknown timezone 'Mars/Olympus'", id="unknown-timezone"),
    pytest.param(DAILY, ["--start", "01/02/2026", "--end", "2026-01-05"],
                 "--start '01/02/2026' is not a date", id="bad-date-format"),
    pytest.param(None, ["--start", "2026-01-01", "--end", "2026-01-02"],
                 "has no schedule", id="no-schedule"),
    pytest.param(DAILY, ["--start", "2026-01-01", "--end", "2026-01-02",
                         "--reprocess", "sometimes"],
                 "--reprocess 'sometimes' is not one of none, failed, all",
                 id="unknown-reprocess"),
    # --schedule overrides the cron only: the schedule's own end still bounds the range.
    pytest.param('Schedule("@daily", start="2026-01-01", end="2026-01-05")',
                 ["--start", "2026-02-01", "--end", "2026-02-01T02:00", "--schedule", "@hourly"],
                 "no interval of the schedule", id="override-keeps-schedule-end"),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "args", "message"), BAD_INPUT)
def test_bad_input_exits_2_with_one_line_and_runs_nothing(
    project: Path,
    stack: StackConfig,
    write_pipeline: WritePipeline,
    schedule: str | None,
    args: list[str],
    message: str,
) -> None:
    ref = write_pipeline(pipe_source(schedule))

    result = run_cli(project, "backfill", ref, *args)

    assert result.returncode == 2, (result.stdout, result.stderr)
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(err) == 1, result.stderr
    assert message in err[0], err[0]
    assert "Traceback" not in result.stderr
    assert executions(project) == []
    state_db = project / ".stackwise" / "state.db"
    if state_db.exists():
        state = StateStore(stack.state_store_resolved)
        assert state.list_runs() == []
        assert IntervalLedger(state).rows("pipe") == {}
    assert every_run(stack.tracking_uri_resolved) == []
