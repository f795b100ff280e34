"""The team profile: what the advisor cannot read from a pipeline (how the team works, what it
runs, what it must guarantee). Every key is optional; a key left out falls back to what the
pipeline analysis inferred, then to a documented default.

Validation is strict on purpose: `kubernetes_first: "yes"` or `cost_sensitivity: cheap` is a
mistake to report (naming the key and the allowed values), not a value to guess at, because a
silently misread profile produces a confident but wrong recommendation.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stackwise.errors import ProfileError, did_you_mean

WorkflowKind = Literal["etl", "features", "training", "evaluation", "serving"]
Capacity = Literal["none", "some", "dedicated"]
CostSensitivity = Literal["low", "medium", "high"]

WORKFLOW_KINDS: tuple[str, ...] = typing.get_args(WorkflowKind)


class DistributedTraining(BaseModel):
    """The largest training job: how many machines, how many GPUs on each."""

    model_config = ConfigDict(extra="forbid", strict=True)

    nodes: int | None = Field(None, ge=1, description="machines one training job spans")
    gpus_per_node: int | None = Field(None, ge=0, description="GPUs used on each machine")


class TeamProfile(BaseModel):
    """The team-side inputs of the decision framework. `None` means "not said"."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kubernetes_first: bool | None = Field(
        None, description="the organization already runs its workloads on Kubernetes"
    )
    cluster_ops_expertise: bool | None = Field(
        None, description="people who operate Kubernetes clusters day to day are on hand"
    )
    platform_engineering_capacity: Capacity | None = Field(
        None, description="people who can own images, node pools, quotas and observability"
    )
    containerized_codebase: bool | None = Field(
        None, description="the pipeline code is built and shipped as container images"
    )
    code_changes_per_day: int | None = Field(
        None, ge=0, description="code changes a day that each need a new run (and image)"
    )
    image_build_minutes: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="minutes one container image build takes"
    )
    backfill_historical_ranges: bool | None = Field(
        None, description="past date ranges must be rerun (backfills)"
    )
    workflow_mix: list[WorkflowKind] | None = Field(
        None, description="the kinds of workflow the orchestrator will run"
    )
    integrations: list[str] | None = Field(
        None, description="systems the workflows talk to: databases, cloud services, monitoring"
    )
    multi_tenancy_required: bool | None = Field(
        None, description="strict isolation between teams is mandatory (regulation, security)"
    )
    distributed_training: DistributedTraining | None = Field(
        None, description="the largest training job: nodes and gpus_per_node"
    )
    autoscaling: bool | None = Field(None, description="compute must grow and shrink with the load")
    cost_sensitivity: CostSensitivity | None = Field(
        None, description="how much idle or standing infrastructure cost matters"
    )

    def given(self) -> dict[str, Any]:
        """The keys the profile sets, flattened (`distributed_training.nodes`), with values."""
        flat: dict[str, Any] = {}
        for key, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, dict):
                flat.update({f"{key}.{sub}": v for sub, v in value.items()})
            else:
                flat[key] = value
        return flat


def allowed_values(key: str) -> str:
    """What a key accepts, in words, derived from the model so that errors, prompts and the
    README cannot drift from the validation."""
    head, _, sub = key.partition(".")
    model: type[BaseModel] = DistributedTraining if sub else TeamProfile
    field = model.model_fields[sub or head]
    return _describe_type(field.annotation, field.metadata)


def _describe_type(annotation: Any, metadata: list[Any]) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    inner = args[0] if args else annotation
    bound = ""
    for item in metadata:
        if getattr(item, "ge", None) is not None:
            bound = f" >= {item.ge}"
    if typing.get_origin(inner) is Literal:
        return "one of " + ", ".join(typing.get_args(inner))
    if typing.get_origin(inner) is list:
        (item_type,) = typing.get_args(inner)
        if typing.get_origin(item_type) is Literal:
            return "a list of " + ", ".join(typing.get_args(item_type))
        return "a list of names"
    if inner is bool:
        return "true or false"
    if inner is int:
        return "a whole number" + bound
    if inner is float:
        return "a finite number" + bound
    if inner is DistributedTraining:
        return "a mapping with nodes (a whole number >= 1) and gpus_per_node (a whole number >= 0)"
    return str(inner)


def profile_keys() -> list[str]:
    return list(TeamProfile.model_fields)


def describe_key(key: str) -> str:
    head, _, sub = key.partition(".")
    model: type[BaseModel] = DistributedTraining if sub else TeamProfile
    return model.model_fields[sub or head].description or ""


def parse_profile(data: Any, source: str) -> TeamProfile:
    """Validate already-parsed YAML; every problem names the key and what it accepts."""
    if data is None:
        return TeamProfile()
    if not isinstance(data, dict):
        raise ProfileError(
            f"{source}: expected a mapping of keys to values at the top level "
            f"(keys: {', '.join(profile_keys())})."
        )
    try:
        return TeamProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{source}: " + "; ".join(_problems(exc)) + ".") from None


def load_profile(path: str | os.PathLike[str]) -> TeamProfile:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ProfileError(
            f"team profile {str(file)!r} does not exist; write one (see `stackwise advise "
            "--help`) or leave out --profile to answer the questions in the terminal."
        )
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ProfileError(f"{file}: not valid YAML{where}: {problem}; fix the syntax.") from None
    return parse_profile(data, str(file))


def _problems(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if err["type"] == "extra_forbidden":
            known = list(DistributedTraining.model_fields) if len(loc) > 1 else profile_keys()
            key = ".".join(loc)
            problems.append(
                f"unknown key {key!r}.{did_you_mean(loc[-1], known)} "
                f"Allowed keys: {', '.join(known)}"
            )
            continue
        # A bad list item is reported against its list: the allowed values belong to the key.
        key = ".".join(p for p in loc if not p.isdigit())
        problems.append(
            f"key {key!r} = {err.get('input')!r} is not allowed; allowed: {allowed_values(key)}"
        )
    return problems
