"""The shipped example, end to end on the embedded default: it must really learn, register a
model, and then come from the cache when nothing changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

REF = str(Path(__file__).resolve().parents[2] / "examples/breast_cancer/pipeline.py") + ":training"


@pytest.mark.slow
def test_example_trains_registers_and_caches(project: Path) -> None:
    first = subprocess.run(
        [sys.executable, "-m", "stackwise", "run", REF, "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    steps = {s["name"]: s for s in result["steps"]}
    assert list(steps) == ["ingest", "validate", "features", "train", "evaluate", "register"]
    assert all(s["status"] == "SUCCEEDED" and not s["cached"] for s in steps.values())
    metrics = steps["evaluate"]["metrics"]
    assert metrics["accuracy"] > 0.9 and metrics["roc_auc"] > 0.95, metrics

    raw = sorted((project / ".stackwise/data/raw").glob("dt=*/part-0.csv"))
    assert len(raw) == 30  # dated raw partitions

    client = MlflowClient(f"sqlite:///{project / '.stackwise/mlflow.db'}")
    version = client.get_model_version("breast_cancer_classifier", "1")
    assert version.run_id == steps["register"]["mlflow_run_id"]
    assert version.tags["stackwise.run_id"] == result["run_id"]
    # registered with its lineage, and promoted to staging by the example's policy
    assert version.tags["stackwise.training_run_id"] == steps["train"]["mlflow_run_id"]
    assert version.tags["stackwise.pipeline_run_id"] == result["mlflow_run_id"]
    assert version.tags["stackwise.pipeline_version"] == result["pipeline_version"]
    assert version.tags["stackwise.orchestrator"] == "local"
    lineage = json.loads(version.tags["stackwise.datasets"])
    assert len([d for d in lineage if d["kind"] == "raw"]) == 30
    assert version.tags["stackwise.staging.policy"] == "passed"
    assert client.get_registered_model("breast_cancer_classifier").aliases["staging"] in (1, "1")
    evaluate_run = client.get_run(steps["evaluate"]["mlflow_run_id"])
    assert evaluate_run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert "evaluation.png" in [a.path for a in client.list_artifacts(evaluate_run.info.run_id)]
    ingest_run = client.get_run(steps["ingest"]["mlflow_run_id"])
    raw_inputs = [d.dataset.name for d in ingest_run.inputs.dataset_inputs]
    assert len([n for n in raw_inputs if n.startswith("raw/dt=")]) == 30

    second = subprocess.run(
        [sys.executable, "-m", "stackwise", "run", REF, "--json", "-p", "n_estimators=60"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    again = {s["name"]: s for s in json.loads(second.stdout)["steps"]}
    # ingest takes the run context (all parameters count), so it reruns; validate and
    # features only see unchanged inputs and come from the cache.
    assert again["validate"]["cached"] and again["features"]["cached"]
    assert not again["train"]["cached"] and not again["register"]["cached"]
    assert (
        client.get_model_version("breast_cancer_classifier", "2").run_id
        == (again["register"]["mlflow_run_id"])
    )
