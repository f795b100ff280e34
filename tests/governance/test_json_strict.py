"""`policy check`, `models promote|show|history` and `lineage --format json` print strict JSON
when a model's metrics are NaN or infinite: such values are `null` (see the README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gov_support import PipelineStore
from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands

load_commands()

POLICY = """\
models:
  clf:
    staging:
      rules:
        - {kind: metric, metric: accuracy, min: 0.9}
        - {kind: beat_champion, metric: roc_auc}
"""


def strict_json(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_metrics_are_null_in_every_governance_json(
    project: Path, store: PipelineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STACKWISE_DEBUG", raising=False)
    (project / "stackwise.yaml").write_text(f"tracking_uri: {store.uri}\n")
    (project / "policies.yaml").write_text(POLICY)
    v1 = store.version("clf", metrics={"accuracy": 0.95, "roc_auc": 0.9})
    v2 = store.version("clf", metrics={"accuracy": float("nan"), "roc_auc": float("inf")})

    def run(*args: str) -> tuple[int, Any]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, strict_json(result.stdout)

    assert run("models", "promote", "clf", v1, "--to", "staging", "--json")[0] == 0
    code, checked = run("policy", "check", "clf", v2, "--to", "staging", "--json")
    assert code == 1 and [r["passed"] for r in checked["rules"]] == [False, True]
    code, refused = run("models", "promote", "clf", v2, "--to", "staging", "--json")
    assert code == 1 and refused["rules"] == checked["rules"]
    assert run("models", "show", "clf", "--json")[0] == 0
    assert run("models", "history", "clf", "--json")[0] == 0
    code, graph = run("lineage", f"models:/clf/{v2}", "--format", "json")
    assert code == 0 and graph["nodes"]
