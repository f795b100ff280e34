"""Governance through a real `mlflow server` on PostgreSQL: what a team with several machines
and orchestrators shares. The server enforces what SQLite does not (a registered-model tag
value fits 5000 characters), and two processes promote through its REST API at once."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from gov_support import PipelineStore, promote_concurrently
from mlflow import MlflowClient

from stackwise.errors import PolicyViolation
from stackwise.governance import audit
from stackwise.governance.clock import FixedClock
from stackwise.governance.lifecycle import ModelLifecycle
from stackwise.governance.policies import PolicyFile
from stackwise.governance.registry import Registry


@pytest.mark.slow
def test_lifecycle_on_an_mlflow_server_backed_by_postgres(
    mlflow_pg_server: str, tmp_path: Path, clock: FixedClock
) -> None:
    name = f"clf-{uuid.uuid4().hex[:8]}"  # the database outlives this test session
    client = MlflowClient(mlflow_pg_server)
    store = PipelineStore(uri=mlflow_pg_server, client=client, root=tmp_path,
                          experiment=f"training-{uuid.uuid4().hex[:8]}")  # fmt: skip
    long_rules = [{"kind": "metric", "metric": f"m{i}_" + "x" * 150, "min": 1} for i in range(30)]
    policies = PolicyFile.model_validate({"models": {name: {
        "staging": {"rules": [{"kind": "metric", "metric": "accuracy", "min": 0.9}, *long_rules]},
        "production": {"rules": [{"kind": "soak", "min_hours": 24}]},
    }}})  # fmt: skip
    registry = Registry(client)
    lc = ModelLifecycle(registry, policies, clock=clock, actor="ci")
    good = store.version(name, metrics={"accuracy": 0.95})
    with pytest.raises(PolicyViolation):  # 30 long rules fail: the refusal must still fit
        lc.promote(name, good, "staging")
    lc.promote(name, good, "staging", force=True, reason="metrics backfilled later")
    with pytest.raises(PolicyViolation, match="0.00 h holding @staging"):
        lc.promote(name, good, "production")
    clock.advance(hours=25)
    assert lc.promote(name, good, "production").holder == good
    second = store.version(name)
    lc.promote(name, second, "staging", force=True, reason="try it")
    assert lc.rollback(name, "staging").holder == good
    history = lc.history(name)
    assert [(e.action, e.alias, e.version) for e in history] == [
        ("refuse", "staging", good), ("promote", "staging", good),
        ("refuse", "production", good), ("promote", "production", good),
        ("promote", "staging", second), ("rollback", "staging", good),
    ]  # fmt: skip
    assert len(history[0].rules) > 0 and all(not r.passed for r in history[0].rules)
    assert client.get_registered_model(name).aliases == {"staging": good, "production": good}

    # two processes, one alias, same instants, through the server
    versions = [store.version(name) for _ in range(4)]
    outcomes = promote_concurrently(mlflow_pg_server, name, versions[0::2], versions[1::2])
    assert len(outcomes) == 4
    events = [e for e in audit.read(registry, name) if e.actor.startswith("process-")]
    assert sorted(e.version for e in events) == sorted(versions)
    holders = audit.holders(audit.read(registry, name), "staging")
    assert registry.holder(name, "staging") == holders[-1] == events[-1].version
