"""Registering a model from a pipeline step in one call, with its lineage on the version.

`register_model` logs the model in the step's MLflow run, registers a new version and tags it
with where it came from: the training run, the pipeline run, the pipeline version (code hash),
the orchestrator and the datasets (digests) it was built from. Then, if the policy file says
so (`auto_promote: true`) or the caller asks (`promote_to=`), it runs the promotion policy and
promotes on pass; a failure is recorded as a refusal and does not fail the step.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from stackwise.errors import GovernanceError, PolicyViolation
from stackwise.governance.clock import Clock
from stackwise.governance.lifecycle import ModelLifecycle, PromotionOutcome
from stackwise.governance.rules import PolicyResult
from stackwise.tracking import tags as T

#: Model classes' top-level module -> the MLflow flavor that logs them.
_FLAVORS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "torch": "pytorch",
    "keras": "keras",
    "tensorflow": "tensorflow",
    "statsmodels": "statsmodels",
}
_MAX_TAG = 100_000  # MLflow's limit for a model-version tag value


class RegisteredVersion(BaseModel):
    name: str
    version: str
    model_uri: str
    run_id: str
    training_run_id: str
    pipeline_run_id: str | None
    lineage_tags: dict[str, str]
    promotions: list[PromotionOutcome] = Field(default_factory=list)
    refusals: list[PolicyResult] = Field(default_factory=list)


def register_model(
    model: Any,
    name: str,
    *,
    flavor: str | None = None,
    artifact_name: str = "model",
    promote_to: str | Sequence[str] | None = None,
    policies: str | Path | None = None,
    tags: dict[str, str] | None = None,
    clock: Clock | None = None,
    **log_model_kwargs: Any,
) -> RegisteredVersion:
    """Log `model` in the current step's run, register it as a new version of `name`, tag the
    version with its lineage, then auto-promote as the policy (or `promote_to`) says.

    `flavor` is the MLflow flavor module (`sklearn`, `pytorch`, ...; guessed from the model's
    class when omitted). Extra keyword arguments go to the flavor's `log_model`."""
    from stackwise.authoring.context import current_context
    from stackwise.governance.policies import load_policies
    from stackwise.governance.registry import Registry
    from stackwise.lineage.index import RunIndex

    ctx = current_context()
    if ctx is None or ctx.mlflow_run_id is None:
        raise GovernanceError(
            "register_model() registers from inside a tracked pipeline step (it links the "
            "version to the step's run); call it in a step and run with tracking on."
        )
    # The policy is read first: a broken file must fail before anything is registered.
    policy_file = load_policies(policies)
    targets = _targets(policy_file, name, promote_to)
    log_model = _log_model(model, flavor)
    registry = Registry.active()
    index = RunIndex(registry.client)
    run = index.get(ctx.mlflow_run_id)
    if run is None:
        raise GovernanceError(f"the step's MLflow run {ctx.mlflow_run_id} is not in the store.")
    info = log_model(model, name=artifact_name, registered_model_name=name, **log_model_kwargs)
    version = str(info.registered_model_version)
    lineage = lineage_tags(index, run)
    registry.set_version_tags(name, version, {**lineage, **(tags or {})})
    result = RegisteredVersion(
        name=name,
        version=version,
        model_uri=f"models:/{name}/{version}",
        run_id=run.run_id,
        training_run_id=lineage[T.TRAINING_RUN_ID],
        pipeline_run_id=run.parent_id,
        lineage_tags=lineage,
    )
    if run.tags.get(T.REPRODUCES):  # `stackwise reproduce`: evidence, never a new champion
        if targets:
            _say(f"stackwise: {name} v{version} reproduces {run.tags[T.REPRODUCES]}: not "
                 "auto-promoted")  # fmt: skip
        targets = []
    lifecycle = ModelLifecycle(
        registry, policy_file, via=f"pipeline {ctx.pipeline} run {ctx.run_id}"
    )
    if clock is not None:
        lifecycle.clock = clock
    for alias in targets:
        try:
            outcome = lifecycle.promote(
                name, version, alias, reason=f"automatic promotion by pipeline run {ctx.run_id}"
            )
        except PolicyViolation as exc:
            result.refusals.append(exc.result)
            _say(f"stackwise: {name} v{version} not promoted to @{alias}: {exc.result.summary()}")
            continue
        result.promotions.append(outcome)
        _say(f"stackwise: {outcome.message}")
    return result


def _say(message: str) -> None:
    """Outcomes go to stderr: stdout may carry `stackwise run --json` output."""
    print(message, file=sys.stderr)


def _targets(policy_file: Any, name: str, promote_to: str | Sequence[str] | None) -> list[str]:
    asked = [promote_to] if isinstance(promote_to, str) else list(promote_to or [])
    for alias in asked:
        policy_file.check_alias(alias)
    auto = [
        a for a in policy_file.aliases if (p := policy_file.policy_for(name, a)) and p.auto_promote
    ]
    return [a for a in policy_file.aliases if a in asked or a in auto]


def _log_model(model: Any, flavor: str | None) -> Any:
    if flavor is None:
        flavor = _FLAVORS.get(type(model).__module__.split(".")[0])
        if flavor is None:
            raise GovernanceError(
                f"cannot tell which MLflow flavor logs a {type(model).__qualname__}; pass "
                "flavor='sklearn', 'pytorch', 'pyfunc', ... to register_model()."
            )
    try:
        module = importlib.import_module(f"mlflow.{flavor}")
    except ImportError as exc:
        raise GovernanceError(f"MLflow flavor {flavor!r} is not available: {exc}.") from None
    return module.log_model


def lineage_tags(index: Any, run: Any) -> dict[str, str]:
    """The tags that tie a model version to how it was made (all read from MLflow)."""
    from stackwise.lineage.graph import upstream_of

    parent = index.get(run.parent_id) if run.parent_id else None
    source = parent.tags if parent is not None else run.tags
    training = index.training_run(run)
    tags = {
        T.TRAINING_RUN_ID: training.run_id,
        T.REGISTERED_IN_RUN_ID: run.run_id,
        T.PIPELINE_RUN_ID: parent.run_id if parent is not None else "",
        T.RUN_ID: source.get(T.RUN_ID, ""),
        T.PIPELINE: source.get(T.PIPELINE, ""),
        T.PIPELINE_VERSION: source.get(T.PIPELINE_VERSION, ""),
        T.ORCHESTRATOR: source.get(T.ORCHESTRATOR, ""),
        T.COMPUTE: run.tags.get(T.COMPUTE, ""),
        T.GIT_COMMIT: source.get(T.MLFLOW_GIT_COMMIT, ""),
        T.LOGICAL_DATE: source.get(T.LOGICAL_DATE, ""),
        T.REPRODUCES: source.get(T.REPRODUCES, ""),
    }
    graph = upstream_of(index, run)
    datasets = []
    for node in graph.nodes:
        if node.kind == "raw_data":
            datasets.append(
                {
                    "kind": "raw",
                    "name": node.attrs.get("name", ""),
                    "digest": node.attrs.get("digest", ""),
                    "source": node.attrs.get("source", ""),
                }
            )
        elif node.kind == "dataset":
            datasets.append(
                {
                    "kind": "feature",
                    "name": node.label.split(" ")[0],
                    "digest": node.attrs.get("digest", ""),
                    "source": node.attrs.get("uri", ""),
                }
            )
    tags[T.DATASETS] = _fit_json(datasets)
    return {k: v for k, v in tags.items() if v}


def _fit_json(datasets: list[dict[str, str]]) -> str:
    """The list as JSON within MLflow's tag limit: entries that do not fit are left out and
    counted (the lineage command still finds them all), so the value always parses."""
    kept = list(datasets)
    text = json.dumps(kept, separators=(",", ":"))
    while len(text) > _MAX_TAG - 100 and kept:
        kept = kept[: len(kept) * 9 // 10]
        omitted = {"kind": "omitted", "count": str(len(datasets) - len(kept))}
        text = json.dumps([*kept, omitted], separators=(",", ":"))
    return text
