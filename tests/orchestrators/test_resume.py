"""Resuming runs: after a failed step, after the orchestrating process was SIGKILLed, and the
edge cases (already succeeded, unknown id)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from orch_support import (
    WAIT_S,
    all_runs,
    by_name,
    children_of,
    get_run,
    lines,
    parse_json,
    run_cli,
    stackwise_cmd,
    wait_until,
)
from tests.support import path_of

import stackwise
from stackwise.config import StackConfig
from stackwise.errors import RunNotFoundError, StateStoreError
from stackwise.orchestrators.local import LocalOrchestrator, StateStore

WritePipeline = Callable[..., str]

CHAIN = """
    import pathlib
    import time

    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent


    def _mark(name):
        with (HERE / "executions.log").open("a") as fh:
            fh.write(name + "\\n")


    @step
    def a() -> int:
        _mark("a")
        return 20


    @step
    def b(x: int) -> int:
        _mark("b")
        if (HERE / "fail_b").exists():
            raise RuntimeError("b was told to fail")
        if not (HERE / "b_fast").exists():
            time.sleep(30)
        return x + 1


    @step
    def c(y: int) -> int:
        _mark("c")
        return y * 2


    @pipeline
    def pipe():
        c(b(a()))
"""


def _executions(project: Path) -> list[str]:
    return lines(project / "executions.log")


def test_resume_after_failure_reruns_only_what_failed(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(CHAIN)
    (project / "b_fast").touch()
    (project / "fail_b").touch()
    failed = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))
    assert failed.status == "FAILED"
    assert {n: s.status for n, s in failed.steps.items()} == {
        "a": "SUCCEEDED",
        "b": "FAILED",
        "c": "SKIPPED",
    }
    assert get_run(failed.tracking_uri, failed.mlflow_run_id).info.status == "FAILED"

    (project / "fail_b").unlink()
    resumed = LocalOrchestrator(stack).resume(failed.run_id)

    assert resumed.status == "SUCCEEDED", resumed.error
    assert resumed.run_id == failed.run_id
    assert resumed.mlflow_run_id == failed.mlflow_run_id
    assert sorted(_executions(project)) == ["a", "b", "b", "c"]
    assert resumed.steps["a"].outputs == failed.steps["a"].outputs
    assert resumed.steps["b"].attempt == 2
    saved = StateStore(stack.state_store_resolved).get_run(failed.run_id)
    assert saved.status == "SUCCEEDED"
    assert saved.error is None
    assert {n: s.status for n, s in saved.steps.items()} == dict.fromkeys("abc", "SUCCEEDED")
    assert len(StateStore(stack.state_store_resolved).list_runs()) == 1

    parent = get_run(failed.tracking_uri, failed.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    runs = all_runs(failed.tracking_uri or "", failed.experiment_id or "")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert len([r for r in runs if "mlflow.parentRunId" not in r.data.tags]) == 1
    children = by_name(children_of(runs, failed.mlflow_run_id or ""))
    assert set(children) == {"a", "b", "b (attempt 2)", "c"}
    assert children["b"].info.status == "FAILED"
    assert children["b (attempt 2)"].info.status == "FINISHED"
    assert children["c"].info.status == "FINISHED"


def test_resume_reruns_a_succeeded_step_whose_outputs_are_gone(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    (project / "b_fast").touch()
    (project / "fail_b").touch()
    failed = LocalOrchestrator(stack).run(stackwise.load_pipeline(write_pipeline(CHAIN)))
    assert failed.status == "FAILED"
    path_of(failed.steps["a"].outputs["output"].uri).unlink()
    (project / "fail_b").unlink()

    resumed = LocalOrchestrator(stack).resume(failed.run_id)

    assert resumed.status == "SUCCEEDED", resumed.error
    assert sorted(_executions(project)) == ["a", "a", "b", "b", "c"]
    assert path_of(resumed.steps["a"].outputs["output"].uri).exists()
    assert resumed.steps["a"].cached is False


def test_resume_after_sigkill(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(CHAIN)
    state = StateStore(stack.state_store_resolved)  # created before the CLI process uses it
    with (project / "run.out").open("wb") as out:
        proc = subprocess.Popen(
            stackwise_cmd("run", ref), cwd=project, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def b_running() -> bool:
            if proc.poll() is not None:
                raise AssertionError((project / "run.out").read_text())
            runs = state.list_runs()
            return bool(runs) and state.get_run(runs[0].run_id).steps["b"].status == "RUNNING"

        wait_until(b_running, WAIT_S, "step b to be RUNNING")
        run_id = state.list_runs()[0].run_id
        wait_until(lambda: "b" in _executions(project), WAIT_S, "step b to start")
        # a live run cannot be resumed from elsewhere
        with pytest.raises(StateStoreError, match="still running"):
            LocalOrchestrator(stack).resume(run_id)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(WAIT_S)

    killed = state.get_run(run_id)
    assert killed.status == "RUNNING"
    assert killed.pid == proc.pid
    assert killed.stale is True
    listed = run_cli(project, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["run_id"], r["status"]) for r in parse_json(listed.stdout)] == [(run_id, "STALE")]

    (project / "b_fast").touch()
    resumed = run_cli(project, "resume", run_id, "--json")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert parse_json(resumed.stdout)["status"] == "SUCCEEDED"
    record = state.get_run(run_id)
    assert record.status == "SUCCEEDED"
    assert not record.stale
    assert {n: s.status for n, s in record.steps.items()} == dict.fromkeys("abc", "SUCCEEDED")
    assert _executions(project).count("a") == 1
    assert _executions(project).count("b") == 2
    assert record.mlflow_run_id == killed.mlflow_run_id

    runs = all_runs(record.tracking_uri or "", record.experiment_id or "")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    parent = get_run(record.tracking_uri, record.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    children = by_name(children_of(runs, record.mlflow_run_id or ""))
    assert children["a"].info.status == "FINISHED"
    assert children["b"].info.status == "KILLED"  # the attempt that died with its process
    assert children["b (attempt 2)"].info.status == "FINISHED"
    assert children["c"].info.status == "FINISHED"


def test_resume_of_succeeded_run_is_a_no_op(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    (project / "b_fast").touch()
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(write_pipeline(CHAIN)))
    assert run.status == "SUCCEEDED"
    before = all_runs(run.tracking_uri or "", run.experiment_id or "")

    again = LocalOrchestrator(stack).resume(run.run_id)

    assert again.status == "SUCCEEDED"
    assert again.run_id == run.run_id
    assert again.ended_at == run.ended_at
    assert sorted(_executions(project)) == ["a", "b", "c"]
    after = all_runs(run.tracking_uri or "", run.experiment_id or "")
    assert sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in before)
    assert {r.info.status for r in after} == {"FINISHED"}


def test_resume_of_unknown_run_exits_2(project: Path, stack: StackConfig) -> None:
    StateStore(stack.state_store_resolved)

    result = run_cli(project, "resume", "no-such-run")

    assert result.returncode == 2
    assert "no-such-run" in result.stderr
    assert "run not found" in result.stderr
    with pytest.raises(RunNotFoundError):
        LocalOrchestrator(stack).resume("no-such-run")
