"""Ctrl-C (SIGINT) and SIGTERM on `stackwise run`: exit 130 quickly, and the run, the running
step and their MLflow runs all end KILLED; nothing is left RUNNING."""

from __future__ import annotations

import signal
import subprocess
import time
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
    pid_alive,
    run_cli,
    stackwise_cmd,
    wait_until,
)

from stackwise.config import StackConfig
from stackwise.orchestrators.local import StateStore

WritePipeline = Callable[..., str]

SPIN = """
    import os
    import pathlib
    import time

    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent


    @step
    def prep() -> int:
        with (HERE / "executions.log").open("a") as fh:
            fh.write("prep\\n")
        return 1


    @step(compute=__COMPUTE__)
    def spin(x: int) -> int:
        (HERE / "spin.started").write_text(str(os.getpid()))
        if (HERE / "spin_fast").exists():
            return x
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.05)
        (HERE / "spin.finished").touch()
        return x


    @step
    def after(y: int) -> int:
        (HERE / "after.ran").touch()
        return y


    @pipeline
    def pipe():
        after(spin(prep()))
"""


def _run_and_signal(
    project: Path, state: StateStore, ref: str, signum: signal.Signals
) -> tuple[int, float]:
    """Start `stackwise run REF`, wait until step spin loops, send `signum`; return the exit
    code and how long the process took to exit after the signal."""
    with (project / "run.out").open("wb") as out:
        proc = subprocess.Popen(
            stackwise_cmd("run", ref), cwd=project, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def spin_running() -> bool:
            if proc.poll() is not None:
                raise AssertionError((project / "run.out").read_text())
            runs = state.list_runs()
            return bool(runs) and state.get_run(runs[0].run_id).steps["spin"].status == "RUNNING"

        wait_until(spin_running, WAIT_S, "step spin to be RUNNING")
        wait_until((project / "spin.started").exists, WAIT_S, "spin to enter its loop")
        time.sleep(0.3)

        sent = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(timeout=30)
        return code, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("signum", "compute"),
    [(signal.SIGINT, None), (signal.SIGTERM, None), (signal.SIGINT, "subprocess")],
    ids=["SIGINT", "SIGTERM", "SIGINT-subprocess-step"],
)
def test_signal_kills_run_and_closes_everything(
    project: Path,
    stack: StackConfig,
    write_pipeline: WritePipeline,
    signum: signal.Signals,
    compute: str | None,
) -> None:
    ref = write_pipeline(SPIN.replace("__COMPUTE__", repr(compute)))
    state = StateStore(stack.state_store_resolved)

    code, took = _run_and_signal(project, state, ref, signum)

    output = (project / "run.out").read_text()
    assert code == 130, output
    assert took < 15
    assert "interrupted" in output
    run = state.get_run(state.list_runs()[0].run_id)
    assert run.status == "KILLED"
    assert not run.stale
    assert run.ended_at is not None
    assert run.steps["prep"].status == "SUCCEEDED"
    assert run.steps["spin"].status == "KILLED"
    assert run.steps["after"].status != "SUCCEEDED"
    assert not (project / "spin.finished").exists()
    step_pid = int((project / "spin.started").read_text())
    wait_until(lambda: not pid_alive(step_pid), 15, "the step's process to be gone")
    assert not (project / "after.ran").exists()

    runs = all_runs(run.tracking_uri or "", run.experiment_id or "")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    parent = get_run(run.tracking_uri, run.mlflow_run_id)
    assert parent.info.status == "KILLED"
    children = by_name(children_of(runs, run.mlflow_run_id or ""))
    assert set(children) == {"prep", "spin"}
    assert children["prep"].info.status == "FINISHED"
    assert children["spin"].info.status == "KILLED"
    assert children["spin"].info.run_id == run.steps["spin"].mlflow_run_id


def test_interrupted_run_can_be_resumed(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(SPIN.replace("__COMPUTE__", "None"))
    state = StateStore(stack.state_store_resolved)
    code, _ = _run_and_signal(project, state, ref, signal.SIGINT)
    assert code == 130
    run_id = state.list_runs()[0].run_id
    assert state.get_run(run_id).status == "KILLED"

    (project / "spin_fast").touch()
    result = run_cli(project, "resume", run_id)

    assert result.returncode == 0, result.stdout + result.stderr
    run = state.get_run(run_id)
    assert run.status == "SUCCEEDED"
    assert {n: s.status for n, s in run.steps.items()} == dict.fromkeys(
        ["prep", "spin", "after"], "SUCCEEDED"
    )
    assert lines(project / "executions.log") == ["prep"]
    assert (project / "after.ran").exists()
    runs = all_runs(run.tracking_uri or "", run.experiment_id or "")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert get_run(run.tracking_uri, run.mlflow_run_id).info.status == "FINISHED"
    children = by_name(children_of(runs, run.mlflow_run_id or ""))
    assert children["spin"].info.status == "KILLED"
    assert children["spin (attempt 2)"].info.status == "FINISHED"
    assert children["after"].info.status == "FINISHED"
