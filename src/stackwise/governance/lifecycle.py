"""The promotion lifecycle: stages are registered-model aliases (`staging`, `production` by
default), guarded by policies, and every move is recorded in the audit trail first.

Concurrency: MLflow offers no compare-and-set on aliases, so two processes promoting the same
alias at once are reconciled through the history. Each records its event (distinct tags never
overwrite each other), moves the alias, then settles: reads the history and, while the alias
differs from the holder the history implies (the newest event wins), sets it to that holder.
Whoever writes the alias last has read the history after every event that precedes its
write, so the alias ends on the holder of the newest event, both events are in the history,
and the process whose promotion was overtaken learns it (`superseded_by`).
"""

from __future__ import annotations

import dataclasses
import getpass
import os
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from stackwise.errors import GovernanceError, PolicyViolation
from stackwise.governance import audit
from stackwise.governance.audit import AuditEvent
from stackwise.governance.clock import Clock, SystemClock
from stackwise.governance.facts import VersionFacts
from stackwise.governance.policies import PolicyFile
from stackwise.governance.policy_lint import unregistered_warnings
from stackwise.governance.registry import Registry
from stackwise.governance.rules import CheckContext, PolicyResult, evaluate
from stackwise.lineage.index import RunIndex

_SETTLE_ROUNDS = 20


def default_actor() -> str:
    """Who is acting: `STACKWISE_USER` (CI, service accounts), else the OS user."""
    try:
        return os.environ.get("STACKWISE_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


class PromotionOutcome(BaseModel):
    model: str
    alias: str
    version: str
    changed: bool
    holder: str | None
    previous: str | None = None
    event: AuditEvent | None = None
    superseded_by: AuditEvent | None = None
    policy: PolicyResult | None = None
    message: str


@dataclasses.dataclass
class ModelLifecycle:
    registry: Registry
    policies: PolicyFile
    clock: Clock = dataclasses.field(default_factory=SystemClock)
    actor: str = dataclasses.field(default_factory=default_actor)
    via: str = "cli"
    #: Called between recording an event and moving the alias (tests use it to interleave).
    after_record: Callable[[AuditEvent], None] | None = None

    # -- reading ------------------------------------------------------------------------------
    def history(self, name: str, alias: str | None = None) -> list[AuditEvent]:
        events = audit.read(self.registry, name)
        return [e for e in events if alias is None or e.alias == alias]

    def check(
        self, name: str, version: str, alias: str, approver: str | None = None
    ) -> PolicyResult:
        """Evaluate the policy for promoting `name` v`version` to `alias`; changes nothing."""
        self.policies.check_alias(alias)
        mv = self.registry.version(name, version)
        return self._check(mv, alias, approver, self.history(name))

    def _check(
        self, mv: Any, alias: str, approver: str | None, history: list[AuditEvent]
    ) -> PolicyResult:
        index = RunIndex(self.registry.client)
        holders: dict[str, VersionFacts | None] = {}

        def holder_of(other: str) -> VersionFacts | None:
            if other not in holders:
                held = self.registry.holder(mv.name, other)
                holders[other] = (
                    VersionFacts(index, self.registry.version(mv.name, held)) if held else None
                )
            return holders[other]

        ctx = CheckContext(
            candidate=VersionFacts(index, mv),
            alias=alias,
            holder_of=holder_of,
            history=history,
            now=self.clock.now(),
            actor=self.actor,
            approver=approver,
        )
        warnings = unregistered_warnings(self.policies, self.registry.model_names())
        policy = self.policies.policy_for(mv.name, alias)
        return evaluate(policy, ctx, self.policies.source, warnings)

    # -- changing -----------------------------------------------------------------------------
    def promote(
        self,
        name: str,
        version: str,
        alias: str,
        *,
        reason: str | None = None,
        approver: str | None = None,
        force: bool = False,
    ) -> PromotionOutcome:
        """Check the policy, then move `alias` to `version`; a failed check is recorded as a
        refusal and raises `PolicyViolation`, unless forced (which needs a reason)."""
        self.policies.check_alias(alias)
        if force and not (reason or "").strip():
            raise GovernanceError(
                "--force overrides the policy and needs --reason TEXT saying why; nothing "
                "was changed."
            )
        mv = self.registry.version(name, version)
        version = str(mv.version)
        holder = self.registry.holder(name, alias)
        if holder == version:
            return PromotionOutcome(
                model=name,
                alias=alias,
                version=version,
                changed=False,
                holder=holder,
                previous=holder,
                message=f"v{version} already holds @{alias}; nothing changed",
            )
        history = self.history(name)
        result = self._check(mv, alias, approver, history)
        verdict: Literal["passed", "failed", "none"] = (
            "none" if not result.has_policy else "passed" if result.passed else "failed"
        )
        now = self.clock.now()
        # recorded as is when refused; as a promotion (forced or not) otherwise
        record = AuditEvent(
            id=audit.new_event_id(now, history),
            action="refuse",
            model=name,
            alias=alias,
            version=version,
            previous=holder,
            actor=self.actor,
            at=now.isoformat(),
            approver=approver,
            reason=reason,
            policy=verdict,
            rules=[r.outcome() for r in result.rules],
            via=self.via,
        )
        if not result.passed and not force:
            audit.append(self.registry, record)
            self._tag(mv, alias, record, result, refused=True)
            raise PolicyViolation(
                f"{name} v{version} -> @{alias}: {result.summary()}. Nothing changed (the "
                "refusal is in `stackwise models history`); fix the failures, or override "
                "with --force --reason TEXT.",
                result,
            )
        event = record.model_copy(update={"action": "promote", "forced": not result.passed})
        return self._move(mv, event, result)

    def rollback(self, name: str, alias: str, *, reason: str | None = None) -> PromotionOutcome:
        """Move `alias` back to the version that held it before the current one."""
        history = self.history(name)
        stack = audit.holders(history, alias)
        live = self.registry.holder(name, alias)
        if not stack:
            raise GovernanceError(
                f"@{alias} of {name!r} has no promotion history, so there is no previous "
                f"holder to go back to; promote a version with `stackwise models promote`."
            )
        if live != stack[-1]:
            raise GovernanceError(
                f"@{alias} of {name!r} points at {_v(live)} but its history says v{stack[-1]} "
                "holds it (the alias was moved outside stackwise); promote the version you "
                "want with `stackwise models promote`."
            )
        if len(stack) < 2:
            raise GovernanceError(
                f"v{live} is the first version to hold @{alias} of {name!r}; there is no "
                "previous holder to roll back to."
            )
        mv = self.registry.version(name, stack[-2])
        now = self.clock.now()
        event = AuditEvent(
            id=audit.new_event_id(now, history),
            action="rollback",
            model=name,
            alias=alias,
            version=str(mv.version),
            previous=live,
            actor=self.actor,
            at=now.isoformat(),
            reason=reason,
            via=self.via,
        )
        return self._move(mv, event, None)

    def _move(self, mv: Any, event: AuditEvent, result: PolicyResult | None) -> PromotionOutcome:
        audit.append(self.registry, event)
        if self.after_record is not None:
            self.after_record(event)
        self.registry.set_alias(event.model, event.alias, event.version)
        holder, newest = self._settle(event.model, event.alias)
        superseded = newest if newest is not None and newest.id > event.id else None
        self._tag(mv, event.alias, event, result, refused=False)
        if event.action == "rollback" and event.previous:
            self.registry.set_version_tags(
                event.model, event.previous, {f"stackwise.{event.alias}.rolled_back_at": event.at}
            )
        verb = "rolled back" if event.action == "rollback" else "promoted"
        message = f"{verb} {event.model} @{event.alias}: {_v(event.previous)} -> v{event.version}"
        if event.forced:
            message += " (FORCED past a failed policy; recorded)"
        if superseded is not None:
            message += (
                f"; meanwhile {superseded.actor} moved it to v{superseded.version} "
                f"(event {superseded.id}), which now holds it"
            )
        return PromotionOutcome(
            model=event.model,
            alias=event.alias,
            version=event.version,
            changed=True,
            holder=holder,
            previous=event.previous,
            event=event,
            superseded_by=superseded,
            policy=result,
            message=message,
        )

    def _settle(self, name: str, alias: str) -> tuple[str | None, AuditEvent | None]:
        """Make the alias agree with the history (see the module docstring)."""
        live: str | None = None
        newest: AuditEvent | None = None
        for _ in range(_SETTLE_ROUNDS):
            events = [e for e in self.history(name, alias) if e.moves_alias]
            newest = events[-1] if events else None
            stack = audit.holders(events, alias)
            live = self.registry.holder(name, alias)
            if not stack or live == stack[-1]:
                return live, newest
            self.registry.set_alias(name, alias, stack[-1])
        raise GovernanceError(
            f"@{alias} of {name!r} kept changing while settling (many concurrent promotions); "
            f"it now points at {_v(live)}. Check `stackwise models history {name}`."
        )

    def _tag(
        self, mv: Any, alias: str, event: AuditEvent, result: PolicyResult | None, refused: bool
    ) -> None:
        """Mirror the latest event on the version itself, for the MLflow UI and searches."""
        p = f"stackwise.{alias}."
        if refused:
            tags = {p + "refused_at": event.at, p + "refused_event": event.id}
        else:
            tags = {
                p + "promoted_at": event.at,
                p + "promoted_by": event.actor,
                p + "event": event.id,
            }
            if event.approver:
                tags[p + "approved_by"] = event.approver
            if event.reason:
                tags[p + "reason"] = event.reason
        status = "refused" if refused else "forced" if event.forced else event.policy
        tags[p + "policy"] = "rollback" if event.action == "rollback" else status
        if result is not None:
            tags[p + "policy_result"] = result.model_dump_json()
        self.registry.set_version_tags(mv.name, str(mv.version), tags)


def _v(version: str | None) -> str:
    return f"v{version}" if version else "(none)"
