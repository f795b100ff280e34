"""`stackwise models ...` and `stackwise policy ...`: exit codes (0 done, 1 refused, 2 bad
input), the rule table, JSON output, and a broken policy file that changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gov_support import PipelineStore
from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands
from stackwise.governance import audit
from stackwise.governance.registry import Registry

load_commands()

POLICY = """\
models:
  clf:
    staging:
      rules:
        - {kind: metric, metric: accuracy, min: 0.9}
    production:
      rules:
        - {kind: approval}
"""


@pytest.fixture
def cli(project: Path, store: PipelineStore, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs the CLI in-process in a project whose stack points at the test's MLflow store."""
    monkeypatch.delenv("STACKWISE_DEBUG", raising=False)
    monkeypatch.setenv("STACKWISE_USER", "carol")
    (project / "stackwise.yaml").write_text(f"tracking_uri: {store.uri}\n")
    (project / "policies.yaml").write_text(POLICY)

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _events(store: PipelineStore) -> list[audit.AuditEvent]:
    return audit.read(Registry(store.client), "clf")


def test_promote_list_show_and_history(cli: Any, store: PipelineStore) -> None:
    v1 = store.version(metrics={"accuracy": 0.95})
    code, out, err = cli("models", "promote", "clf", v1, "--to", "staging", "--reason", "first")
    assert code == 0, err
    assert "promoted clf @staging: (none) -> v1" in out and "metric accuracy" in out
    code, out, _ = cli("models", "list", "--json")
    [summary] = json.loads(out)
    assert summary["aliases"] == {"staging": "1"} and summary["versions"] == 1
    assert summary["last_event"]["actor"] == "carol"
    code, out, _ = cli("models", "show", "clf", "--json")
    detail = json.loads(out)
    assert detail["versions"][0]["policy"] == {"staging": "passed"}
    assert detail["versions"][0]["aliases"] == ["staging"]
    code, out, _ = cli("models", "show", "clf")
    assert code == 0 and "@staging: passed" in out
    code, out, _ = cli("models", "history", "clf")
    assert code == 0 and "promote" in out and "first" in out


def test_refused_promotion_exits_1_with_the_reasons(cli: Any, store: PipelineStore) -> None:
    bad = store.version(metrics={"accuracy": 0.7})
    code, out, err = cli("models", "promote", "clf", bad, "--to", "staging")
    assert code == 1
    assert "FAIL" in out and "accuracy >= 0.9" in out and "0.7 (step evaluate" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("promotion refused: clf v1 -> @staging")
    assert Registry(store.client).holder("clf", "staging") is None
    [event] = _events(store)
    assert event.action == "refuse" and event.actor == "carol"
    code, out, _ = cli("models", "promote", "clf", bad, "--to", "staging", "--json")
    assert code == 1 and json.loads(out)["rules"][0]["passed"] is False


def test_force_needs_reason_then_overrides(cli: Any, store: PipelineStore) -> None:
    bad = store.version(metrics={"accuracy": 0.7})
    code, _, err = cli("models", "promote", "clf", bad, "--to", "staging", "--force")
    assert code == 2 and "needs --reason" in err and _events(store) == []
    code, out, err = cli("models", "promote", "clf", bad, "--to", "staging", "--force",
                         "--reason", "customer demo", "--json")  # fmt: skip
    assert code == 0, err
    outcome = json.loads(out)
    assert outcome["event"]["forced"] is True and outcome["holder"] == bad
    code, out, _ = cli("models", "history", "clf", "--json")
    assert [(e["action"], e["forced"], e["reason"]) for e in json.loads(out)] == [
        ("promote", True, "customer demo")
    ]


def test_policy_check_reports_without_recording(cli: Any, store: PipelineStore) -> None:
    v = store.version(metrics={"accuracy": 0.95})
    code, out, _ = cli("policy", "check", "clf", v, "--to", "production")
    assert code == 1 and "no approver" in out and "approval by anyone" in out
    code, out, _ = cli("policy", "check", "clf", v, "--to", "production", "--approver", "dan",
                       "--json")  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["passed"] and result["rules"][0]["observed"] == "approved by dan"
    assert result["policy_source"].endswith("policies.yaml")
    assert _events(store) == []


def test_rollback_and_history_filter(cli: Any, store: PipelineStore) -> None:
    v1, v2 = store.version(), store.version()
    for v in (v1, v2):
        assert cli("models", "promote", "clf", v, "--to", "production", "--approver", "x")[0] == 0
    code, out, _ = cli("models", "rollback", "clf", "--alias", "production", "--reason", "bad")
    assert code == 0 and "rolled back clf @production: v2 -> v1" in out
    code, _, err = cli("models", "rollback", "clf", "--alias", "production")
    assert code == 2 and "no previous holder" in err
    code, out, _ = cli("models", "history", "clf", "--alias", "staging", "--json")
    assert json.loads(out) == []
    code, out, _ = cli("models", "history", "clf", "--alias", "production", "--json")
    assert [e["action"] for e in json.loads(out)] == ["promote", "promote", "rollback"]


def test_a_broken_policy_file_changes_nothing(
    cli: Any, store: PipelineStore, project: Path
) -> None:
    v = store.version(metrics={"accuracy": 0.95})
    (project / "policies.yaml").write_text(POLICY.replace("min: 0.9", "min: ninety"))
    code, _, err = cli("models", "promote", "clf", v, "--to", "staging")
    assert code == 2
    assert err.startswith(f"invalid policy: {project / 'policies.yaml'}: line 5, key "
                          "models.clf.staging.rules[0].min: expected a number")  # fmt: skip
    assert _events(store) == [] and Registry(store.client).holder("clf", "staging") is None
    code, _, err = cli("policy", "validate")
    assert code == 2 and "line 5" in err
    code, out, _ = cli("policy", "validate", "--policies", str(project / "nope.yaml"))
    assert code == 2


def test_policy_validate_ok(cli: Any) -> None:
    code, out, _ = cli("policy", "validate")
    assert code == 0 and "OK; aliases staging, production; 1 models, 2 rules" in out


def test_unknown_model_and_alias_exit_2(cli: Any, store: PipelineStore) -> None:
    v = store.version()
    code, _, err = cli("models", "promote", "clf", v, "--to", "prodution")
    assert code == 2 and "Did you mean 'production'" in err
    code, _, err = cli("models", "show", "clv")
    assert code == 2 and "Did you mean 'clf'" in err


def test_help_does_not_import_mlflow(project: Path) -> None:
    code = (
        "import sys; from stackwise.cli.main import load_commands; load_commands(); "
        "assert 'mlflow' not in sys.modules and 'pydantic' not in sys.modules, 'heavy import'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "stackwise", "models", "--help"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0
    for command in ("list", "show", "promote", "rollback", "history"):
        assert command in proc.stdout
