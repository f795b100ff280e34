"""The audit trail, kept in MLflow itself so it outlives any orchestrator: one registered-model
tag per event, `stackwise.audit.<id>`, holding the event as JSON.

One tag per event, never one growing document: MLflow tags are plain upserts, so two processes
appending to a shared JSON value would lose one update, while two distinct keys never collide.
Ids sort in event order: milliseconds since the epoch, made strictly greater than the newest
event this process has seen (so a host with a slow clock still appends after it), then random
hex against ties. Who held an alias before (for rollback) and for how long (for soak rules)
are derived from these records, so the history is the one source of truth.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stackwise.governance.clock import from_ms, to_ms

if TYPE_CHECKING:
    from stackwise.governance.registry import Registry

TAG_PREFIX = "stackwise.audit."
#: MLflow's SQL stores keep registered-model tag values in a 5000-character column.
MAX_EVENT_CHARS = 4900
_TEXT_LIMIT = 300

Action = Literal["promote", "refuse", "rollback"]


class RuleOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    passed: bool
    observed: str
    required: str


class AuditEvent(BaseModel):
    """One promotion, refusal, forced override or rollback."""

    model_config = ConfigDict(frozen=True)

    id: str
    action: Action
    model: str
    alias: str
    version: str = Field(description="the version promoted, refused, or rolled back to")
    previous: str | None = Field(None, description="holder of the alias just before")
    actor: str
    at: str = Field(description="ISO 8601, UTC")
    approver: str | None = None
    reason: str | None = None
    forced: bool = False
    policy: Literal["passed", "failed", "none"] = "none"
    rules: list[RuleOutcome] = Field(default_factory=list)
    via: str = "cli"

    @property
    def moves_alias(self) -> bool:
        return self.action in ("promote", "rollback")

    @property
    def when(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.at)


def new_event_id(now: dt.datetime, events: Sequence[AuditEvent]) -> str:
    ms = to_ms(now)
    if events:
        ms = max(ms, int(events[-1].id.split("-")[0]) + 1)
    return f"{ms:013d}-{secrets.token_hex(4)}"


def event_time(event_id: str) -> dt.datetime:
    return from_ms(int(event_id.split("-")[0]))


def encode(event: AuditEvent) -> str:
    """The event as JSON that fits one tag: long texts are cut, and when many rules still do
    not fit, passing rules are left out first (the failing ones explain a refusal)."""
    slim = event.model_copy(
        update={"rules": [_cut(r) for r in event.rules], "reason": _clip(event.reason)}
    )
    text = slim.model_dump_json(exclude_defaults=True)
    if len(text) > MAX_EVENT_CHARS:
        slim = slim.model_copy(update={"rules": [r for r in slim.rules if not r.passed]})
        text = slim.model_dump_json(exclude_defaults=True)
    while len(text) > MAX_EVENT_CHARS and slim.rules:
        slim = slim.model_copy(update={"rules": slim.rules[:-1]})
        text = slim.model_dump_json(exclude_defaults=True)
    return text


def _clip(text: str | None) -> str | None:
    return text if text is None or len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def _cut(rule: RuleOutcome) -> RuleOutcome:
    return RuleOutcome(
        rule=_clip(rule.rule) or "",
        passed=rule.passed,
        observed=_clip(rule.observed) or "",
        required=_clip(rule.required) or "",
    )


def append(registry: Registry, event: AuditEvent) -> None:
    registry.set_model_tag(event.model, TAG_PREFIX + event.id, encode(event))


def read(registry: Registry, name: str) -> list[AuditEvent]:
    """Every event of model `name`, oldest first. A tag someone edited into invalid JSON is
    skipped rather than hiding the rest of the history."""
    tags = registry.model(name).tags
    events = []
    for key, value in tags.items():
        if key.startswith(TAG_PREFIX):
            try:
                events.append(AuditEvent.model_validate_json(value))
            except ValidationError:
                continue
    return sorted(events, key=lambda e: e.id)


def _apply(stack: list[str], event: AuditEvent) -> list[str]:
    """The holder stack after `event`: a promotion pushes, a rollback pops back to the version
    below (and lands on the version it names, whatever happened concurrently)."""
    stack = list(stack)
    if event.action == "rollback" and stack and stack[-1] == event.previous:
        stack.pop()
    if not stack or stack[-1] != event.version:
        stack.append(event.version)
    return stack


def holders(events: Sequence[AuditEvent], alias: str) -> list[str]:
    """The versions that held `alias`, oldest first; the last is who should hold it now."""
    stack: list[str] = []
    for event in events:
        if event.alias == alias and event.moves_alias:
            stack = _apply(stack, event)
    return stack


def held_for(
    events: Sequence[AuditEvent], alias: str, version: str, now: dt.datetime
) -> dt.timedelta | None:
    """How long `version` has held `alias` in total, or None if it never did."""
    total, since = dt.timedelta(0), None
    ever = False
    stack: list[str] = []
    for event in events:
        if event.alias != alias or not event.moves_alias:
            continue
        before = stack[-1] if stack else None
        stack = _apply(stack, event)
        after = stack[-1]
        if before == version and after != version and since is not None:
            total += event.when - since
            since = None
        if after == version and before != version:
            since, ever = event.when, True
    if since is not None:
        total += now - since
    return total if ever else None
