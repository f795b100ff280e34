"""Promotion through aliases: policy-checked promotion, refusals, forced overrides, rollback,
the audit trail in MLflow, and a concurrent promotion interleaved at the worst moment."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gov_support import PipelineStore

from stackwise.errors import GovernanceError, PolicyError, PolicyViolation
from stackwise.governance import audit
from stackwise.governance.audit import AuditEvent, RuleOutcome
from stackwise.governance.clock import FixedClock
from stackwise.governance.registry import Registry

GATED = {"models": {"clf": {"staging": {"rules": [
    {"kind": "metric", "metric": "accuracy", "min": 0.9}]}}}}  # fmt: skip


def _alias(store: PipelineStore, alias: str = "staging") -> str | None:
    return Registry(store.client).holder("clf", alias)


def test_promotion_moves_the_alias_and_records_everything(
    store: PipelineStore, make_lifecycle: Any, clock: FixedClock
) -> None:
    v = store.version(metrics={"accuracy": 0.95})
    outcome = make_lifecycle(GATED).promote("clf", v, "staging", reason="weekly", approver="bob")
    assert outcome.changed and outcome.holder == v and outcome.previous is None
    assert outcome.superseded_by is None and outcome.policy is not None and outcome.policy.passed
    assert _alias(store) == v
    [event] = make_lifecycle().history("clf")
    assert (event.action, event.version, event.previous, event.actor, event.approver) == (
        "promote", v, None, "alice", "bob"
    )  # fmt: skip
    assert event.policy == "passed" and event.reason == "weekly" and not event.forced
    assert event.at == clock.now().isoformat()
    assert [r.rule for r in event.rules] == ["metric accuracy"]
    # the event is a registered-model tag, the latest state also sits on the version
    model_tags = store.client.get_registered_model("clf").tags
    assert json.loads(model_tags[f"stackwise.audit.{event.id}"])["version"] == v
    tags = store.client.get_model_version("clf", v).tags
    assert tags["stackwise.staging.promoted_by"] == "alice"
    assert tags["stackwise.staging.approved_by"] == "bob"
    assert tags["stackwise.staging.policy"] == "passed"
    assert tags["stackwise.staging.event"] == event.id
    assert json.loads(tags["stackwise.staging.policy_result"])["passed"] is True


def test_a_failed_policy_refuses_and_records_the_refusal(
    store: PipelineStore, make_lifecycle: Any
) -> None:
    good = store.version(metrics={"accuracy": 0.95})
    bad = store.version(metrics={"accuracy": 0.80})
    lc = make_lifecycle(GATED)
    lc.promote("clf", good, "staging")
    with pytest.raises(PolicyViolation) as caught:
        lc.promote("clf", bad, "staging")
    assert caught.value.exit_code == 1
    assert "observed 0.8 (step evaluate" in caught.value.message
    assert "required accuracy >= 0.9" in caught.value.message
    assert caught.value.result is not None and not caught.value.result.passed
    assert _alias(store) == good  # unchanged
    refusal = lc.history("clf")[-1]
    assert (refusal.action, refusal.version, refusal.previous, refusal.policy) == (
        "refuse", bad, good, "failed"
    )  # fmt: skip
    assert refusal.rules == [RuleOutcome(rule="metric accuracy", passed=False,
                                         observed=refusal.rules[0].observed,
                                         required="accuracy >= 0.9")]  # fmt: skip
    tags = store.client.get_model_version("clf", bad).tags
    assert tags["stackwise.staging.policy"] == "refused"
    assert tags["stackwise.staging.refused_event"] == refusal.id


def test_force_needs_a_reason_and_is_recorded(store: PipelineStore, make_lifecycle: Any) -> None:
    bad = store.version(metrics={"accuracy": 0.5})
    lc = make_lifecycle(GATED)
    with pytest.raises(GovernanceError, match="needs --reason") as caught:
        lc.promote("clf", bad, "staging", force=True)
    assert caught.value.exit_code == 2
    assert lc.history("clf") == [] and _alias(store) is None  # nothing changed
    outcome = lc.promote("clf", bad, "staging", force=True, reason="incident 42 hotfix")
    assert outcome.changed and _alias(store) == bad and "FORCED" in outcome.message
    [event] = lc.history("clf")
    assert event.forced and event.policy == "failed" and event.reason == "incident 42 hotfix"
    assert store.client.get_model_version("clf", bad).tags["stackwise.staging.policy"] == "forced"


def test_rollback_walks_back_through_previous_holders(
    store: PipelineStore, make_lifecycle: Any, clock: FixedClock
) -> None:
    v1, v2, v3 = store.version(), store.version(), store.version()
    lc = make_lifecycle()
    for v in (v1, v2, v3):
        lc.promote("clf", v, "production")
        clock.advance(minutes=1)
    back = lc.rollback("clf", "production", reason="v3 latency")
    assert (back.previous, back.version, back.holder) == (v3, v2, v2) and _alias(
        store, "production"
    ) == v2
    assert lc.rollback("clf", "production").holder == v1
    with pytest.raises(GovernanceError, match="first version to hold @production"):
        lc.rollback("clf", "production")
    history = lc.history("clf")
    assert [(e.action, e.previous, e.version) for e in history] == [
        ("promote", None, v1), ("promote", v1, v2), ("promote", v2, v3),
        ("rollback", v3, v2), ("rollback", v2, v1),
    ]  # fmt: skip
    assert [e.id for e in history] == sorted(e.id for e in history)
    assert history[3].reason == "v3 latency"
    assert "stackwise.production.rolled_back_at" in store.client.get_model_version("clf", v3).tags
    # after a rollback, promoting again pushes on top of what is left
    lc.promote("clf", v3, "production")
    assert lc.rollback("clf", "production").holder == v1


def test_rollback_refuses_when_the_alias_was_moved_outside_stackwise(
    store: PipelineStore, make_lifecycle: Any
) -> None:
    v1, v2, v3 = store.version(), store.version(), store.version()
    lc = make_lifecycle()
    lc.promote("clf", v1, "staging")
    lc.promote("clf", v2, "staging")
    store.client.set_registered_model_alias("clf", "staging", v3)
    with pytest.raises(GovernanceError, match=f"points at v{v3} but its history says v{v2}"):
        lc.rollback("clf", "staging")
    with pytest.raises(GovernanceError, match="no promotion history"):
        lc.rollback("clf", "production")


def test_bad_input_changes_nothing(store: PipelineStore, make_lifecycle: Any) -> None:
    v = store.version()
    lc = make_lifecycle()
    with pytest.raises(PolicyError, match="Did you mean 'staging'"):
        lc.promote("clf", v, "stagin")
    with pytest.raises(GovernanceError, match=r"no registered model 'clff'.*Did you mean 'clf'"):
        lc.promote("clff", v, "staging")
    with pytest.raises(GovernanceError, match="has no version '99'; its versions: 1"):
        lc.promote("clf", "99", "staging")
    assert lc.history("clf") == [] and _alias(store) is None
    lc.promote("clf", v, "staging")
    again = lc.promote("clf", v, "staging")
    assert not again.changed and "already holds" in again.message
    assert len(lc.history("clf")) == 1


def test_event_ids_stay_ordered_when_the_clock_does_not_move(
    store: PipelineStore, make_lifecycle: Any
) -> None:
    versions = [store.version() for _ in range(4)]
    lc = make_lifecycle()  # FixedClock: every event has the same wall time
    for v in versions:
        lc.promote("clf", v, "staging")
    history = lc.history("clf")
    assert [e.version for e in history] == versions
    stamps = [int(e.id.split("-")[0]) for e in history]
    assert stamps == sorted(set(stamps))


def test_a_concurrent_promotion_between_record_and_alias_write_is_settled(
    store: PipelineStore, make_lifecycle: Any
) -> None:
    """The worst interleaving, forced: A records its event, then B promotes completely, then A
    writes the alias (stale). A must notice, put the alias on the newest event's version, and
    report that it was superseded."""
    va, vb = store.version(), store.version()
    a, b = make_lifecycle(actor="process-a"), make_lifecycle(actor="process-b")
    inner: list[Any] = []
    a.after_record = lambda _event: inner.append(b.promote("clf", vb, "staging"))
    outcome = a.promote("clf", va, "staging")
    assert inner[0].holder == vb and inner[0].superseded_by is None
    assert _alias(store) == vb and outcome.holder == vb
    assert outcome.superseded_by is not None and outcome.superseded_by.actor == "process-b"
    assert "which now holds it" in outcome.message
    history = a.history("clf")
    assert [(e.actor, e.version) for e in history] == [("process-a", va), ("process-b", vb)]
    assert audit.holders(history, "staging")[-1] == _alias(store)


def test_a_long_policy_result_still_fits_one_tag() -> None:
    rules = [RuleOutcome(rule=f"rule {i}", passed=i % 2 == 0, observed="x" * 900,
                         required="y" * 900) for i in range(40)]  # fmt: skip
    event = AuditEvent(id="1-a", action="refuse", model="m", alias="staging", version="1",
                       actor="me", at="2026-01-01T00:00:00+00:00", reason="r" * 2000,
                       rules=rules)  # fmt: skip
    text = audit.encode(event)
    assert len(text) <= audit.MAX_EVENT_CHARS
    decoded = AuditEvent.model_validate_json(text)
    assert decoded.rules and all(not r.passed for r in decoded.rules)  # failing rules kept
    assert decoded.reason is not None and len(decoded.reason) == 300
