"""Policies that load but cannot guard what they seem to are warned about (never refused) by
`policy validate`, `policy check` and `models promote`, on a real MLflow store: a policy for a
model name that is not registered (with did-you-mean), a `beat_champion` margin no candidate
can fail, a minimised metric compared with the default direction. Thresholds no value can
meet (NaN, min above max) and metric names MLflow refuses are errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gov_support import PipelineStore
from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands

load_commands()

TYPO = """\
models:
  clff:
    staging:
      rules:
        - {kind: metric, metric: accuracy, min: 0.9}
"""


@pytest.fixture
def cli(project: Path, store: PipelineStore, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI in-process on the test's MLflow store; `policy` is the policies.yaml text."""
    monkeypatch.delenv("STACKWISE_DEBUG", raising=False)
    monkeypatch.setenv("STACKWISE_USER", "carol")
    (project / "stackwise.yaml").write_text(f"tracking_uri: {store.uri}\n")

    def invoke(policy: str, *args: str) -> tuple[int, str, str]:
        (project / "policies.yaml").write_text(policy)
        result = CliRunner().invoke(app, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def test_validate_warns_about_an_unregistered_model_name(cli: Any, store: PipelineStore) -> None:
    store.version("clf", metrics={"accuracy": 0.95})
    store.version("other", metrics={"accuracy": 0.95})
    code, out, err = cli(TYPO, "policy", "validate")
    assert code == 0 and "OK" in out
    (line,) = _warnings(err)
    assert "models.clff: no registered model is named 'clff'" in line
    assert "Did you mean 'clf'?" in line and "'clf' has no policy" in line


def test_check_and_promote_of_the_real_model_warn_it_has_no_policy(
    cli: Any, store: PipelineStore
) -> None:
    v1 = store.version("clf", metrics={"accuracy": 0.5})
    code, out, err = cli(TYPO, "policy", "check", "clf", v1, "--to", "staging", "--json")
    assert code == 0  # nothing guards it: that is the point of the warning
    data = json.loads(out)
    assert [w["code"] for w in data["warnings"]] == ["unregistered_model"]
    assert "Did you mean 'clf'?" in _warnings(err)[0]
    code, out, err = cli(TYPO, "models", "promote", "clf", v1, "--to", "staging")
    assert code == 0 and "promoted clf @staging" in out
    assert "no registered model is named 'clff'" in _warnings(err)[0]


def test_no_models_registered_yet_checks_no_names(cli: Any) -> None:
    code, out, err = cli(TYPO, "policy", "validate")
    assert code == 0 and "OK" in out and _warnings(err) == []


def test_a_margin_pct_that_cannot_fail_is_warned_about(cli: Any, store: PipelineStore) -> None:
    store.version("clf", metrics={"accuracy": 0.9})
    policy = """\
models:
  clf:
    staging:
      rules:
        - {kind: beat_champion, metric: accuracy, margin_pct: -100}
"""
    code, out, err = cli(policy, "policy", "validate")
    assert code == 0
    (line,) = _warnings(err)
    assert "models.clf.staging.rules[0]: beat_champion on accuracy with margin_pct -100 " in line
    assert "cannot fail" in line


def test_an_absolute_margin_that_cannot_fail_is_warned_about_when_checked(
    cli: Any, store: PipelineStore
) -> None:
    policy = """\
models:
  clf:
    staging:
      rules:
        - {kind: beat_champion, metric: accuracy, margin: -1}
"""
    v1 = store.version("clf", metrics={"accuracy": 0.9})
    v2 = store.version("clf", metrics={"accuracy": 0.05})
    assert cli(policy, "models", "promote", "clf", v1, "--to", "staging")[0] == 0
    code, out, err = cli(policy, "models", "promote", "clf", v2, "--to", "staging")
    assert code == 0  # passed, as written
    (line,) = _warnings(err)
    assert "margin -1 against a champion at 0.9 cannot fail" in line
    sound = policy.replace("margin: -1", "margin: -0.01")
    code, _, err = cli(sound, "policy", "check", "clf", v1, "--to", "staging")
    assert code == 0 and _warnings(err) == []  # v1 vs v2 (0.05): a real check, no warning


@pytest.mark.parametrize(
    ("extra", "warned"), [("", True), (", higher_is_better: false", False),
                          (", higher_is_better: true", False)]
)  # fmt: skip
def test_a_minimised_metric_with_the_default_direction_is_warned_about(
    cli: Any, store: PipelineStore, extra: str, warned: bool
) -> None:
    store.version("clf", metrics={"val_loss": 0.3})
    policy = f"""\
models:
  clf:
    staging:
      rules:
        - {{kind: beat_champion, metric: val_loss{extra}}}
"""
    code, _, err = cli(policy, "policy", "validate")
    assert code == 0
    found = _warnings(err)
    assert bool(found) is warned
    if warned:
        assert "'val_loss' looks like a metric to minimise" in found[0]


def test_a_sound_policy_gives_no_warning(cli: Any, store: PipelineStore) -> None:
    v1 = store.version("clf", metrics={"accuracy": 0.95, "roc_auc": 0.9})
    policy = """\
models:
  clf:
    staging:
      rules:
        - {kind: metric, metric: accuracy, min: 0.9}
        - {kind: beat_champion, metric: roc_auc, margin: -0.01}
        - {kind: beat_champion, metric: roc_auc, margin_pct: 1.0}
"""
    code, _, err = cli(policy, "policy", "validate")
    assert code == 0 and err == ""
    code, _, err = cli(policy, "policy", "check", "clf", v1, "--to", "staging")
    assert code == 0 and err == ""


@pytest.mark.parametrize(
    ("rule", "message"),
    [("{kind: metric, metric: accuracy, min: 0.9, max: 0.5}", "min 0.9 is above max 0.5"),
     ("{kind: beat_champion, metric: accuracy, margin: .nan}", "margin: Input should be a finite"),
     ("{kind: metric, metric: accuracy, min: -.inf}", "min: Input should be a finite number"),
     ("{kind: metric, metric: per_class/, min: 0.5}", "would read it as 'per_class'")],
)  # fmt: skip
def test_thresholds_no_value_can_meet_and_bad_metric_names_are_errors(
    cli: Any, rule: str, message: str
) -> None:
    policy = f"models:\n  clf:\n    staging:\n      rules:\n        - {rule}\n"
    code, _, err = cli(policy, "policy", "validate")
    assert code == 2 and message in err


def test_a_metric_name_mlflow_accepts_is_accepted(cli: Any) -> None:
    policy = "models:\n  clf:\n    staging:\n      rules:\n" \
             "        - {kind: metric, metric: a..b, min: 0.5}\n"  # fmt: skip
    code, out, err = cli(policy, "policy", "validate")
    assert code == 0 and "1 rules" in out, err
