"""Retries with backoff and per-step timeouts on the local orchestrator, with threads
(compute=local) and fresh processes (compute=subprocess)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orch_support import all_runs, by_name, children_of, get_run, lines, pid_alive, wait_until

import stackwise
from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator, RunRecord
from stackwise.orchestrators.local.executor import STOP_GRACE_S

WritePipeline = Callable[..., str]

FLAKY = """
    import pathlib
    import time

    from stackwise import Retries, pipeline, step

    HERE = pathlib.Path(__file__).parent
    LOG = HERE / "flaky.log"


    @step(retries=__RETRIES__)
    def flaky() -> int:
        with LOG.open("a") as fh:
            fh.write(f"start {time.time()}\\n")
        n = sum(1 for line in LOG.read_text().splitlines() if line.startswith("start"))
        if n <= __FAILURES__:
            with LOG.open("a") as fh:
                fh.write(f"fail {time.time()}\\n")
            raise RuntimeError(f"failure number {n}")
        return n


    @pipeline
    def pipe():
        flaky()
"""


def _flaky(write_pipeline: WritePipeline, retries: str, failures: int) -> str:
    return write_pipeline(
        FLAKY.replace("__RETRIES__", retries).replace("__FAILURES__", str(failures))
    )


def _starts(project: Path) -> list[float]:
    return [float(x.split()[1]) for x in lines(project / "flaky.log") if x.startswith("start")]


def _fails(project: Path) -> list[float]:
    return [float(x.split()[1]) for x in lines(project / "flaky.log") if x.startswith("fail")]


def _child_runs(run: RunRecord) -> list[Any]:
    runs = all_runs(run.tracking_uri or "", run.experiment_id or "")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    return children_of(runs, run.mlflow_run_id or "")


def test_retries_until_success(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = _flaky(write_pipeline, "Retries(count=2, backoff_s=0.1)", failures=2)

    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "SUCCEEDED", run.error
    record = run.steps["flaky"]
    assert record.status == "SUCCEEDED"
    assert record.attempt == 3
    assert record.error is None
    assert len(_starts(project)) == 3
    children = by_name(_child_runs(run))
    assert set(children) == {"flaky", "flaky (attempt 2)", "flaky (attempt 3)"}
    assert children["flaky"].info.status == "FAILED"
    assert children["flaky (attempt 2)"].info.status == "FAILED"
    assert children["flaky (attempt 3)"].info.status == "FINISHED"
    assert [children[n].data.tags["stackwise.attempt"] for n in sorted(children)] == ["1", "2", "3"]
    assert "failure number 1" in children["flaky"].data.tags["stackwise.error"]
    assert record.mlflow_run_id == children["flaky (attempt 3)"].info.run_id
    parent = get_run(run.tracking_uri, run.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    # backoff 0.1 s before attempt 2, then 0.2 s (factor 2) before attempt 3
    starts, fails = _starts(project), _fails(project)
    assert starts[1] - fails[0] >= 0.1
    assert starts[2] - fails[1] >= 0.2


def test_retries_exhausted_fails_after_count_plus_one_attempts(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = _flaky(write_pipeline, "1", failures=5)

    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "FAILED"
    record = run.steps["flaky"]
    assert record.status == "FAILED"
    assert record.attempt == 2
    assert "failure number 2" in (record.error or "")
    assert len(_starts(project)) == 2
    children = by_name(_child_runs(run))
    assert set(children) == {"flaky", "flaky (attempt 2)"}
    assert {c.info.status for c in children.values()} == {"FAILED"}
    assert get_run(run.tracking_uri, run.mlflow_run_id).info.status == "FAILED"


def test_backoff_grows_by_factor(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = _flaky(write_pipeline, "Retries(count=2, backoff_s=0.4, factor=3)", failures=2)

    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "SUCCEEDED", run.error
    starts, fails = _starts(project), _fails(project)
    assert len(starts) == 3 and len(fails) == 2
    first_gap, second_gap = starts[1] - fails[0], starts[2] - fails[1]
    assert first_gap >= 0.4
    assert second_gap >= 1.2
    assert second_gap - first_gap >= 0.6  # the second wait is the longer one (factor 3)


HANG = """
    import os
    import pathlib
    import time

    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent


    @step(timeout=__TIMEOUT__, retries=__RETRIES__, compute=__COMPUTE__)
    def hang() -> int:
        with (HERE / "attempts.log").open("a") as fh:
            fh.write(f"{os.getpid()}\\n")
        attempt = len((HERE / "attempts.log").read_text().splitlines())
        if attempt > __HANGING_ATTEMPTS__:
            return attempt
        __BODY__


    @pipeline
    def pipe():
        hang()
"""

LOOP_BODY = """while True:
            with (HERE / "ticks.log").open("a") as fh:
                fh.write("tick\\n")
            time.sleep(0.05)"""


def _hang(
    write_pipeline: WritePipeline,
    *,
    timeout: float,
    retries: int = 0,
    compute: str | None = None,
    hanging_attempts: int = 99,
    body: str = LOOP_BODY,
) -> str:
    source = (
        HANG.replace("__TIMEOUT__", repr(timeout))
        .replace("__RETRIES__", str(retries))
        .replace("__COMPUTE__", repr(compute))
        .replace("__HANGING_ATTEMPTS__", str(hanging_attempts))
        .replace("__BODY__", body)
    )
    return write_pipeline(source)


def test_timeout_stops_a_looping_step(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = _hang(write_pipeline, timeout=1)

    started = time.monotonic()
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))
    elapsed = time.monotonic() - started

    assert elapsed < 10
    assert run.status == "FAILED"
    record = run.steps["hang"]
    assert record.status == "FAILED"
    assert "timed out" in (record.error or "")
    assert record.attempt == 1
    # the step's thread really stopped: its loop no longer ticks
    ticks = len(lines(project / "ticks.log"))
    assert ticks > 0
    time.sleep(0.4)
    assert len(lines(project / "ticks.log")) == ticks
    child = get_run(run.tracking_uri, record.mlflow_run_id)
    assert child.info.status == "FAILED"
    assert child.data.tags["stackwise.status"] == "FAILED"
    assert "timeout" in child.data.tags["stackwise.error"]
    _child_runs(run)  # nothing left RUNNING


def test_timeout_counts_as_a_failure_and_is_retried(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = _hang(write_pipeline, timeout=1, retries=1, hanging_attempts=1)

    started = time.monotonic()
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert time.monotonic() - started < 15
    assert run.status == "SUCCEEDED", run.error
    record = run.steps["hang"]
    assert record.attempt == 2
    assert len(lines(project / "attempts.log")) == 2
    children = by_name(_child_runs(run))
    assert children["hang"].info.status == "FAILED"
    assert children["hang (attempt 2)"].info.status == "FINISHED"


def test_step_blocked_in_native_code_is_abandoned_after_grace(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    """A thread cannot be interrupted inside time.sleep: after the timeout plus the stop
    grace period the attempt is given up and recorded FAILED, and its MLflow run closed."""
    ref = _hang(write_pipeline, timeout=1, body=f"time.sleep({STOP_GRACE_S + 20})")

    started = time.monotonic()
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))
    elapsed = time.monotonic() - started

    assert 1 + STOP_GRACE_S <= elapsed < 1 + STOP_GRACE_S + 10  # far less than the sleep
    assert run.status == "FAILED"
    record = run.steps["hang"]
    assert record.status == "FAILED"
    assert "did not stop; abandoned" in (record.error or "")
    children = by_name(_child_runs(run))  # nothing left RUNNING
    assert children["hang"].info.status == "FAILED"
    # like every other attempt, the abandoned one links to its MLflow run
    assert record.mlflow_run_id == children["hang"].info.run_id


def test_timeout_kills_a_subprocess_step(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    # A fresh process needs a few seconds to import MLflow before the step starts; the
    # timeout leaves room for that, so the step is really inside time.sleep(60) when it fires.
    ref = _hang(write_pipeline, timeout=12, compute="subprocess", body="time.sleep(60)")

    started = time.monotonic()
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))
    elapsed = time.monotonic() - started

    assert elapsed < 30
    assert run.status == "FAILED"
    record = run.steps["hang"]
    assert record.status == "FAILED"
    assert "timed out" in (record.error or "")
    pids = [int(p) for p in lines(project / "attempts.log")]
    assert len(pids) == 1, "the step never started: the timeout fired during startup"
    wait_until(lambda: not pid_alive(pids[0]), timeout=15, what="the step process to exit")
    child = get_run(run.tracking_uri, record.mlflow_run_id)
    assert child.info.status == "FAILED"
    assert child.data.tags["stackwise.compute"] == "subprocess"
    _child_runs(run)  # nothing left RUNNING
