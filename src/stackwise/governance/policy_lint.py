"""Warnings about policies that load but cannot guard what they seem to guard.

A warning never blocks: the file is valid, the promotion is checked as written. It names the
place in the file and the fix. Kinds (`PolicyWarning.code`):

- `unregistered_model`: a policy for a model name the registry does not have. Usually a typo,
  which leaves the real model with no policy at all; the message says which registered name
  is close ("Did you mean 'clf'?").
- `beat_champion_cannot_fail`: a `beat_champion` margin every candidate passes. Metrics are
  assumed non-negative (accuracy, AUC, F1, counts): with `higher_is_better`, `margin_pct:
  -100` or lower lets any value >= 0 pass; an absolute `margin` does when the champion's value
  plus the margin is <= 0 (known only when a champion is compared, so `policy check` and
  `models promote` report it, `policy validate` cannot).
- `beat_champion_direction`: `higher_is_better` left at its default (true) for a metric whose
  name ends in a word for something to minimise (`val_loss`, `test/rmse`): a worse model
  would beat the champion. Setting `higher_is_better` either way silences it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from stackwise.errors import StackwiseError, did_you_mean
from stackwise.governance.policies import BeatChampionRule, PolicyFile

if TYPE_CHECKING:
    from stackwise.config import StackConfig

WarningCode = Literal["unregistered_model", "beat_champion_cannot_fail", "beat_champion_direction"]

#: Last words of metric names that are minimised (losses, errors, distances, costs).
LOWER_IS_BETTER_WORDS = frozenset(
    {"loss", "logloss", "error", "err", "rmse", "mse", "mae", "mape", "smape", "rmsle", "wer",
     "cer", "perplexity", "latency", "distance", "cost", "regret", "brier"}
)  # fmt: skip


class PolicyWarning(BaseModel):
    code: WarningCode
    where: str  # the place in the policy file: "models.clf.staging.rules[1]"
    message: str


def lint_policies(policies: PolicyFile, registered: list[str] | None) -> list[PolicyWarning]:
    """Every warning `policy validate` can give without comparing versions. `registered` is
    None when the registry could not be read: names are then not checked."""
    found = unregistered_warnings(policies, registered)
    for name, by_alias in policies.models.items():
        for target, policy in by_alias.items():
            for i, rule in enumerate(policy.rules):
                if isinstance(rule, BeatChampionRule):
                    found += beat_champion_warnings(rule, f"models.{name}.{target}.rules[{i}]")
    return found


def unregistered_warnings(
    policies: PolicyFile, registered: list[str] | None
) -> list[PolicyWarning]:
    """A warning per policy whose model name is not registered. With no model registered yet
    every name would warn, so then nothing is compared."""
    if not registered:
        return []
    return [_unregistered(policies, n, registered) for n in policies.models if n not in registered]


def _unregistered(policies: PolicyFile, name: str, registered: list[str]) -> PolicyWarning:
    close = did_you_mean(name, registered)
    unguarded = [r for r in registered if r not in policies.models and did_you_mean(r, [name])]
    hint = (
        f" {', '.join(repr(r) for r in unguarded)} has no policy, so its promotions are not "
        "checked."
        if unguarded
        else ""
    )
    return PolicyWarning(
        code="unregistered_model",
        where=f"models.{name}",
        message=(
            f"models.{name}: no registered model is named {name!r}, so this policy guards "
            f"nothing.{close}{hint} Fix the name (ignore this if a pipeline registers "
            f"{name!r} later)."
        ),
    )


def beat_champion_warnings(
    rule: BeatChampionRule, where: str, champion_value: float | None = None
) -> list[PolicyWarning]:
    """Warnings for one `beat_champion` rule; `champion_value` (when a champion is compared)
    also decides whether an absolute margin can fail."""
    found: list[PolicyWarning] = []
    if rule.higher_is_better and rule.margin_pct is not None and rule.margin_pct <= -100:
        found.append(
            PolicyWarning(
                code="beat_champion_cannot_fail",
                where=where,
                message=(
                    f"{where}: beat_champion on {rule.metric} with margin_pct "
                    f"{rule.margin_pct:g} cannot fail for a metric >= 0: any candidate "
                    "passes. A margin_pct above -100 (e.g. -1 for 'at most 1% worse') makes "
                    "it a check."
                ),
            )
        )
    if (
        rule.higher_is_better
        and rule.margin_pct is None
        and champion_value is not None
        and champion_value > 0
        and champion_value + rule.margin <= 0
    ):
        found.append(
            PolicyWarning(
                code="beat_champion_cannot_fail",
                where=where,
                message=(
                    f"{where}: beat_champion on {rule.metric} with margin {rule.margin:g} "
                    f"against a champion at {champion_value:.6g} cannot fail for a metric "
                    f">= 0: any candidate passes. A margin above {-champion_value:.6g} (e.g. "
                    "-0.01 for 'at most 0.01 worse') makes it a check."
                ),
            )
        )
    if "higher_is_better" not in rule.model_fields_set and _minimised(rule.metric):
        found.append(
            PolicyWarning(
                code="beat_champion_direction",
                where=where,
                message=(
                    f"{where}: {rule.metric!r} looks like a metric to minimise, but "
                    "higher_is_better is true (the default), so a worse model beats the "
                    "champion. Set higher_is_better: false (or true, if higher is better)."
                ),
            )
        )
    return found


def _minimised(metric: str) -> bool:
    words = [w for w in re.split(r"[^a-z0-9]+", metric.lower()) if w]
    return bool(words) and words[-1] in LOWER_IS_BETTER_WORDS


def registered_models(stack: StackConfig) -> tuple[list[str] | None, str | None]:
    """The registry's model names, or None and why they could not be read. A SQLite store that
    does not exist yet is not created just to be listed."""
    uri = stack.tracking_uri_resolved
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(uri.removeprefix("sqlite:///")).exists():
            return None, f"no MLflow store at {uri} yet"
    from stackwise.governance.registry import Registry

    try:
        return Registry.open(stack).model_names(), None
    except StackwiseError as exc:
        return None, exc.message
