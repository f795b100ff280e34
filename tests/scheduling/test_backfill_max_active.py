"""`stackwise backfill --parallel N` honours the schedule's `max_active_runs` as the scheduler
does (issue 20): never more intervals of the pipeline running at once than it allows, counting
those that other processes run, and a capped --parallel is said once (stderr, and `parallel`
and `warnings` in the JSON report). The steps record their start and end times, from which the
most intervals in flight at one moment is measured."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sched_support import (
    day,
    days,
    executions,
    pipe_source,
    run_cli,
    run_json,
    set_behaviour,
    stackwise_cmd,
)
from tests.support import start_together

from stackwise.config import StackConfig, load_stack
from stackwise.orchestrators.local import StateStore
from stackwise.scheduling.ledger import IntervalLedger

WritePipeline = Callable[..., str]


def _daily(max_active_runs: int) -> str:
    return f'Schedule("@daily", start="2026-01-01", max_active_runs={max_active_runs})'


def _most_in_flight(project: Path) -> int:
    """The most intervals running at one moment: per interval, from its first step's start to
    its last step's end."""
    spans: dict[str, list[float]] = {}
    for e in executions(project):
        span = spans.setdefault(e["logical_date"], [e["t0"], e["t1"]])
        span[0], span[1] = min(span[0], e["t0"]), max(span[1], e["t1"])
    return max(sum(1 for b0, b1 in spans.values() if b0 <= a0 < b1) for a0, _ in spans.values())


def _warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize("max_active_runs", [1, 2])
def test_parallel_above_max_active_runs_is_capped_and_said_once(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, max_active_runs: int
) -> None:
    """Issue 20: --parallel 3 on a schedule with max_active_runs=1 ran 3 intervals at once,
    with no warning."""
    ref = write_pipeline(pipe_source(_daily(max_active_runs)))
    set_behaviour(project, sleep={"extract": {"*": 0.6}})
    args = ("backfill", ref, "--start", "2026-01-01", "--end", "2026-01-05", "--parallel", "3")

    result = run_cli(project, *args, "--json")
    report = json.loads(result.stdout)
    dry = run_cli(project, *args, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert report["counts"] == {"SUCCEEDED": 5}
    assert _most_in_flight(project) == max_active_runs
    assert report["parallel"] == max_active_runs
    assert len(report["warnings"]) == 1
    warning = report["warnings"][0]
    assert f"--parallel 3 is more than max_active_runs={max_active_runs}" in warning
    assert "'pipe'" in warning
    assert _warning_lines(result.stderr) == [f"warning: {warning}"]
    # The report keeps every key it had.
    assert {"backfill_id", "pipeline", "counts", "intervals"} <= report.keys()
    assert dry.returncode == 0, dry.stderr
    assert len(_warning_lines(dry.stderr)) == 1


def test_parallel_within_max_active_runs_runs_that_many_without_a_warning(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(pipe_source(_daily(3)))
    set_behaviour(project, sleep={"extract": {"*": 0.6}})

    code, report = run_json(
        project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-04",
        "--parallel", "2",
    )  # fmt: skip

    assert code == 0, report
    assert report["parallel"] == 2 and report["warnings"] == []
    assert _most_in_flight(project) == 2


def _two_backfills_at_once(project: Path, ref: str) -> list[tuple[int, dict[str, Any], str]]:
    ranges = (("2026-01-01", "2026-01-03"), ("2026-01-04", "2026-01-06"))
    commands = [stackwise_cmd("backfill", ref, "--start", lo, "--end", hi, "--json")
                for lo, hi in ranges]  # fmt: skip
    results = []
    for code, out, err in start_together(project, *commands):
        try:
            results.append((code, json.loads(out), err))
        except json.JSONDecodeError:
            raise AssertionError(f"exit {code}\n{out}\n{err}") from None
    return results


def _check_other_processes_count(project: Path, pipeline: str, ref: str) -> None:
    set_behaviour(project, sleep={"extract": {"*": 0.5}})
    IntervalLedger(StateStore(load_stack().state_store_resolved))  # tables exist before

    results = _two_backfills_at_once(project, ref)

    for code, report, err in results:
        assert code == 0, (report, err)
        assert report["counts"] == {"SUCCEEDED": 3}
    # Each process alone runs one interval at a time; together they would run two.
    assert _most_in_flight(project) == 1
    assert all(r["parallel"] == 1 and r["warnings"] == [] for _, r, _ in results)
    assert sorted(day(e["logical_date"]) for e in executions(project) if e["step"] == "load") == (
        days("2026-01-01", "2026-01-06")
    )
    rows = IntervalLedger(StateStore(load_stack().state_store_resolved)).rows(pipeline)
    assert {r.status for r in rows.values()} == {"SUCCEEDED"} and len(rows) == 6


def test_intervals_running_in_another_process_count_on_sqlite(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(pipe_source(_daily(1)))

    _check_other_processes_count(project, "pipe", ref)


@pytest.mark.slow
def test_intervals_running_in_another_process_count_on_postgres(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, pg_url: str
) -> None:
    url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"mar_{uuid.uuid4().hex[:12]}"
    (project / "stackwise.yaml").write_text(f"state_store: {url}\n")
    ref = write_pipeline(pipe_source(_daily(1), name=name))

    _check_other_processes_count(project, name, ref)
