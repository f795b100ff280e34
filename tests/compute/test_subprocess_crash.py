"""compute: subprocess when the step's process dies under it: `os._exit` and a segfault are
reported as a failed step (with the exit code and what it printed), nothing is left RUNNING,
and `stackwise resume` reruns the fixed step, reusing what succeeded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

import stackwise
from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator

WritePipeline = Callable[..., str]

PIPELINE = """
    import ctypes
    import os
    import stackwise as sw

    @sw.step
    def first() -> int:
        return 1

    @sw.step
    def crash(x: int) -> int:
        print("about to go")
        if os.path.exists(__MARKER__):  # the fault, until it is fixed
            __CRASH__
        return x + 1

    @sw.pipeline
    def pipe() -> None:
        crash(first())
"""


@pytest.mark.slow
@pytest.mark.parametrize(("crash", "code"), [("os._exit(3)", "3"), ("ctypes.string_at(0)", "-11")])
def test_a_dying_step_process_fails_the_step_and_the_run_resumes(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, crash: str, code: str
) -> None:
    stack = stack.model_copy(update={"compute": "subprocess"})
    fault = project / "fault"
    fault.touch()
    ref = write_pipeline(
        PIPELINE.replace("__CRASH__", crash).replace("__MARKER__", repr(str(fault)))
    )
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "FAILED"
    record = run.steps["crash"]
    assert record.status == "FAILED" and run.steps["first"].status == "SUCCEEDED"
    error = record.error or ""
    assert f"step process exited with code {code} and no result" in error
    assert "about to go" in error  # what it printed before it died
    client = MlflowClient(run.tracking_uri or "")
    statuses = {
        r.info.run_name: r.info.status for r in client.search_runs([run.experiment_id or ""])
    }
    assert "RUNNING" not in statuses.values(), statuses  # its run was closed for it
    assert statuses[run.mlflow_run_id and client.get_run(run.mlflow_run_id).info.run_name] == (
        "FAILED"
    )

    fault.unlink()
    resumed = LocalOrchestrator(stack).resume(run.run_id)
    assert resumed.status == "SUCCEEDED", resumed.error
    assert resumed.steps["crash"].status == "SUCCEEDED"
    assert resumed.steps["crash"].attempt == 2
    assert resumed.steps["first"].attempt == 1  # reused, not rerun
