"""What `stackwise models list` and `models show` report: registered models, which version
holds which alias, where each version came from and how its promotions went. These models are
also the documented `--json` output."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from stackwise.governance import audit
from stackwise.governance.audit import AuditEvent
from stackwise.governance.registry import Registry
from stackwise.tracking import tags as T


def _iso(ms: int | None) -> str | None:
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds") if ms else None
    )


class ModelSummary(BaseModel):
    name: str
    versions: int
    latest_version: str | None
    aliases: dict[str, str]
    updated: str | None
    last_event: AuditEvent | None = None


class VersionSummary(BaseModel):
    version: str
    created: str | None
    run_id: str | None
    aliases: list[str]
    pipeline: str | None = None
    stackwise_run_id: str | None = None
    pipeline_version: str | None = None
    training_run_id: str | None = None
    orchestrator: str | None = None
    policy: dict[str, str] = Field(default_factory=dict, description="alias -> last verdict")
    tags: dict[str, str] = Field(default_factory=dict)


class ModelDetail(BaseModel):
    name: str
    description: str | None
    aliases: dict[str, str]
    versions: list[VersionSummary]
    events: int


def list_models(registry: Registry) -> list[ModelSummary]:
    out = []
    for name in registry.model_names():
        model = registry.model(name)
        events = audit.read(registry, name)
        versions = registry.versions(name)
        out.append(
            ModelSummary(
                name=name,
                versions=len(versions),
                latest_version=str(versions[-1].version) if versions else None,
                aliases={a: str(v) for a, v in sorted(model.aliases.items())},
                updated=_iso(model.last_updated_timestamp),
                last_event=events[-1] if events else None,
            )
        )
    return out


def show_model(registry: Registry, name: str) -> ModelDetail:
    model = registry.model(name)
    return ModelDetail(
        name=name,
        description=model.description or None,
        aliases={a: str(v) for a, v in sorted(model.aliases.items())},
        versions=[_version(mv) for mv in registry.versions(name)],
        events=len(audit.read(registry, name)),
    )


def _version(mv: Any) -> VersionSummary:
    tags: dict[str, str] = dict(mv.tags)
    policy = {
        key.split(".")[1]: value
        for key, value in tags.items()
        if key.startswith("stackwise.") and key.endswith(".policy") and key.count(".") == 2
    }
    return VersionSummary(
        version=str(mv.version),
        created=_iso(mv.creation_timestamp),
        run_id=mv.run_id,
        aliases=list(mv.aliases or []),
        pipeline=tags.get(T.PIPELINE),
        stackwise_run_id=tags.get(T.RUN_ID),
        pipeline_version=tags.get(T.PIPELINE_VERSION),
        training_run_id=tags.get(T.TRAINING_RUN_ID),
        orchestrator=tags.get(T.ORCHESTRATOR),
        policy=policy,
        tags={k: v for k, v in tags.items() if not k.startswith("stackwise.")},
    )
