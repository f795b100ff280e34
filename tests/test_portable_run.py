"""The proof of the contract: a foreign orchestrator that shares only a code bundle, an artifact
store URL and a tracking URI runs every step of the example pipeline as
`python -m stackwise.runner` in fresh processes (from a folder where the project is not
importable), and MLflow holds the same records as for `stackwise run`. A second worker racing
to create the parent run leaves one parent; a fresh process gets a cache hit through the
artifact-store cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from stackwise.authoring.loader import load_pipeline
from stackwise.bundles import build_bundle, portable_ref
from stackwise.conformance import compare, snapshot
from stackwise.contract import CachePolicy, PipelineRef, RunClose, StepResult
from stackwise.invocations import build_invocation, tracking_target
from stackwise.tracking.layout import PipelineRunInfo

ROOT = Path(__file__).resolve().parents[1]
TARGET = "examples/breast_cancer/pipeline.py:training"

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHONPATH"))}
    env["STACKWISE_CACHE_DIR"] = str(tmp_path / "host-cache")
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def _worker(
    tmp_path: Path, args: list[str], payload: str, host: str = "worker"
) -> subprocess.Popen[str]:
    """A fresh process in a folder that holds nothing of the project (one folder per host)."""
    cwd = tmp_path / host
    cwd.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "stackwise.runner", *args, "-"],
        cwd=cwd, env=_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _run_step(tmp_path: Path, payload: str) -> StepResult:
    proc = _worker(tmp_path, ["--invocation"], payload)
    out, err = proc.communicate(payload, timeout=300)
    assert proc.returncode == 0, err
    return StepResult.model_validate_json(out.strip().splitlines()[-1])


@pytest.fixture
def project(tmp_path: Path, mlflow_db_template: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples", project / "examples")
    (project / ".stackwise").mkdir()
    shutil.copyfile(mlflow_db_template, project / ".stackwise" / "mlflow.db")
    return project


def _local_run(project: Path, tmp_path: Path) -> tuple[str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "stackwise", "run", TARGET, "--json"],
        cwd=project, env=_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    return record["tracking_uri"], record["mlflow_run_id"]


def test_a_foreign_orchestrator_records_what_a_local_run_records(
    project: Path, tmp_path: Path, mlflow_db_template: Path
) -> None:
    local_uri, local_parent = _local_run(project, tmp_path)

    # The foreign side: its own stores, the project only as a bundle in its artifact store.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copyfile(mlflow_db_template, foreign / "mlflow.db")
    uri = f"sqlite:///{foreign / 'mlflow.db'}"
    artifact_root = (foreign / "artifacts").as_uri()
    bundle, _, _ = build_bundle(project, artifact_root)
    pipeline = load_pipeline(str(project / TARGET))
    ref = portable_ref(str(project / TARGET), project, bundle).model_copy(update={"root": None})
    assert ref == PipelineRef(target="examples/breast_cancer/pipeline.py", name="training",
                              bundle=bundle)  # fmt: skip
    run_id = "foreign-run-1"
    info = PipelineRunInfo(
        pipeline=pipeline.name, version=pipeline.version, ref=str(ref), run_id=run_id,
        orchestrator="test-harness", compute="local", source_folder=str(project),
    )  # fmt: skip
    target = tracking_target(uri, pipeline.name, info,
                             artifact_location=(foreign / "mlartifacts").as_uri())  # fmt: skip
    params = pipeline.resolve_params({})

    def invocation(step: str, attempt: int = 1, run: str = run_id) -> str:
        return build_invocation(
            pipeline, step, ref=ref, run_id=run, params=params, artifact_root=artifact_root,
            attempt=attempt, tracking=target, cache=CachePolicy(store="artifacts"),
            orchestrator="test-harness",
        ).model_dump_json()  # fmt: skip

    # The first step, twice at the same moment: two workers race to create the parent run.
    first = pipeline.order[0]
    racers = [_worker(tmp_path, ["--invocation"], "", host=f"racer-{i}") for i in range(2)]
    for attempt, proc in enumerate(racers, start=1):
        assert proc.stdin is not None
        proc.stdin.write(invocation(first, attempt))
        proc.stdin.close()
    for proc in racers:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()  # small: the pipes never fill
        assert proc.wait(300) == 0, out + err
    # Then every other step, in dependency order, each in a fresh process.
    for step in pipeline.order[1:]:
        result = _run_step(tmp_path, invocation(step))
        assert result.status == "SUCCEEDED" and not result.cached, result.error
    close = RunClose(pipeline=ref, run_id=run_id, artifact_root=artifact_root, tracking=target)
    proc = _worker(tmp_path, ["--close"], "")
    out, err = proc.communicate(close.model_dump_json(), timeout=300)
    assert proc.returncode == 0 and out.strip() == "SUCCEEDED", err

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(pipeline.name)
    parents = client.search_runs(
        [experiment.experiment_id],
        f"tags.`stackwise.run_id` = '{run_id}' and tags.`stackwise.run_kind` = 'pipeline'",
    )
    assert len(parents) == 1, "the racing workers left more than one parent run"
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    first_attempts = client.search_runs(
        [experiment.experiment_id],
        f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and tags.`stackwise.step` = '{first}'",
    )
    assert len(first_attempts) == 2  # both racers recorded their attempt under the one parent

    expected, actual = snapshot(local_uri, local_parent), snapshot(uri, parent.info.run_id)
    # not a vacuous comparison: every step, its params, metrics, datasets and the model
    assert set(expected.steps) == set(pipeline.order)
    assert expected.steps["evaluate"].metric_keys >= {"accuracy", "roc_auc"}
    assert expected.steps["ingest"].datasets and expected.steps["train"].params
    assert "breast_cancer_classifier" in expected.model_versions
    differences = compare(expected, actual)
    assert differences == [], "\n".join(differences)

    # A new run in a fresh process: the first step is a hit of the artifact-store cache.
    cached = _run_step(tmp_path, invocation(first, run="foreign-run-2"))
    assert cached.cached and cached.status == "SUCCEEDED"
    hit = client.get_run(cached.mlflow_run_id or "")
    assert hit.data.tags["stackwise.cached"] == "true"
    assert hit.data.tags["stackwise.cached_from"] in {r.info.run_id for r in first_attempts}
    assert hit.data.tags["stackwise.output.output.digest"] == cached.outputs["output"].digest


def test_a_worker_without_the_upstream_output_says_which_step_to_run_first(
    project: Path, tmp_path: Path
) -> None:
    artifact_root = (tmp_path / "artifacts").as_uri()
    bundle, _, _ = build_bundle(project, artifact_root)
    pipeline = load_pipeline(str(project / TARGET))
    ref = PipelineRef(target="examples/breast_cancer/pipeline.py", name="training", bundle=bundle)
    second = pipeline.order[1]
    payload = build_invocation(
        pipeline, second, ref=ref, run_id="r", params=pipeline.resolve_params({}),
        artifact_root=artifact_root,
    ).model_dump_json()  # fmt: skip
    proc = _worker(tmp_path, ["--invocation"], payload)
    out, err = proc.communicate(payload, timeout=300)
    assert proc.returncode == 2, err  # the invocation is wrong: not worth a retry
    result = StepResult.model_validate_json(out.strip().splitlines()[-1])
    assert result.error_type == "ArtifactError" and not result.retryable
    assert "run the upstream step first" in (result.error or "")
