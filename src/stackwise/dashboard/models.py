"""Registered models: versions, which alias each holds, the promotion history (policy results,
approvers, forced overrides, rollbacks) from the audit trail, and the policy check of a chosen
version and alias, all through the governance library the CLI uses. Promotions and rollbacks
(only with `--allow-actions`) go through `ModelLifecycle`, with its policy check, and record
the actor and `via: dashboard`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from stackwise.dashboard.stores import Stores
from stackwise.governance.audit import AuditEvent
from stackwise.governance.catalog import ModelDetail, ModelSummary
from stackwise.governance.rules import PolicyResult


class ModelPage(BaseModel):
    detail: ModelDetail
    history: list[AuditEvent]
    aliases: list[str] = Field(description="the aliases the policies allow")
    mlflow_url: str
    version_urls: dict[str, str]


class ActionRequest(BaseModel):
    """A promotion (`action` promote: `version` and `alias`) or a rollback (`alias`)."""

    action: str
    alias: str
    version: str | None = None
    reason: str | None = None
    approver: str | None = None
    force: bool = False
    actor: str | None = None


def list_models(stores: Stores) -> list[ModelSummary]:
    from stackwise.governance.catalog import list_models as catalog

    return catalog(stores.registry)


def get_model(stores: Stores, name: str) -> ModelPage:
    """GovernanceError (from the library) for an unknown model."""
    from stackwise.governance.catalog import show_model
    from stackwise.governance.lifecycle import ModelLifecycle
    from stackwise.governance.policies import PolicyFile

    detail = show_model(stores.registry, name)
    history = ModelLifecycle(stores.registry, PolicyFile()).history(name)
    try:
        aliases = list(stores.policies().aliases)
    except Exception:  # a broken policy file is reported by the check, not here
        aliases = sorted({e.alias for e in history} | set(detail.aliases))
    return ModelPage(
        detail=detail, history=history, aliases=aliases, mlflow_url=stores.mlflow_model_url(name),
        version_urls={v.version: stores.mlflow_model_url(name, v.version) for v in detail.versions},
    )  # fmt: skip


def check(
    stores: Stores, name: str, version: str, alias: str, approver: str | None = None
) -> PolicyResult:
    """What `stackwise policy check NAME VERSION --to ALIAS` reports; changes nothing."""
    return stores.lifecycle().check(name, version, alias, approver=approver)


def act(stores: Stores, name: str, request: ActionRequest, actor: str | None) -> dict[str, Any]:
    """Promote or roll back as the CLI does. A refused promotion raises PolicyViolation (its
    `result` the policy check); the outcome is `stackwise models promote --json`'s object."""
    from stackwise.errors import GovernanceError

    lc = stores.lifecycle(actor=request.actor or actor)
    if request.action == "promote":
        if not request.version:
            raise GovernanceError("a promotion needs the version to promote; give `version`.")
        outcome = lc.promote(name, request.version, request.alias, reason=request.reason,
                             approver=request.approver, force=request.force)  # fmt: skip
    elif request.action == "rollback":
        outcome = lc.rollback(name, request.alias, reason=request.reason)
    else:
        raise GovernanceError(f"unknown action {request.action!r}; use promote or rollback.")
    result: dict[str, Any] = outcome.model_dump(mode="json")
    return result
