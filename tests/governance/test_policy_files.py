"""Policy files: where they are found, and every way to break one gets one error naming the
file, the line, the key and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stackwise.config import load_stack
from stackwise.errors import PolicyError
from stackwise.governance.policies import (
    BeatChampionRule,
    MetricRule,
    PolicyFile,
    SoakRule,
    load_policies,
)

GOOD = """\
aliases: [staging, production]
models:
  clf:
    staging:
      auto_promote: true
      rules:
        - {kind: metric, metric: accuracy, min: 0.9}
        - {kind: lineage_complete}
    production:
      rules:
        - kind: beat_champion
          metric: roc_auc
          margin_pct: 1.5
        - {kind: soak, alias: staging, min_hours: 24}
        - {kind: approval, approvers: [alice, bob]}
        - {kind: tag, tag: validation, equals: passed}
        - {kind: data_age, max_days: 30}
"""


def _write(folder: Path, text: str, name: str = "policies.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_valid_file_loads_with_every_rule_kind(project: Path) -> None:
    _write(project, GOOD)
    policies = load_policies()
    assert policies.source == str(project / "policies.yaml")
    staging = policies.policy_for("clf", "staging")
    production = policies.policy_for("clf", "production")
    assert staging is not None and staging.auto_promote
    assert production is not None and not production.auto_promote
    assert isinstance(staging.rules[0], MetricRule) and staging.rules[0].min == 0.9
    first = production.rules[0]
    assert isinstance(first, BeatChampionRule) and first.margin_pct == 1.5
    assert isinstance(production.rules[1], SoakRule) and production.rules[1].min_hours == 24
    assert [r.kind for r in production.rules] == [
        "beat_champion", "soak", "approval", "tag", "data_age"
    ]  # fmt: skip
    assert (
        policies.policy_for("clf", "nope") is None and policies.policy_for("x", "staging") is None
    )


def test_no_policy_file_means_default_lifecycle_and_no_rules(project: Path) -> None:
    policies = load_policies()
    assert policies.aliases == ["staging", "production"] and policies.models == {}
    assert policies.source is None


def test_policies_section_of_the_stack_file(project: Path) -> None:
    body = textwrap.indent(GOOD, "  ")
    _write(project, "max_parallel: 2\npolicies:\n" + body, "stackwise.yaml")
    policies = load_policies(stack=load_stack())
    assert policies.source == str(project / "stackwise.yaml")
    assert policies.policy_for("clf", "production") is not None


def test_policies_in_two_places_is_an_error(project: Path) -> None:
    _write(project, "policies:\n  aliases: [staging]\n", "stackwise.yaml")
    _write(project, GOOD)
    with pytest.raises(PolicyError, match="defined twice.*keep one"):
        load_policies(stack=load_stack())


def test_explicit_file_that_does_not_exist(project: Path) -> None:
    with pytest.raises(PolicyError, match=r"'nope.yaml' does not exist.*drop --policies"):
        load_policies("nope.yaml")


def test_an_alias_outside_the_lifecycle_is_refused_with_a_suggestion() -> None:
    policies = PolicyFile()
    with pytest.raises(PolicyError, match=r"'prodution' is not one of.*Did you mean 'production'"):
        policies.check_alias("prodution")


# -- malformed files --------------------------------------------------------------------------
HEAD = "models:\n  clf:\n    staging:\n      rules:\n"  # rules start on line 5

MALFORMED = {
    "unknown rule kind": (
        HEAD + "        - {kind: metrc, metric: accuracy, min: 0.9}\n",
        ["line 5", "models.clf.staging.rules[0]", "unknown rule kind 'metrc'",
         "Did you mean 'metric'", "Allowed kinds: metric, beat_champion"],
    ),
    "rule without kind": (
        HEAD + "        - {metric: accuracy, min: 0.9}\n",
        ["line 5", "rules[0]", "a rule needs `kind:`"],
    ),
    "bad metric name": (
        HEAD + "        - {kind: metric, metric: 'acc@racy!', min: 0.9}\n",
        ["line 5", "rules[0].metric", "not a valid MLflow metric name"],
    ),
    "wrong type for a threshold": (
        HEAD + "        - kind: metric\n          metric: accuracy\n          min: high\n",
        ["line 7", "rules[0].min", "expected a number, got 'high'"],
    ),
    "wrong type for a flag": (
        "models:\n  clf:\n    staging:\n      auto_promote: sometimes\n",
        ["line 4", "models.clf.staging.auto_promote", "expected true or false"],
    ),
    "rules not a list": (
        HEAD.replace("rules:\n", "rules: {kind: metric}\n"),
        ["line 4", "models.clf.staging.rules", "valid list"],
    ),
    "unknown key in a rule": (
        HEAD + "        - kind: metric\n          metric: accuracy\n          treshold: 0.9\n",
        ["line 7", "rules[0].treshold", "unknown key 'treshold'", "Allowed keys here:", "min"],
    ),
    "unknown top-level key": (
        "alias: [staging]\n",
        ["line 1", "key alias", "Did you mean 'aliases'", "Allowed keys here: aliases, models"],
    ),
    "missing required key": (
        HEAD + "        - {kind: soak, alias: staging}\n",
        ["line 5", "rules[0].min_hours", "required key 'min_hours' is missing"],
    ),
    "metric rule without threshold": (
        HEAD + "        - {kind: metric, metric: accuracy}\n",
        ["line 5", "rules[0]", "needs `min`, `max` or both"],
    ),
    "two margins": (
        HEAD + "        - {kind: beat_champion, metric: auc, margin: 0.1, margin_pct: 2}\n",
        ["line 5", "either `margin`", "not both"],
    ),
    "alias not in the lifecycle": (
        "models:\n  clf:\n    staging: {}\n    prodution:\n      rules: []\n",
        ["line 4", "key models.clf.prodution", "alias 'prodution' is not in `aliases`",
         "Did you mean 'production'"],
    ),
    "soak on an unknown alias": (
        HEAD + "        - {kind: soak, alias: stagin, min_hours: 1}\n",
        ["line 5, key models.clf.staging.rules[0]: alias 'stagin' is not in `aliases`",
         "Did you mean 'staging'"],
    ),
    "reserved alias name": (
        "aliases: [staging, v2]\n",
        ["line 1", "key aliases", "'v2' cannot be an MLflow alias", "reserved"],
    ),
    "not a mapping": ("- staging\n- production\n", ["expected a mapping", "got list"]),
    "invalid YAML": (
        HEAD + "        - {kind: metric, metric: accuracy, min: 0.9\n",
        ["not valid YAML", "line 6", "fix the syntax"],
    ),
    "negative soak": (
        HEAD + "        - {kind: soak, min_hours: -4}\n",
        ["line 5", "rules[0].min_hours", "greater than 0"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_policy_file(project: Path, case: str) -> None:
    text, expected = MALFORMED[case]
    path = _write(project, text)
    with pytest.raises(PolicyError) as caught:
        load_policies()
    message = caught.value.message
    assert message.startswith(f"{path}"), message
    for fragment in expected:
        assert fragment in message, (fragment, message)
    assert caught.value.exit_code == 2


def test_malformed_section_in_the_stack_file_names_its_line(project: Path) -> None:
    _write(project, "max_parallel: 2\npolicies:\n  models:\n    clf:\n      staging:\n"
                    "        rules:\n          - {kind: metric, metric: acc, min: lots}\n",
           "stackwise.yaml")  # fmt: skip
    with pytest.raises(PolicyError) as caught:
        load_policies(stack=load_stack())
    message = caught.value.message
    assert message.startswith(str(project / "stackwise.yaml"))
    assert "line 7, key policies.models.clf.staging.rules[0].min" in message
    assert "expected a number, got 'lots'" in message


def test_stack_file_rejects_a_non_mapping_policies_key(project: Path) -> None:
    from stackwise.errors import ConfigError

    _write(project, "policies: [1, 2]\n", "stackwise.yaml")
    with pytest.raises(ConfigError, match="policies"):
        load_stack()
