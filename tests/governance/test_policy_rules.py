"""Every rule kind, passing and failing, evaluated against real MLflow entities; each result
carries the observed and the required value."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gov_support import PipelineStore

from stackwise.governance.clock import FixedClock
from stackwise.governance.rules import PolicyResult, RuleResult


def _policy(*rules: dict[str, Any], alias: str = "staging") -> dict[str, Any]:
    return {"models": {"clf": {alias: {"rules": list(rules)}}}}


def _only(result: PolicyResult) -> RuleResult:
    assert len(result.rules) == 1, result.rules
    return result.rules[0]


# -- metric --------------------------------------------------------------------------------------
def test_metric_min_and_max(store: PipelineStore, make_lifecycle: Any) -> None:
    v = store.version(metrics={"accuracy": 0.93, "latency_ms": 40.0})
    lc = make_lifecycle(_policy(
        {"kind": "metric", "metric": "accuracy", "min": 0.9},
        {"kind": "metric", "metric": "accuracy", "min": 0.95},
        {"kind": "metric", "metric": "latency_ms", "max": 50},
        {"kind": "metric", "metric": "latency_ms", "max": 30},
        {"kind": "metric", "metric": "accuracy", "min": 0.9, "max": 0.92},
    ))  # fmt: skip
    result = lc.check("clf", v, "staging")
    assert [r.passed for r in result.rules] == [True, False, True, False, False]
    assert not result.passed and len(result.failures) == 3
    assert result.rules[0].observed.startswith("0.93 (step evaluate")
    assert result.rules[1].required == "accuracy >= 0.95"
    assert result.rules[3].required == "latency_ms <= 30"
    assert result.rules[4].required == "accuracy >= 0.9 and <= 0.92"


def test_metric_not_logged_fails_with_a_suggestion(
    store: PipelineStore, make_lifecycle: Any
) -> None:
    v = store.version(metrics={"accuracy": 0.93, "roc_auc": 0.97})
    rule = _only(make_lifecycle(_policy({"kind": "metric", "metric": "acuracy", "min": 0.5}))
                 .check("clf", v, "staging"))  # fmt: skip
    assert not rule.passed
    assert "not logged in the pipeline run" in rule.observed
    assert "Did you mean 'accuracy'" in rule.observed and "roc_auc" in rule.observed


def test_metric_logged_by_two_steps_needs_a_step(store: PipelineStore, make_lifecycle: Any) -> None:
    v = store.version(metrics={"accuracy": 0.93}, extra_metric_step={"accuracy": 0.5})
    lc = make_lifecycle(_policy(
        {"kind": "metric", "metric": "accuracy", "min": 0.9},
        {"kind": "metric", "metric": "accuracy", "min": 0.9, "step": "evaluate"},
        {"kind": "metric", "metric": "accuracy", "min": 0.9, "step": "monitor"},
    ))  # fmt: skip
    ambiguous, evaluate, monitor = lc.check("clf", v, "staging").rules
    assert not ambiguous.passed and "several steps (evaluate, monitor)" in ambiguous.observed
    assert evaluate.passed and "0.93" in evaluate.observed
    assert not monitor.passed and monitor.observed.startswith("0.5 (step monitor")


# -- beat the champion ---------------------------------------------------------------------------
def test_beat_champion_without_a_champion(store: PipelineStore, make_lifecycle: Any) -> None:
    v = store.version(metrics={"roc_auc": 0.9})
    lc = make_lifecycle(_policy(
        {"kind": "beat_champion", "metric": "roc_auc"},
        {"kind": "beat_champion", "metric": "roc_auc", "if_no_champion": "fail"},
    ))  # fmt: skip
    lenient, strict = lc.check("clf", v, "staging").rules
    assert lenient.passed and lenient.observed == "no version holds @staging"
    assert not strict.passed and strict.observed == "no version holds @staging"


def test_beat_champion_by_absolute_and_relative_margins(
    store: PipelineStore, make_lifecycle: Any
) -> None:
    champion = store.version(metrics={"roc_auc": 0.90, "loss": 0.30})
    challenger = store.version(metrics={"roc_auc": 0.92, "loss": 0.25})
    make_lifecycle().promote("clf", champion, "staging")
    lc = make_lifecycle(_policy(
        {"kind": "beat_champion", "metric": "roc_auc", "margin": 0.01},
        {"kind": "beat_champion", "metric": "roc_auc", "margin": 0.05},
        {"kind": "beat_champion", "metric": "roc_auc", "margin_pct": 2.0},
        {"kind": "beat_champion", "metric": "roc_auc", "margin_pct": 3.0},
        {"kind": "beat_champion", "metric": "loss", "higher_is_better": False, "margin": 0.04},
        {"kind": "beat_champion", "metric": "missing_metric"},
    ))  # fmt: skip
    rules = lc.check("clf", challenger, "staging").rules
    assert [r.passed for r in rules] == [True, False, True, False, True, False]
    assert rules[0].observed == f"0.92 vs v{champion} 0.9 (+0.02)"
    assert rules[2].observed.endswith("(+2.22%)")
    assert rules[4].required == "loss lower than the holder of @staging by >= 0.04"
    assert rules[5].observed.startswith("candidate: not logged")


def test_beat_champion_compares_with_another_alias(
    store: PipelineStore, make_lifecycle: Any
) -> None:
    prod = store.version(metrics={"roc_auc": 0.95})
    candidate = store.version(metrics={"roc_auc": 0.93})
    make_lifecycle().promote("clf", prod, "production")
    rule = _only(make_lifecycle(_policy(
        {"kind": "beat_champion", "metric": "roc_auc", "champion_alias": "production"}
    )).check("clf", candidate, "staging"))  # fmt: skip
    assert not rule.passed and rule.observed == f"0.93 vs v{prod} 0.95 (-0.02)"


# -- tags ------------------------------------------------------------------------------------------
def test_required_tag(store: PipelineStore, make_lifecycle: Any) -> None:
    passed = store.version(version_tags={"validation": "passed"})
    failed = store.version(version_tags={"validation": "failed"})
    untagged = store.version()
    lc = make_lifecycle(_policy({"kind": "tag", "tag": "validation", "equals": "passed"},
                                {"kind": "tag", "tag": "validation"}))  # fmt: skip
    assert lc.check("clf", passed, "staging").passed
    wrong, present = lc.check("clf", failed, "staging").rules
    assert not wrong.passed and wrong.observed == "validation=failed (version tag)"
    assert present.passed and present.required == "tag validation set"
    assert [r.observed for r in lc.check("clf", untagged, "staging").rules] == [
        "tag validation not set"
    ] * 2


# -- soak time -------------------------------------------------------------------------------------
def test_soak_time_in_staging_uses_the_clock(
    store: PipelineStore, make_lifecycle: Any, clock: FixedClock
) -> None:
    v = store.version()
    never = store.version()
    lc = make_lifecycle(_policy({"kind": "soak", "alias": "staging", "min_hours": 24},
                                alias="production"))  # fmt: skip
    lc.promote("clf", v, "staging")
    clock.advance(hours=23)
    early = _only(lc.check("clf", v, "production"))
    assert not early.passed and early.observed == "23.00 h holding @staging"
    clock.advance(hours=2)
    late = _only(lc.check("clf", v, "production"))
    assert late.passed and late.observed == "25.00 h holding @staging"
    assert _only(lc.check("clf", never, "production")).observed == "never held @staging"


def test_soak_time_stops_when_the_alias_moves_on(
    store: PipelineStore, make_lifecycle: Any, clock: FixedClock
) -> None:
    first, second = store.version(), store.version()
    lc = make_lifecycle(_policy({"kind": "soak", "min_hours": 10}, alias="production"))
    lc.promote("clf", first, "staging")
    clock.advance(hours=6)
    lc.promote("clf", second, "staging")
    clock.advance(hours=30)
    rule = _only(lc.check("clf", first, "production"))
    assert not rule.passed and rule.observed == "6.00 h holding @staging"


# -- approval --------------------------------------------------------------------------------------
def test_approval(store: PipelineStore, make_lifecycle: Any) -> None:
    v = store.version()
    lc = make_lifecycle(_policy({"kind": "approval", "approvers": ["bob", "carol"],
                                 "not_promoter": True}), actor="carol")  # fmt: skip
    assert _only(lc.check("clf", v, "staging")).observed == "no approver (pass --approver WHO)"
    assert _only(lc.check("clf", v, "staging", approver="mallory")).observed == (
        "mallory is not an allowed approver"
    )
    assert _only(lc.check("clf", v, "staging", approver="carol")).observed == (
        "carol is also the promoter"
    )
    ok = _only(lc.check("clf", v, "staging", approver="bob"))
    assert ok.passed and ok.observed == "approved by bob"
    assert ok.required == "approval by one of bob, carol other than the promoter"


# -- data age --------------------------------------------------------------------------------------
def test_data_age(store: PipelineStore, make_lifecycle: Any, clock: FixedClock) -> None:
    v = store.version(start=clock.now() - dt.timedelta(days=3))
    lc = make_lifecycle(_policy({"kind": "data_age", "max_days": 7}))
    fresh = _only(lc.check("clf", v, "staging"))
    assert (
        fresh.passed
        and fresh.observed.startswith("3.00 days")
        and "read by ingest" in fresh.observed
    )
    clock.advance(days=5)
    stale = _only(lc.check("clf", v, "staging"))
    assert not stale.passed and stale.observed.startswith("8.00 days")
    assert stale.required == "training data <= 7 days old"


def test_data_age_of_a_scheduled_run_is_its_interval(
    store: PipelineStore, make_lifecycle: Any, clock: FixedClock
) -> None:
    end = (clock.now() - dt.timedelta(days=40)).isoformat()
    v = store.version(interval_end=end)  # a backfill run today of data from 40 days ago
    rule = _only(make_lifecycle(_policy({"kind": "data_age", "max_days": 30}))
                 .check("clf", v, "staging"))  # fmt: skip
    assert not rule.passed and rule.observed.startswith("40.00 days")
    assert "data interval end of ingest" in rule.observed


# -- lineage ---------------------------------------------------------------------------------------
def test_lineage_complete(store: PipelineStore, make_lifecycle: Any) -> None:
    complete = store.version()
    no_raw = store.version(raw=False)
    orphan = store.version(parent=False)
    lc = make_lifecycle(_policy({"kind": "lineage_complete"},
                                {"kind": "lineage_complete", "require_raw": False}))  # fmt: skip
    assert lc.check("clf", complete, "staging").passed
    strict, lenient = lc.check("clf", no_raw, "staging").rules
    assert not strict.passed and strict.observed == "missing: raw data sources"
    assert lenient.passed
    strict, _ = lc.check("clf", orphan, "staging").rules
    assert not strict.passed
    assert (
        strict.observed
        == "missing: pipeline run, code version, orchestrator, datasets, raw data sources"
    )


def test_no_policy_means_nothing_to_check(store: PipelineStore, make_lifecycle: Any) -> None:
    result = make_lifecycle().check("clf", store.version(), "production")
    assert result.passed and not result.has_policy and result.rules == []
