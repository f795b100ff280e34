"""The step runner: one StepInvocation in, one StepResult out, in a fresh process
(`python -m stackwise.runner`) or in this one (`run_step`), tracked in a real MLflow store."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from stackwise.artifacts.store import ArtifactStore
from stackwise.contract import InputRef, PipelineRef
from stackwise.runner import (
    CancelToken,
    StepInvocation,
    StepResult,
    TrackingTarget,
    run_step,
)

STEPS = """
import time
from typing import NamedTuple

import stackwise
from stackwise import StepContext


class Parts(NamedTuple):
    low: list[int]
    high: list[int]


@stackwise.step
def source() -> int:
    return 1


@stackwise.step
def double(x: int, factor: int = 2) -> int:
    stackwise.log_metric("seen", x)
    stackwise.log_metric("seen", x + 1, step=1)
    return x * factor


@stackwise.step
def explode(x: int) -> int:
    raise ValueError(f"boom {x}")


@stackwise.step
def with_ctx(x: int, ctx: StepContext) -> dict:
    ctx.log_metric("attempt", ctx.attempt)
    return {"pipeline": ctx.pipeline, "step": ctx.step, "run": ctx.run_id, "x": x,
            "attempt": ctx.attempt, "params": dict(ctx.params)}


@stackwise.step
def split(x: int) -> Parts:
    return Parts(list(range(x)), list(range(x, 2 * x)))


@stackwise.step
def wrong_type(x: int) -> int:
    return "not an int"


@stackwise.step
def spin() -> int:
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return n


@stackwise.pipeline
def pipe(factor: int = 2):
    value = source()
    double(value, factor)
    explode(value)
    with_ctx(value)
    split(value)
    wrong_type(value)
    spin()
"""


@pytest.fixture
def steps_ref(write_pipeline: Callable[..., str]) -> str:
    return write_pipeline(STEPS)


@pytest.fixture
def artifacts(project: Path) -> ArtifactStore:
    return ArtifactStore(str(project / "artifacts"))


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, Path]:
    """One real MLflow SQLite store for this module (creating its schema takes seconds)."""
    folder = tmp_path_factory.mktemp("mlflow")
    return MlflowClient(f"sqlite:///{folder / 'mlflow.db'}"), folder


@pytest.fixture
def tracking(
    mlflow_store: tuple[MlflowClient, Path], project: Path
) -> tuple[MlflowClient, TrackingTarget]:
    """A fresh experiment with an open parent run, as the orchestrator would create them."""
    client, folder = mlflow_store
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment_id = client.create_experiment(
        f"runner-{project.name}", artifact_location=(project / "mlartifacts").as_uri()
    )
    parent = client.create_run(experiment_id, run_name="pipeline-run")
    target = TrackingTarget(
        uri=uri,
        experiment=f"runner-{project.name}",
        experiment_id=experiment_id,
        parent_run_id=parent.info.run_id,
        run_tags={"stackwise.run_id": "run-1"},
    )
    return client, target


def _invocation(
    ref: str, step: str, artifacts: ArtifactStore, inputs: dict[str, Any], **extra: Any
) -> StepInvocation:
    fields: dict[str, Any] = {"run_id": "run-1", "params": {"factor": 2}, **extra}
    target, _, name = ref.rpartition(":")
    return StepInvocation(
        pipeline=PipelineRef(target=target, name=name),
        step=step,
        inputs={
            k: InputRef(step="source", output="output", artifact=artifacts.put(v))
            for k, v in inputs.items()
        },
        artifact_root=artifacts.root,
        **fields,
    )


def _run_fresh(project: Path, inv: StepInvocation) -> tuple[int, StepResult, str]:
    inv_file = project / "invocation.json"
    out_file = project / "result.json"
    inv_file.write_text(inv.model_dump_json())
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    proc = subprocess.run(
        [sys.executable, "-m", "stackwise.runner", "--invocation", str(inv_file),
         "--result", str(out_file)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out_file.exists(), proc.stderr
    assert not Path(str(out_file) + ".tmp").exists()
    return proc.returncode, StepResult.model_validate_json(out_file.read_text()), proc.stderr


def _output(artifacts: ArtifactStore, result: StepResult, name: str = "output") -> Any:
    return artifacts.get(result.outputs[name])


# -- fresh process ---------------------------------------------------------------------------
def test_fresh_process_untracked(project: Path, steps_ref: str, artifacts: ArtifactStore) -> None:
    inv = _invocation(steps_ref, "double", artifacts, {"x": 21}, params={"factor": 3})
    code, result, stderr = _run_fresh(project, inv)
    assert code == 0, stderr
    assert result.status == "SUCCEEDED"
    assert result.step == "double"
    assert result.error is None
    assert result.mlflow_run_id is None
    assert set(result.outputs) == {"output"}
    assert result.outputs["output"].serializer == "json"
    # the parameter binding reads the invocation's params; the input the upstream artifact
    assert _output(artifacts, result) == 63
    assert result.metrics == {"seen": 22.0}  # last value of each metric, even untracked
    assert not (project / "mlflow.db").exists()
    assert not (project / "mlruns").exists()


def test_fresh_process_result_on_stdout(
    project: Path, steps_ref: str, artifacts: ArtifactStore
) -> None:
    inv = _invocation(steps_ref, "split", artifacts, {"x": 2})
    proc = subprocess.run(
        [sys.executable, "-m", "stackwise.runner", "--invocation", "-"],
        input=inv.model_dump_json(), cwd=project, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = StepResult.model_validate_json(proc.stdout.strip().splitlines()[-1])
    assert result.status == "SUCCEEDED"
    assert _output(artifacts, result, "low") == [0, 1]
    assert _output(artifacts, result, "high") == [2, 3]


def test_fresh_process_tracked(
    project: Path,
    steps_ref: str,
    artifacts: ArtifactStore,
    tracking: tuple[MlflowClient, TrackingTarget],
) -> None:
    client, target = tracking
    inv = _invocation(steps_ref, "double", artifacts, {"x": 21}, tracking=target)
    code, result, stderr = _run_fresh(project, inv)
    assert code == 0, stderr
    assert result.status == "SUCCEEDED"
    assert _output(artifacts, result) == 42
    assert result.metrics == {"seen": 22.0}
    assert result.mlflow_run_id is not None

    run = client.get_run(result.mlflow_run_id)
    assert run.info.experiment_id == target.experiment_id
    assert run.info.status == "FINISHED"
    assert run.info.end_time is not None
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == target.parent_run_id
    assert tags["mlflow.runName"] == "double"
    assert tags["stackwise.run_id"] == "run-1"
    assert tags["stackwise.step"] == "double"
    assert tags["stackwise.attempt"] == "1"
    assert tags["stackwise.status"] == "SUCCEEDED"
    artifact = inv.inputs["x"].artifact
    assert artifact is not None and tags["stackwise.input.x"] == artifact.uri
    assert tags["stackwise.output.output"] == result.outputs["output"].uri
    assert tags["stackwise.output.output.digest"] == result.outputs["output"].digest
    assert len(tags["stackwise.environment.digest"]) == 16
    assert run.data.metrics["seen"] == 22.0  # latest value
    history = client.get_metric_history(run.info.run_id, "seen")
    assert sorted((m.step, m.value) for m in history) == [(0, 21.0), (1, 22.0)]
    assert run.data.params == {"factor": "2"}

    children = client.search_runs(
        [target.experiment_id], f"tags.`mlflow.parentRunId` = '{target.parent_run_id}'"
    )
    assert [c.info.run_id for c in children] == [result.mlflow_run_id]
    # the parent run is left to the orchestrator
    assert client.get_run(target.parent_run_id).info.status == "RUNNING"


def test_fresh_process_failing_step(
    project: Path,
    steps_ref: str,
    artifacts: ArtifactStore,
    tracking: tuple[MlflowClient, TrackingTarget],
) -> None:
    client, target = tracking
    inv = _invocation(steps_ref, "explode", artifacts, {"x": 7}, tracking=target)
    code, result, stderr = _run_fresh(project, inv)
    assert code == 1, stderr
    assert result.status == "FAILED"
    assert result.error_type == "ValueError"
    assert result.error is not None
    assert result.error.startswith("ValueError: boom 7")
    assert 'raise ValueError(f"boom {x}")' in result.error  # the user's frame
    assert "stackwise/runner.py" not in result.error  # not the runner's own frames
    assert result.outputs == {}

    assert result.mlflow_run_id is not None
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["mlflow.parentRunId"] == target.parent_run_id
    assert run.data.tags["stackwise.status"] == "FAILED"
    assert "boom 7" in run.data.tags["stackwise.error"]


# -- in process ------------------------------------------------------------------------------
def test_in_process_step_context(project: Path, steps_ref: str, artifacts: ArtifactStore) -> None:
    inv = _invocation(steps_ref, "with_ctx", artifacts, {"x": 5}, attempt=3)
    result = run_step(inv)
    assert result.status == "SUCCEEDED", result.error
    assert result.metrics == {"attempt": 3.0}
    assert _output(artifacts, result) == {
        "pipeline": "pipe",
        "step": "with_ctx",
        "run": "run-1",
        "x": 5,
        "attempt": 3,
        "params": {"factor": 2},
    }


def test_in_process_wrong_return_type_fails(
    project: Path, steps_ref: str, artifacts: ArtifactStore
) -> None:
    result = run_step(_invocation(steps_ref, "wrong_type", artifacts, {"x": 1}))
    assert result.status == "FAILED"
    assert result.error_type == "StackwiseError"
    assert result.error is not None
    assert "annotated to return int but returned a str" in result.error
    assert result.outputs == {}


def test_in_process_unloadable_pipeline_fails(project: Path, artifacts: ArtifactStore) -> None:
    inv = StepInvocation(
        pipeline=PipelineRef(target=str(project / "missing.py"), name="pipe"),
        step="double",
        run_id="r",
        artifact_root=artifacts.root,
    )
    result = run_step(inv)
    assert result.status == "FAILED"
    assert result.error_type == "PipelineLoadError"
    assert result.error is not None and "does not exist" in result.error


def test_in_process_cancel_from_another_thread(
    project: Path, steps_ref: str, artifacts: ArtifactStore
) -> None:
    inv = _invocation(steps_ref, "spin", artifacts, {})
    token = CancelToken()
    results: list[StepResult] = []
    worker = threading.Thread(target=lambda: results.append(run_step(inv, token)), daemon=True)
    started = time.monotonic()
    worker.start()
    deadline = time.monotonic() + 30
    while not token.in_user_code and time.monotonic() < deadline:
        time.sleep(0.01)
    assert token.in_user_code, "the step never started"
    time.sleep(0.2)  # the step is now looping in Python
    token.cancel()
    worker.join(15)
    assert not worker.is_alive()
    assert time.monotonic() - started < 20  # far less than the step's 60 s loop
    (result,) = results
    assert result.status == "KILLED"
    assert result.error_type == "StepCancelledError"
    assert result.outputs == {}
    assert not token.in_user_code


def test_in_process_cancel_before_start(
    project: Path, steps_ref: str, artifacts: ArtifactStore
) -> None:
    token = CancelToken()
    token.cancel()
    started = time.monotonic()
    result = run_step(_invocation(steps_ref, "spin", artifacts, {}), token)
    assert result.status == "KILLED"
    assert time.monotonic() - started < 10
