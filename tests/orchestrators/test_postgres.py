"""The local orchestrator against PostgreSQL: tracking to a real `mlflow server` backed by
PostgreSQL, and the run state store itself on PostgreSQL. The database is shared with other
tests and earlier sessions: runs are told apart by id, experiments by a unique name, and
nothing is dropped."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient
from orch_support import (
    all_runs,
    by_name,
    children_of,
    download,
    get_run,
    lines,
    parse_json,
    run_cli,
)

import stackwise
from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator, StateStore

pytestmark = pytest.mark.slow

WritePipeline = Callable[..., str]

PIPE = """
    import pathlib

    import mlflow

    import stackwise
    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent
    UNIQUE = "__UNIQUE__"  # makes cache keys unique to this test run (the cache is shared)


    def _mark(name):
        with (HERE / "executions.log").open("a") as fh:
            fh.write(name + "\\n")


    @step
    def prepare(n: int) -> list:
        _mark("prepare")
        return list(range(n))


    @step
    def fit(xs: list) -> float:
        _mark("fit")
        if (HERE / "fail_fit").exists():
            raise RuntimeError("fit was told to fail")
        for i, x in enumerate(xs):
            stackwise.log_metric("progress", float(x), step=i)
        mlflow.log_metric("plain", 7.0)
        return float(sum(xs))


    @pipeline
    def pipe(n: int = 4):
        fit(prepare(n))
"""


def _source() -> str:
    return PIPE.replace("__UNIQUE__", uuid.uuid4().hex)


def test_tracking_to_postgres_backed_mlflow_server(
    project: Path, write_pipeline: WritePipeline, mlflow_pg_server: str
) -> None:
    experiment = f"stackwise-it-{uuid.uuid4().hex[:12]}"
    stack = StackConfig(base_dir=project, tracking_uri=mlflow_pg_server, experiment=experiment)

    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(write_pipeline(_source())))

    assert run.status == "SUCCEEDED", run.error
    assert run.tracking_uri == mlflow_pg_server
    client = MlflowClient(mlflow_pg_server)
    assert client.get_experiment(str(run.experiment_id)).name == experiment
    runs = all_runs(mlflow_pg_server, run.experiment_id or "")
    assert len(runs) == 3
    parent = get_run(mlflow_pg_server, run.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"n": "4"}
    assert parent.data.tags["stackwise.run_id"] == run.run_id
    children = by_name(children_of(runs, run.mlflow_run_id or ""))
    assert set(children) == {"prepare", "fit"}
    assert {c.info.status for c in children.values()} == {"FINISHED"}
    fit = children["fit"]
    assert fit.data.metrics == {"progress": 3.0, "plain": 7.0}
    history = client.get_metric_history(fit.info.run_id, "progress")
    assert sorted((m.step, m.value) for m in history) == [(i, float(i)) for i in range(4)]
    assert fit.data.tags["stackwise.output.output"] == run.steps["fit"].outputs["output"].uri
    path = download(
        mlflow_pg_server, run.mlflow_run_id, "stackwise/environment.json", project / "dl"
    )
    assert json.loads(Path(path).read_text())["orchestrator"] == "local"


def test_cli_json_output_stays_json_with_a_tracking_server(
    project: Path, write_pipeline: WritePipeline, mlflow_pg_server: str
) -> None:
    """`stackwise run --json` is for machines: with an HTTP tracking server (where MLflow's
    client likes to print "View run ..." links) stdout must still be one JSON document."""
    experiment = f"stackwise-it-{uuid.uuid4().hex[:12]}"
    (project / "stackwise.yaml").write_text(
        f"tracking_uri: {mlflow_pg_server}\nexperiment: {experiment}\n"
    )
    ref = write_pipeline(_source())

    result = run_cli(project, "run", ref, "--json")

    assert result.returncode == 0, result.stderr
    data = parse_json(result.stdout)
    assert data["status"] == "SUCCEEDED"
    assert data["tracking_uri"] == mlflow_pg_server
    parent = get_run(mlflow_pg_server, data["mlflow_run_id"])
    assert parent.info.status == "FINISHED"


def test_state_store_on_postgres_run_and_resume(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, pg_url: str
) -> None:
    stack = stack.model_copy(update={"state_store": pg_url})
    ref = write_pipeline(_source())
    (project / "fail_fit").touch()

    failed = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert failed.status == "FAILED"
    state = StateStore(pg_url)
    saved = state.get_run(failed.run_id)
    assert saved.status == "FAILED"
    assert {n: s.status for n, s in saved.steps.items()} == {
        "prepare": "SUCCEEDED",
        "fit": "FAILED",
    }
    assert failed.run_id in [r.run_id for r in state.list_runs(limit=1000, pipeline="pipe")]

    (project / "fail_fit").unlink()
    resumed = LocalOrchestrator(stack).resume(failed.run_id)

    assert resumed.status == "SUCCEEDED", resumed.error
    assert resumed.run_id == failed.run_id
    saved = state.get_run(failed.run_id)
    assert saved.status == "SUCCEEDED"
    assert {n: s.status for n, s in saved.steps.items()} == dict.fromkeys(
        ["prepare", "fit"], "SUCCEEDED"
    )
    assert lines(project / "executions.log") == ["prepare", "fit", "fit"]
    parent = get_run(stack.tracking_uri_resolved, failed.mlflow_run_id)
    assert parent.info.status == "FINISHED"

    # a second run of the same pipeline hits the PostgreSQL-backed step cache
    again = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))
    assert {n: s.cached for n, s in again.steps.items()} == {"prepare": True, "fit": True}
    assert again.run_id != failed.run_id


def test_cache_lookups_on_a_postgres_state_store_leave_transactions_alone(pg_url: str) -> None:
    """Lookups read in autocommit (one round trip); the pooled connection they used must
    come back transactional: a later transaction that fails is rolled back whole."""
    from stackwise.caching import CacheEntry

    state = StateStore(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    key = uuid.uuid4().hex * 2
    assert state.cache_lookup(key) is None
    state.cache_record(CacheEntry(key=key, pipeline="pipe", step="s", outputs={}, run_id="run-a"))
    found = state.cache_lookup(key)
    assert found is not None and found.run_id == "run-a"
    with pytest.raises(RuntimeError), state.engine.begin() as conn:
        conn.execute(state.cache.delete().where(state.cache.c.cache_key == key))
        raise RuntimeError("abandon the transaction")
    assert state.cache_lookup(key) is not None
