"""The embedded local orchestrator end to end: DAG execution, the MLflow run layout, secret
redaction, batched tracking, bounded parallelism, failure propagation and tracking
preconditions. Real MLflow (SQLite in the test's project), real threads."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from orch_support import all_runs, by_name, children_of, download, free_port, get_run, lines

import stackwise
from stackwise.artifacts.store import ArtifactRef, ArtifactStore
from stackwise.config import StackConfig
from stackwise.errors import TrackingError
from stackwise.orchestrators.local import LocalOrchestrator, StateStore

WritePipeline = Callable[..., str]

MAIN = """
    import pathlib

    import mlflow
    import pandas as pd

    import stackwise
    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent


    @step
    def load(n_rows: int) -> pd.DataFrame:
        with (HERE / "executions.log").open("a") as fh:
            fh.write("load\\n")
        return pd.DataFrame({"x": [float(i) for i in range(n_rows)],
                             "y": [2.0 * i for i in range(n_rows)]})


    @step
    def train(df: pd.DataFrame, lr: float) -> float:
        for i in range(3):
            stackwise.log_metric("loss", 1.0 / (i + 1), step=i)
        mlflow.log_metric("plain_metric", 42.0)
        return float(df["y"].sum()) * lr


    @step
    def report(score: float) -> dict:
        stackwise.log_metric("score", score)
        return {"score": score}


    @pipeline
    def pipe(n_rows: int = 10, lr: float = 0.5):
        df = load(n_rows)
        score = train(df, lr)
        report(score)
"""


def test_local_orchestrator_runs_dag_with_mlflow_layout(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(MAIN)
    pipeline = stackwise.load_pipeline(ref)

    run = LocalOrchestrator(stack).run(pipeline, {"lr": 0.25})

    assert run.status == "SUCCEEDED", run.error
    assert list(run.steps) == ["load", "train", "report"]
    assert all(s.status == "SUCCEEDED" and not s.cached for s in run.steps.values())
    assert lines(project / "executions.log") == ["load"]
    store = ArtifactStore(stack.artifact_store_resolved)
    report_out = ArtifactRef.from_dict(run.steps["report"].outputs["output"])
    assert store.get(report_out) == {"score": 90.0 * 0.25}

    # the state store holds the same record
    saved = StateStore(stack.state_store_resolved).get_run(run.run_id)
    assert saved.status == "SUCCEEDED"
    assert saved.mlflow_run_id == run.mlflow_run_id
    assert {n: s.status for n, s in saved.steps.items()} == dict.fromkeys(run.steps, "SUCCEEDED")

    # -- MLflow: one parent run ...
    assert run.tracking_uri == stack.tracking_uri_resolved
    assert run.mlflow_run_id and run.experiment_id
    client = MlflowClient(run.tracking_uri)
    runs = all_runs(run.tracking_uri, run.experiment_id)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_id for p in parents] == [run.mlflow_run_id]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["stackwise.pipeline"] == "pipe"
    assert tags["stackwise.pipeline_version"] == pipeline.version
    assert tags["stackwise.orchestrator"] == "local"
    assert tags["stackwise.run_id"] == run.run_id
    assert parent.data.params == {"n_rows": "10", "lr": "0.25"}
    # plain mlflow.log_metric inside a step must not land in the parent
    assert not {"loss", "plain_metric", "score"} & set(parent.data.metrics)
    downloaded = download(
        run.tracking_uri, run.mlflow_run_id, "stackwise/environment.json", project / "dl"
    )
    manifest = json.loads(Path(downloaded).read_text())
    assert manifest["orchestrator"] == "local"
    assert manifest["python"]["version"]
    assert "mlflow" in manifest["packages"]

    # ... and one nested child run per step, all FINISHED
    children = by_name(children_of(runs, run.mlflow_run_id))
    assert len(runs) == 1 + 3
    assert set(children) == {"load", "train", "report"}
    for name, child in children.items():
        assert child.info.status == "FINISHED", name
        assert child.info.run_id == run.steps[name].mlflow_run_id
        assert child.data.tags["stackwise.step"] == name
        assert child.data.tags["stackwise.run_id"] == run.run_id
        out = run.steps[name].outputs["output"]
        assert child.data.tags["stackwise.output.output"] == out.uri
        assert child.data.tags["stackwise.output.output.digest"] == out.digest

    train = children["train"]
    # stackwise.log_metric and plain mlflow.log_metric both land in the step's run
    assert train.data.metrics == {"loss": pytest.approx(1 / 3), "plain_metric": 42.0}
    history = client.get_metric_history(train.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [
        (0, 1.0),
        (1, pytest.approx(0.5)),
        (2, pytest.approx(1 / 3)),
    ]
    assert children["report"].data.metrics == {"score": 22.5}
    assert children["load"].data.metrics == {}
    # a pipeline parameter bound to a step input is that step's param
    assert train.data.params == {"lr": "0.25"}
    assert children["load"].data.params == {"n_rows": "10"}
    assert children["report"].data.params == {}
    # the DataFrame input is an MLflow dataset input with the artifact's digest
    datasets = train.inputs.dataset_inputs
    assert len(datasets) == 1
    load_out = run.steps["load"].outputs["output"]
    assert datasets[0].dataset.name == "load.output"
    assert datasets[0].dataset.digest == load_out.digest[:16]
    assert datasets[0].dataset.source == load_out.uri
    assert children["load"].inputs.dataset_inputs == []
    assert train.data.tags["stackwise.input.df"] == load_out.uri


def test_stackwise_run_api_uses_project_defaults(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(MAIN)

    run = stackwise.run(ref, {"n_rows": 4})

    assert run.status == "SUCCEEDED", run.error
    assert run.params == {"n_rows": 4, "lr": 0.5}
    assert run.artifact_root == (project / ".stackwise" / "artifacts").resolve().as_uri()
    assert run.tracking_uri == f"sqlite:///{project / '.stackwise' / 'mlflow.db'}"
    saved = StateStore(stack.state_store_resolved).get_run(run.run_id)
    assert saved.status == "SUCCEEDED"
    assert [s.status for s in saved.steps.values()] == ["SUCCEEDED"] * 3
    runs = all_runs(run.tracking_uri, run.experiment_id or "")
    assert len(runs) == 4
    parent = get_run(run.tracking_uri, run.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"n_rows": "4", "lr": "0.5"}
    assert all(r.info.status == "FINISHED" for r in runs)


SECRET = "s3cr3t-value-123"

SECRET_PIPE = """
    from stackwise import pipeline, step


    @step
    def use_endpoint(endpoint: str) -> int:
        return len(endpoint)


    @step
    def leak_in_error(endpoint: str) -> int:
        raise ValueError(f"cannot connect with {endpoint}")


    @pipeline
    def pipe(endpoint: str = "none"):
        use_endpoint(endpoint)
        leak_in_error(endpoint)
"""


def _assert_secret_absent(runs: list[Any]) -> None:
    for r in runs:
        for key, value in r.data.params.items():
            assert SECRET not in key and SECRET not in value, (r.info.run_name, key)
        for key, value in r.data.tags.items():
            assert SECRET not in key and SECRET not in value, (r.info.run_name, key)


def test_secrets_are_redacted_from_params_tags_and_manifest(
    project: Path,
    stack: StackConfig,
    write_pipeline: WritePipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRET)
    ref = write_pipeline(SECRET_PIPE)

    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref), {"endpoint": SECRET})

    assert run.steps["use_endpoint"].status == "SUCCEEDED"
    assert run.steps["leak_in_error"].status == "FAILED"
    runs = all_runs(run.tracking_uri or "", run.experiment_id or "")
    assert len(runs) == 3
    _assert_secret_absent(runs)
    parent = get_run(run.tracking_uri, run.mlflow_run_id)
    assert parent.data.params == {"endpoint": "***REDACTED***"}
    children = by_name(children_of(runs, run.mlflow_run_id or ""))
    assert children["use_endpoint"].data.params == {"endpoint": "***REDACTED***"}
    error_tag = children["leak_in_error"].data.tags["stackwise.error"]
    assert "cannot connect with ***REDACTED***" in error_tag

    path = download(
        run.tracking_uri, run.mlflow_run_id, "stackwise/environment.json", project / "dl"
    )
    text = Path(path).read_text()
    assert SECRET not in text
    env = json.loads(text)["environment_variables"]
    assert "MY_SERVICE_TOKEN" not in env
    assert env  # the rest of the environment is still recorded


SECRET_TAG_PIPE = """
    from stackwise import StepContext, pipeline, step


    @step
    def tag_endpoint(endpoint: str, ctx: StepContext) -> int:
        ctx.set_tag("endpoint", endpoint)
        return len(endpoint)


    @pipeline
    def pipe(endpoint: str = "none"):
        tag_endpoint(endpoint)
"""


def test_secret_in_step_tag_is_redacted(
    project: Path,
    stack: StackConfig,
    write_pipeline: WritePipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tracking/redaction.py promises that secrets are masked in tags too, and the runner
    masks the error tag; a tag a step sets with StepContext.set_tag goes through the same
    _finish_tracking call and must be masked as well."""
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRET)
    ref = write_pipeline(SECRET_TAG_PIPE)

    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref), {"endpoint": SECRET})

    assert run.status == "SUCCEEDED", run.error
    runs = all_runs(run.tracking_uri or "", run.experiment_id or "")
    child = by_name(children_of(runs, run.mlflow_run_id or ""))["tag_endpoint"]
    assert "endpoint" in child.data.tags
    _assert_secret_absent(runs)


MANY_METRICS = """
    import stackwise
    from stackwise import pipeline, step


    @step
    def noisy() -> int:
        for i in range(500):
            stackwise.log_metric("m", float(i), step=i)
        return 500


    @pipeline
    def pipe():
        noisy()
"""


def test_step_metrics_are_sent_in_one_batch(
    project: Path,
    stack: StackConfig,
    write_pipeline: WritePipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    batches: list[tuple[str, int]] = []
    single: list[str] = []
    original_batch: Any = SqlAlchemyStore.log_batch
    original_metric: Any = SqlAlchemyStore.log_metric

    def counting_log_batch(self: Any, *args: Any, **kwargs: Any) -> Any:
        run_id = kwargs["run_id"] if "run_id" in kwargs else args[0]
        metrics = kwargs.get("metrics", args[1] if len(args) > 1 else [])
        batches.append((run_id, len(metrics)))
        return original_batch(self, *args, **kwargs)

    def counting_log_metric(self: Any, *args: Any, **kwargs: Any) -> Any:
        single.append(kwargs["run_id"] if "run_id" in kwargs else args[0])
        return original_metric(self, *args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "log_batch", counting_log_batch)
    monkeypatch.setattr(SqlAlchemyStore, "log_metric", counting_log_metric)
    ref = write_pipeline(MANY_METRICS)

    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "SUCCEEDED", run.error
    child_id = run.steps["noisy"].mlflow_run_id
    assert child_id
    history = MlflowClient(run.tracking_uri).get_metric_history(child_id, "m")
    assert sorted((m.step, m.value) for m in history) == [(i, float(i)) for i in range(500)]
    assert [n for rid, n in batches if rid == child_id] == [500]
    assert single == []
    assert any(rid == run.mlflow_run_id for rid, _ in batches)  # the wrapper sees the parent too


PARALLEL = """
    import pathlib
    import time

    from stackwise import StepContext, pipeline, step

    HERE = pathlib.Path(__file__).parent


    @step
    def work(ctx: StepContext) -> None:
        start = time.time()
        time.sleep(0.5)
        folder = HERE / "times" / ctx.run_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ctx.step).write_text(f"{start} {time.time()}")


    @pipeline
    def pipe():
        for i in range(4):
            work.alias(f"w{i}")()
"""


def _max_overlap(project: Path, run_id: str) -> int:
    files = sorted((project / "times" / run_id).iterdir())
    assert [f.name for f in files] == ["w0", "w1", "w2", "w3"]
    spans = [tuple(float(x) for x in f.read_text().split()) for f in files]
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


def test_max_parallel_bounds_concurrent_steps(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    pipeline = stackwise.load_pipeline(write_pipeline(PARALLEL))
    # the stack's max_parallel is the default; the run argument overrides it
    orchestrator = LocalOrchestrator(stack.model_copy(update={"max_parallel": 2}))

    started = time.monotonic()
    two = orchestrator.run(pipeline, use_cache=False)
    two_s = time.monotonic() - started
    four = orchestrator.run(pipeline, max_parallel=4, use_cache=False)

    assert two.status == four.status == "SUCCEEDED"
    assert two.options["max_parallel"] == 2
    assert four.options["max_parallel"] == 4
    assert _max_overlap(project, two.run_id) == 2
    assert two_s >= 1.0  # two waves of 0.5 s
    assert _max_overlap(project, four.run_id) >= 3


FAILING = """
    from stackwise import pipeline, step


    @step
    def start() -> int:
        return 1


    @step
    def boom(x: int) -> int:
        raise RuntimeError("kaput")


    @step
    def after_boom(y: int) -> int:
        return y


    @step
    def further(z: int) -> int:
        return z


    @step
    def sibling(x: int) -> int:
        return x + 1


    @pipeline
    def pipe():
        x = start()
        further(after_boom(boom(x)))
        sibling(x)
"""


def test_failure_skips_downstream_and_closes_all_runs(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(write_pipeline(FAILING)))

    assert run.status == "FAILED"
    statuses = {n: s.status for n, s in run.steps.items()}
    assert statuses == {"start": "SUCCEEDED", "boom": "FAILED", "after_boom": "SKIPPED",
                        "further": "SKIPPED", "sibling": "SUCCEEDED"}  # fmt: skip
    assert "RuntimeError: kaput" in (run.steps["boom"].error or "")
    assert "boom" in (run.error or "")
    saved = StateStore(stack.state_store_resolved).get_run(run.run_id)
    assert saved.status == "FAILED"
    assert {n: s.status for n, s in saved.steps.items()} == statuses
    assert not saved.stale

    runs = all_runs(run.tracking_uri or "", run.experiment_id or "")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    parent = get_run(run.tracking_uri, run.mlflow_run_id)
    assert parent.info.status == "FAILED"
    children = by_name(children_of(runs, run.mlflow_run_id or ""))
    assert set(children) == {"start", "boom", "sibling"}  # skipped steps never ran
    assert children["boom"].info.status == "FAILED"
    assert "kaput" in children["boom"].data.tags["stackwise.error"]
    assert children["sibling"].info.status == "FINISHED"
    assert run.steps["after_boom"].mlflow_run_id is None


def test_tracking_disabled_runs_without_mlflow(
    project: Path, write_pipeline: WritePipeline
) -> None:
    stack = StackConfig(base_dir=project, tracking=False)
    ref = write_pipeline(MAIN.replace('mlflow.log_metric("plain_metric", 42.0)', "pass"))

    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "SUCCEEDED", run.error
    assert run.mlflow_run_id is None and run.experiment_id is None
    assert all(s.mlflow_run_id is None for s in run.steps.values())
    assert lines(project / "executions.log") == ["load"]
    assert StateStore(stack.state_store_resolved).get_run(run.run_id).status == "SUCCEEDED"
    assert not (project / ".stackwise" / "mlflow.db").exists()
    assert not (project / "mlruns").exists()


def test_unreachable_tracking_server_fails_before_anything_runs(
    project: Path, write_pipeline: WritePipeline
) -> None:
    stack = StackConfig(base_dir=project, tracking_uri=f"http://127.0.0.1:{free_port()}")
    pipeline = stackwise.load_pipeline(write_pipeline(MAIN))

    started = time.monotonic()
    with pytest.raises(TrackingError, match="cannot reach the MLflow tracking server"):
        LocalOrchestrator(stack).run(pipeline)

    assert time.monotonic() - started < 15
    assert not (project / "executions.log").exists()
    assert StateStore(stack.state_store_resolved).list_runs() == []
