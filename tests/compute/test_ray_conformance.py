"""The conformance proof for compute backends: the example pipeline run locally, and run again
with its training step on Ray (the local orchestrator still orders it), leave the same records
in MLflow (`stackwise.conformance.compare` finds no difference)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import stackwise
from stackwise.authoring import loader
from stackwise.config import StackConfig
from stackwise.conformance import compare, snapshot
from stackwise.orchestrators.local import LocalOrchestrator, RunRecord

ROOT = Path(__file__).resolve().parents[2]
TRAIN = '@sw.step(tags={"kind": "training"}, resources=sw.Resources(cpu=1, memory="2Gi"))'

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


def _run(folder: Path, mlflow_db_template: Path, monkeypatch: pytest.MonkeyPatch) -> RunRecord:
    (folder / ".stackwise").mkdir(parents=True)
    shutil.copyfile(mlflow_db_template, folder / ".stackwise" / "mlflow.db")
    monkeypatch.chdir(folder)  # the example keeps its raw data under the working folder
    loader.forget()
    pipeline = stackwise.load_pipeline(str(folder / "examples/breast_cancer/pipeline.py:training"))
    run = LocalOrchestrator(StackConfig(base_dir=folder)).run(pipeline)
    assert run.status == "SUCCEEDED", run.error
    return run


def test_a_training_step_on_ray_is_recorded_as_a_local_one(
    tmp_path: Path, mlflow_db_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local, on_ray = tmp_path / "local", tmp_path / "on-ray"
    shutil.copytree(ROOT / "examples", local / "examples")
    shutil.copytree(ROOT / "examples", on_ray / "examples")
    source = on_ray / "examples/breast_cancer/pipeline.py"
    text = source.read_text()
    assert TRAIN in text
    source.write_text(text.replace(TRAIN, TRAIN.replace("@sw.step(", '@sw.step(compute="ray", ')))

    expected_run = _run(local, mlflow_db_template, monkeypatch)
    actual_run = _run(on_ray, mlflow_db_template, monkeypatch)

    expected = snapshot(expected_run.tracking_uri or "", expected_run.mlflow_run_id or "")
    actual = snapshot(actual_run.tracking_uri or "", actual_run.mlflow_run_id or "")
    # not vacuous: every step with its records, and the training step really ran on Ray
    assert set(expected.steps) == set(actual.steps) == set(expected_run.steps)
    assert (
        expected.steps["train"].params and "train_accuracy" in expected.steps["train"].metric_keys
    )
    from mlflow import MlflowClient

    trained = MlflowClient(actual_run.tracking_uri).get_run(actual_run.steps["train"].mlflow_run_id)
    assert trained.data.tags["stackwise.compute"] == "ray"
    differences = compare(expected, actual)
    assert differences == [], "\n".join(differences)
