"""Evaluating a promotion policy: every rule gives pass/fail with what was observed and what was
required, so a refusal explains itself. Evaluation only reads (MLflow, the history, the clock);
recording the outcome is `lifecycle`'s job."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from stackwise.governance.audit import AuditEvent, RuleOutcome, held_for
from stackwise.governance.facts import VersionFacts
from stackwise.governance.policies import (
    AliasPolicy,
    ApprovalRule,
    BeatChampionRule,
    DataAgeRule,
    LineageRule,
    MetricRule,
    SoakRule,
    TagRule,
    rule_label,
)
from stackwise.governance.policy_lint import PolicyWarning, beat_champion_warnings


class RuleResult(BaseModel):
    kind: str
    rule: str
    passed: bool
    observed: str
    required: str

    def outcome(self) -> RuleOutcome:
        return RuleOutcome(
            rule=self.rule, passed=self.passed, observed=self.observed, required=self.required
        )


class PolicyResult(BaseModel):
    model: str
    version: str
    alias: str
    passed: bool
    checked_at: str
    has_policy: bool
    policy_source: str | None = None
    rules: list[RuleResult] = Field(default_factory=list)
    #: Policies that cannot guard what they seem to (see `policy_lint`); never block.
    warnings: list[PolicyWarning] = Field(default_factory=list)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]

    def summary(self) -> str:
        if not self.failures:
            return f"all {len(self.rules)} rules passed"
        parts = [f"{r.rule}: observed {r.observed}, required {r.required}" for r in self.failures]
        return f"{len(self.failures)} of {len(self.rules)} rules failed: " + "; ".join(parts)


@dataclasses.dataclass
class CheckContext:
    candidate: VersionFacts
    alias: str
    holder_of: Callable[[str], VersionFacts | None]
    history: list[AuditEvent]
    now: dt.datetime
    actor: str
    approver: str | None = None


def evaluate(
    policy: AliasPolicy | None,
    ctx: CheckContext,
    source: str | None = None,
    warnings: list[PolicyWarning] | None = None,
) -> PolicyResult:
    """Every rule of `policy` for the candidate in `ctx`; `warnings` (about the file) are
    passed through, and each rule adds its own (with the champion's value where it has one)."""
    rules = policy.rules if policy else []
    results = [_evaluate(rule, ctx) for rule in rules]
    found = list(warnings or [])
    for i, rule in enumerate(rules):
        if isinstance(rule, BeatChampionRule):
            where = f"models.{ctx.candidate.name}.{ctx.alias}.rules[{i}]"
            found += beat_champion_warnings(rule, where, _champion_value(rule, ctx))
    return PolicyResult(
        model=ctx.candidate.name,
        version=ctx.candidate.version,
        alias=ctx.alias,
        passed=all(r.passed for r in results),
        checked_at=ctx.now.isoformat(timespec="seconds"),
        has_policy=policy is not None,
        policy_source=source,
        rules=results,
        warnings=found,
    )


def _champion_value(rule: BeatChampionRule, ctx: CheckContext) -> float | None:
    champion = ctx.holder_of(rule.champion_alias or ctx.alias)
    if champion is None or champion.version == ctx.candidate.version:
        return None
    return champion.metric(rule.metric, rule.step).value


def _evaluate(rule: Any, ctx: CheckContext) -> RuleResult:
    check = _CHECKS[type(rule)]
    passed, observed, required = check(rule, ctx)
    return RuleResult(
        kind=rule.kind, rule=rule_label(rule), passed=passed, observed=observed, required=required
    )


def _num(value: float) -> str:
    return f"{value:.6g}"


def _metric(rule: MetricRule, ctx: CheckContext) -> tuple[bool, str, str]:
    bounds = []
    if rule.min is not None:
        bounds.append(f">= {_num(rule.min)}")
    if rule.max is not None:
        bounds.append(f"<= {_num(rule.max)}")
    required = f"{rule.metric} " + " and ".join(bounds)
    found = ctx.candidate.metric(rule.metric, rule.step)
    if found.value is None:
        return False, found.where, required
    ok = (rule.min is None or found.value >= rule.min) and (
        rule.max is None or found.value <= rule.max
    )
    return ok, f"{_num(found.value)} ({found.where})", required


def _beat_champion(rule: BeatChampionRule, ctx: CheckContext) -> tuple[bool, str, str]:
    alias = rule.champion_alias or ctx.alias
    better = "higher" if rule.higher_is_better else "lower"
    by = f"{_num(rule.margin_pct)}%" if rule.margin_pct is not None else _num(rule.margin)
    required = f"{rule.metric} {better} than the holder of @{alias} by >= {by}"
    champion = ctx.holder_of(alias)
    if champion is None:
        return rule.if_no_champion == "pass", f"no version holds @{alias}", required
    if champion.version == ctx.candidate.version:
        return True, f"v{champion.version} already holds @{alias}", required
    mine = ctx.candidate.metric(rule.metric, rule.step)
    theirs = champion.metric(rule.metric, rule.step)
    if mine.value is None:
        return False, f"candidate: {mine.where}", required
    if theirs.value is None:
        return False, f"champion v{champion.version}: {theirs.where}", required
    delta = mine.value - theirs.value if rule.higher_is_better else theirs.value - mine.value
    observed = f"{_num(mine.value)} vs v{champion.version} {_num(theirs.value)}"
    if rule.margin_pct is not None:
        if theirs.value:
            pct = delta / abs(theirs.value) * 100
        else:  # a relative gain over zero is unbounded, or none at all
            pct = float("inf") if delta > 0 else (0.0 if delta == 0 else float("-inf"))
        return pct >= rule.margin_pct, f"{observed} ({pct:+.3g}%)", required
    return delta >= rule.margin, f"{observed} ({delta:+.6g})", required


def _tag(rule: TagRule, ctx: CheckContext) -> tuple[bool, str, str]:
    required = f"{rule.tag}={rule.equals}" if rule.equals is not None else f"tag {rule.tag} set"
    value, where = ctx.candidate.tag(rule.tag)
    if value is None:
        return False, f"tag {rule.tag} not set", required
    ok = rule.equals is None or value == rule.equals
    return ok, f"{rule.tag}={value} ({where})", required


def _soak(rule: SoakRule, ctx: CheckContext) -> tuple[bool, str, str]:
    required = f">= {_num(rule.min_hours)} h holding @{rule.alias}"
    held = held_for(ctx.history, rule.alias, ctx.candidate.version, ctx.now)
    if held is None:
        return False, f"never held @{rule.alias}", required
    hours = held.total_seconds() / 3600
    return hours >= rule.min_hours, f"{hours:.2f} h holding @{rule.alias}", required


def _approval(rule: ApprovalRule, ctx: CheckContext) -> tuple[bool, str, str]:
    who = f"one of {', '.join(rule.approvers)}" if rule.approvers else "anyone"
    required = f"approval by {who}" + (" other than the promoter" if rule.not_promoter else "")
    if not ctx.approver:
        return False, "no approver (pass --approver WHO)", required
    if rule.approvers and ctx.approver not in rule.approvers:
        return False, f"{ctx.approver} is not an allowed approver", required
    if rule.not_promoter and ctx.approver == ctx.actor:
        return False, f"{ctx.approver} is also the promoter", required
    return True, f"approved by {ctx.approver}", required


def _data_age(rule: DataAgeRule, ctx: CheckContext) -> tuple[bool, str, str]:
    required = f"training data <= {_num(rule.max_days)} days old"
    as_of = ctx.candidate.data_as_of()
    if as_of.moment is None:
        return False, as_of.where, required
    days = (ctx.now - as_of.moment).total_seconds() / 86400
    stamp = as_of.moment.isoformat(timespec="seconds")
    return days <= rule.max_days, f"{days:.2f} days (as of {stamp}, {as_of.where})", required


def _lineage(rule: LineageRule, ctx: CheckContext) -> tuple[bool, str, str]:
    check = ctx.candidate.lineage(rule.require_raw)
    required = "linked: " + ", ".join((*check.found, *check.missing))
    if check.missing:
        return False, "missing: " + ", ".join(check.missing), required
    return True, "complete", required


_CHECKS: dict[type, Callable[[Any, CheckContext], tuple[bool, str, str]]] = {
    MetricRule: _metric,
    BeatChampionRule: _beat_champion,
    TagRule: _tag,
    SoakRule: _soak,
    ApprovalRule: _approval,
    DataAgeRule: _data_age,
    LineageRule: _lineage,
}
