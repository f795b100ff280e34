"""`stackwise.register_model` from a real pipeline step: the version links back to its
training run, pipeline run, code version, orchestrator and datasets; the policy promotes it
automatically, or records a refusal without failing the run; a broken policy file stops the
step before anything is registered."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tests.support import path_of

import stackwise
from stackwise.errors import GovernanceError, PolicyError
from stackwise.governance import audit
from stackwise.governance.policies import PolicyFile
from stackwise.governance.registration import _targets
from stackwise.governance.registry import Registry

PIPELINE = """
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import stackwise as sw

FEATURES = ["a", "b", "c"]


@sw.step
def ingest(raw_dir: str) -> pd.DataFrame:
    path = Path(raw_dir) / "part-0.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 3)), columns=FEATURES)
        frame["y"] = (frame["a"] + frame["b"] > 0).astype(int)
        frame.to_csv(path, index=False)
    sw.log_dataset(path, name="raw/part-0", source=path.resolve().as_uri())
    return pd.read_csv(path)


@sw.step
def train(df: pd.DataFrame, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c).fit(df[FEATURES], df["y"])


@sw.step
def evaluate(model: Any, df: pd.DataFrame, penalty: float) -> dict[str, float]:
    accuracy = float(model.score(df[FEATURES], df["y"])) - penalty
    sw.log_metric("accuracy", accuracy)
    return {"accuracy": accuracy}


@sw.step
def register(model: Any, metrics: dict[str, float], policies: str) -> dict[str, Any]:
    out = sw.register_model(model, "tiny", policies=policies or None, tags={"team": "ml"},
                            pip_requirements=["scikit-learn"])
    return {"version": out.version, "promoted": [p.alias for p in out.promotions],
            "refused": [r.alias for r in out.refusals]}


@sw.pipeline
def pipe(raw_dir: str = "raw", c: float = 1.0, penalty: float = 0.0, policies: str = ""):
    df = ingest(raw_dir)
    model = train(df, c)
    register(model, evaluate(model, df, penalty), policies)
"""

POLICY = """
models:
  tiny:
    staging:
      auto_promote: true
      rules:
        - {kind: metric, metric: accuracy, min: 0.8}
        - {kind: lineage_complete}
"""


@pytest.fixture
def target(write_pipeline: Callable[..., str]) -> str:
    return write_pipeline(PIPELINE)


def _client(project: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{project / '.stackwise/mlflow.db'}")


def test_register_model_tags_lineage_and_auto_promotes(project: Path, target: str) -> None:
    policies = project / "policies.yaml"
    policies.write_text(POLICY)
    record = stackwise.run(target, {"policies": str(policies)})
    assert record.status == "SUCCEEDED", {s.name: s.error for s in record.steps.values()}
    steps = record.steps
    client = _client(project)
    mv = client.get_model_version("tiny", "1")
    tags = mv.tags
    assert mv.run_id == steps["register"].mlflow_run_id
    assert tags["stackwise.training_run_id"] == steps["train"].mlflow_run_id
    assert tags["stackwise.registered_in_run_id"] == steps["register"].mlflow_run_id
    assert tags["stackwise.pipeline_run_id"] == record.mlflow_run_id
    assert tags["stackwise.run_id"] == record.run_id
    assert tags["stackwise.pipeline"] == "pipe"
    assert tags["stackwise.pipeline_version"] == record.pipeline_version
    assert tags["stackwise.orchestrator"] == "local" and tags["stackwise.compute"] == "local"
    assert tags["team"] == "ml"
    ingest_run = client.get_run(steps["ingest"].mlflow_run_id)
    [raw_input] = ingest_run.inputs.dataset_inputs
    datasets = json.loads(tags["stackwise.datasets"])
    raw = [d for d in datasets if d["kind"] == "raw"]
    assert raw == [{"kind": "raw", "name": "raw/part-0", "digest": raw_input.dataset.digest,
                    "source": (project / "raw/part-0.csv").as_uri()}]  # fmt: skip
    features = {d["name"]: d["digest"] for d in datasets if d["kind"] == "feature"}
    assert features == {"ingest.output": steps["ingest"].outputs["output"].digest[:16]}
    # auto-promotion: the policy passed, the alias moved, the event says who and how
    assert client.get_registered_model("tiny").aliases == {"staging": 1}
    [event] = audit.read(Registry(client), "tiny")
    assert (event.action, event.version, event.policy) == ("promote", "1", "passed")
    assert event.via == f"pipeline pipe run {record.run_id}"
    assert json.loads(path_of(steps["register"].outputs["output"].uri).read_text()) == {
        "version": "1", "promoted": ["staging"], "refused": []
    }  # fmt: skip

    # a worse model: registered, not promoted, the refusal recorded, the run still succeeds
    worse = stackwise.run(target, {"policies": str(policies), "penalty": 0.5})
    assert worse.status == "SUCCEEDED"
    assert client.get_registered_model("tiny").aliases == {"staging": 1}
    refusal = audit.read(Registry(client), "tiny")[-1]
    assert (refusal.action, refusal.version, refusal.previous) == ("refuse", "2", "1")
    assert [r.rule for r in refusal.rules if not r.passed] == ["metric accuracy"]


def test_a_broken_policy_fails_the_step_before_anything_is_registered(
    project: Path, target: str
) -> None:
    policies = project / "policies.yaml"
    policies.write_text(POLICY.replace("kind: metric,", "kind: metrics,"))
    record = stackwise.run(target, {"policies": str(policies)})
    assert record.status == "FAILED"
    error = record.steps["register"].error or ""
    assert "unknown rule kind 'metrics'" in error and "line 7" in error, error
    assert _client(project).search_registered_models() == []


def test_register_model_needs_a_tracked_step() -> None:
    with pytest.raises(GovernanceError, match="inside a tracked pipeline step"):
        stackwise.register_model(object(), "m")


def test_promotion_targets_follow_the_lifecycle_order() -> None:
    policies = PolicyFile.model_validate(
        {"models": {"m": {"production": {"auto_promote": True}, "staging": {"rules": []}}}}
    )
    assert _targets(policies, "m", None) == ["production"]
    assert _targets(policies, "m", "staging") == ["staging", "production"]
    assert _targets(policies, "other", ["production"]) == ["production"]
    with pytest.raises(PolicyError, match="Did you mean 'staging'"):
        _targets(policies, "m", "stagging")


def test_policy_file_next_to_the_project_is_found(project: Path, target: str) -> None:
    (project / "policies.yaml").write_text(textwrap.dedent(POLICY))
    record = stackwise.run(target, {})  # `policies` empty: the project's file is used
    assert record.status == "SUCCEEDED"
    assert _client(project).get_registered_model("tiny").aliases == {"staging": 1}


def test_dataset_lineage_tag_always_parses() -> None:
    from stackwise.governance.registration import _fit_json

    many = [{"kind": "raw", "name": f"raw/{i}", "digest": "a" * 16, "source": "s3://b/" + "x" * 200}
            for i in range(2000)]  # fmt: skip
    text = _fit_json(many)
    parsed = json.loads(text)
    assert len(text) <= 100_000 and parsed[-1]["kind"] == "omitted"
    assert len(parsed) - 1 + int(parsed[-1]["count"]) == 2000
    assert json.loads(_fit_json(many[:3])) == many[:3]
