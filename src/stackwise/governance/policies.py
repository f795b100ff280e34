"""Promotion policies as code: pydantic models of `policies.yaml` (or the `policies:` section of
`stackwise.yaml`) and the loader. A broken file fails before anything changes, with one error
naming the file, the line, the key and the fix (see `policy_errors.py`).

::

    aliases: [staging, production]          # the lifecycle; optional, this is the default
    models:
      breast_cancer_classifier:
        staging:
          auto_promote: true                # a pipeline's register step promotes on pass
          rules:
            - {kind: metric, metric: accuracy, min: 0.9}
            - {kind: lineage_complete}
        production:
          rules:
            - {kind: beat_champion, metric: roc_auc, margin: 0.0}
            - {kind: soak, alias: staging, min_hours: 24}
            - {kind: approval, approvers: [alice, bob]}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stackwise.errors import PolicyError, did_you_mean

if TYPE_CHECKING:
    from stackwise.config import StackConfig

DEFAULT_FILE = "policies.yaml"
DEFAULT_ALIASES = ("staging", "production")

# MLflow's own rules for alias and metric names (mlflow/utils/validation.py), checked here so a
# typo fails when the file is read, not halfway through a promotion.
_ALIAS = re.compile(r"^[\w\-]+$")
_RESERVED_ALIAS = re.compile(r"^[vV]\d+$")


def _metric_name(value: str) -> str:
    from stackwise.authoring.context import mlflow_key_problem

    problem = mlflow_key_problem(value)
    if problem is not None:
        raise ValueError(
            f"{value!r} is not a valid MLflow metric name ({problem}); write it exactly as the "
            "step logs it"
        )
    return value


class _Rule(BaseModel):
    # NaN and infinite thresholds make a rule that can never pass (NaN) or never fail (inf).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str | None = Field(None, description="label shown in reports (default: derived)")


class _MetricRule(_Rule):
    metric: str
    step: str | None = Field(None, description="the step that logs it, when several do")

    @field_validator("metric")
    @classmethod
    def _valid_metric(cls, value: str) -> str:
        return _metric_name(value)


class MetricRule(_MetricRule):
    """The candidate's metric is at least `min` and/or at most `max`."""

    kind: Literal["metric"]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> MetricRule:
        if self.min is None and self.max is None:
            raise ValueError("a metric rule needs `min`, `max` or both; add the threshold")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(
                f"min {self.min:g} is above max {self.max:g}, so no value can pass; swap them"
            )
        return self


class BeatChampionRule(_MetricRule):
    """The candidate beats the version now holding the alias by `margin` (absolute) or
    `margin_pct` (relative, percent). With no champion the rule passes, unless told otherwise."""

    kind: Literal["beat_champion"]
    margin: float = 0.0
    margin_pct: float | None = None
    higher_is_better: bool = True
    champion_alias: str | None = Field(None, description="compare with this alias' holder")
    if_no_champion: Literal["pass", "fail"] = "pass"

    @model_validator(mode="after")
    def _one_margin(self) -> BeatChampionRule:
        if self.margin_pct is not None and self.margin != 0.0:
            raise ValueError("set either `margin` (absolute) or `margin_pct` (percent), not both")
        return self


class TagRule(_Rule):
    """The model version (or else its training run) carries `tag`, equal to `equals` if set."""

    kind: Literal["tag"]
    tag: str
    equals: str | None = None


class SoakRule(_Rule):
    """The candidate has held `alias` for at least `min_hours` in total."""

    kind: Literal["soak"]
    alias: str = "staging"
    min_hours: float = Field(gt=0)


class ApprovalRule(_Rule):
    """A person approved the promotion (`--approver`); if `approvers` is set, one of them."""

    kind: Literal["approval"]
    approvers: list[str] | None = None
    not_promoter: bool = Field(False, description="the approver must not be the promoter")


class DataAgeRule(_Rule):
    """The training data was current at most `max_days` ago."""

    kind: Literal["data_age"]
    max_days: float = Field(gt=0)


class LineageRule(_Rule):
    """The version links to its training run, pipeline run, code version and datasets."""

    kind: Literal["lineage_complete"]
    require_raw: bool = Field(True, description="raw data sources must be logged too")


Rule = Annotated[
    MetricRule | BeatChampionRule | TagRule | SoakRule | ApprovalRule | DataAgeRule | LineageRule,
    Field(discriminator="kind"),
]

RULE_KINDS: dict[str, type[_Rule]] = {
    "metric": MetricRule,
    "beat_champion": BeatChampionRule,
    "tag": TagRule,
    "soak": SoakRule,
    "approval": ApprovalRule,
    "data_age": DataAgeRule,
    "lineage_complete": LineageRule,
}


class AliasPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(default_factory=list)
    auto_promote: bool = Field(False, description="promote from a pipeline when all rules pass")


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    aliases: list[str] = Field(default_factory=lambda: list(DEFAULT_ALIASES))
    models: dict[str, dict[str, AliasPolicy]] = Field(default_factory=dict)
    source: str | None = Field(None, exclude=True)

    @field_validator("aliases")
    @classmethod
    def _valid_aliases(cls, aliases: list[str]) -> list[str]:
        if not aliases:
            raise ValueError("list at least one alias, e.g. [staging, production]")
        for alias in aliases:
            check_alias_name(alias)
        return aliases

    @model_validator(mode="after")
    def _known_aliases(self, info: ValidationInfo) -> PolicyFile:
        """Aliases a policy names must be in the lifecycle. The loader passes a `problems`
        list in the context to get every problem with its path (and so its line)."""
        problems = self.alias_problems()
        sink = (info.context or {}).get("problems")
        if problems and sink is not None:
            sink.extend(problems)
        elif problems:
            path, message = problems[0]
            raise ValueError(".".join(str(p) for p in path) + ": " + message)
        return self

    def alias_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []

        def unknown(alias: str) -> str:
            return (
                f"alias {alias!r} is not in `aliases` ({', '.join(self.aliases)})."
                f"{did_you_mean(alias, self.aliases)} Add it to `aliases` or fix the name"
            )

        for model, by_alias in self.models.items():
            for alias, policy in by_alias.items():
                if alias not in self.aliases:
                    problems.append((("models", model, alias), unknown(alias)))
                for i, rule in enumerate(policy.rules):
                    for other in _aliases_named_by(rule):
                        if other not in self.aliases:
                            problems.append((("models", model, alias, "rules", i), unknown(other)))
        return problems

    def policy_for(self, model: str, alias: str) -> AliasPolicy | None:
        return self.models.get(model, {}).get(alias)

    def check_alias(self, alias: str) -> None:
        """Promotions target the lifecycle's aliases only, so that a typo (`prodution`) cannot
        create a new alias that no policy guards."""
        if alias not in self.aliases:
            where = f" (from {self.source})" if self.source else ""
            raise PolicyError(
                f"alias {alias!r} is not one of the lifecycle aliases {self.aliases}{where}."
                f"{did_you_mean(alias, self.aliases)} Add it to `aliases` in the policy file "
                "to use it."
            )


def _aliases_named_by(rule: _Rule) -> list[str]:
    if isinstance(rule, SoakRule):
        return [rule.alias]
    if isinstance(rule, BeatChampionRule) and rule.champion_alias:
        return [rule.champion_alias]
    return []


def check_alias_name(alias: str) -> str:
    if not _ALIAS.match(alias) or _RESERVED_ALIAS.match(alias) or alias.lower() == "latest":
        raise ValueError(
            f"{alias!r} cannot be an MLflow alias: use letters, digits, '_' and '-', and not "
            "'latest' or v<number> (reserved)"
        )
    return alias


def load_policies(path: str | Path | None = None, stack: StackConfig | None = None) -> PolicyFile:
    """The project's policies: `path` if given, else the `policies:` section of the stack file,
    else `policies.yaml` next to it (the current folder without one), else none (defaults)."""
    from stackwise.config import load_stack
    from stackwise.governance.policy_errors import parse_yaml, validate

    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise PolicyError(
                f"policy file {str(file)!r} does not exist; create it (see README: Model "
                "governance) or drop --policies to use the project's."
            )
        return validate(PolicyFile, parse_yaml(file), file, ())
    stack = stack if stack is not None else load_stack()
    default = stack.base_dir / DEFAULT_FILE
    if stack.policies is not None:
        if default.is_file():
            raise PolicyError(
                f"policies are defined twice: in {stack.source} (`policies:`) and in {default}; "
                "keep one of them."
            )
        assert stack.source is not None
        return validate(PolicyFile, stack.policies, Path(stack.source), ("policies",))
    if default.is_file():
        return validate(PolicyFile, parse_yaml(default), default, ())
    return PolicyFile()


_LABELS = {
    "metric": "metric {metric}",
    "beat_champion": "beat champion on {metric}",
    "tag": "tag {tag}",
    "soak": "soak in @{alias}",
    "approval": "approval",
    "data_age": "data age",
    "lineage_complete": "lineage complete",
}


def rule_label(rule: _Rule) -> str:
    """A short name for reports and the audit trail; the `required` column has the detail."""
    if rule.name:
        return rule.name
    kind = str(getattr(rule, "kind", ""))
    return _LABELS.get(kind, kind).format(**rule.model_dump())
