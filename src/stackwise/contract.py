"""The portable step contract: `StepInvocation` v1 in, `StepResult` out.

This is the one seam every orchestrator and compute backend calls. An invocation is plain
JSON (no live objects): it says which pipeline (in a form any process can find: an importable
module, or a path inside a code bundle), which step, which pipeline run and attempt, the run's
parameters and data interval, where the inputs are (`InputRef`: "output `train` of step
`features` of run R", resolved by the runner at run time through the artifact store), the
artifact store's URL, the resolved resources, image and timeout, how to cache, and where to
track. Any process that has stackwise, the pipeline's dependencies, the artifact store and the
tracking store can run it: `python -m stackwise.runner --invocation FILE`.

The JSON Schema of v1 is published in `docs/invocation.schema.json` (generated from these
models; a test keeps them equal). An invocation of another `schema_version` is refused with
an `InvocationError` that says which side to upgrade.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import PurePosixPath
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

from stackwise.artifacts.store import ArtifactRef
from stackwise.authoring.step import Resources
from stackwise.errors import InvocationError
from stackwise.interval import Interval

#: The contract version this stackwise writes and reads.
SCHEMA_VERSION = 1

StepStatus = Literal["SUCCEEDED", "FAILED", "KILLED"]
#: Run ids and step names become path segments (run index) and tag values: no '/', no '..'.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:+@=-]{0,255}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


_M = TypeVar("_M", bound=_Model)


class BundleRef(_Model):
    """A code bundle in the artifact store: its URL and the sha256 of the archive's bytes."""

    uri: str
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")


class PipelineRef(_Model):
    """How any process finds the pipeline.

    `target` is an importable module (`pkg.flows`) or a POSIX path to a `.py` file relative to
    the project root (`flows/daily.py`); `name` is the pipeline's attribute in it. The root is
    the extracted `bundle` when there is one (remote workers), else `root`, a `file://` URL of
    the project folder on this host (local processes). An absolute `target` only works on the
    host that wrote it, and `is_portable` says so."""

    target: str
    name: str
    root: str | None = None
    bundle: BundleRef | None = None

    @property
    def is_file(self) -> bool:
        return self.target.endswith(".py") or "/" in self.target

    @property
    def is_portable(self) -> bool:
        """True when a process on another host can find the pipeline: it is in a bundle, or
        it is a module (then the worker's image must have it installed)."""
        if not self.is_file:
            return True
        return self.bundle is not None and not PurePosixPath(self.target).is_absolute()

    def __str__(self) -> str:
        return f"{self.target}:{self.name}"


class InputRef(_Model):
    """One input of a step: output `output` of step `step` of pipeline run `run_id` (the
    invocation's own run when None). `artifact` is filled in when the caller already knows
    where it is; otherwise the runner reads the run's index in the artifact store."""

    step: str = Field(pattern=NAME_PATTERN)
    output: str
    run_id: str | None = Field(None, pattern=NAME_PATTERN)
    artifact: ArtifactRef | None = None


class CachePolicy(_Model):
    """How the runner uses the step cache: look up earlier results (`read`; False for
    `--no-cache`), and record this one. `store` is `artifacts` (entries kept in the artifact
    store, all a compiled pipeline has) or `state` (the local orchestrator's state store at
    `state_store`, a SQLAlchemy URL). A step declared with `cache=False` is never cached."""

    read: bool = True
    store: Literal["artifacts", "state"] = "artifacts"
    state_store: str | None = None


class TrackingTarget(_Model):
    """Where and how the step records itself in MLflow.

    The pipeline run is one parent run in `experiment`; when `parent_run_id` is None the
    runner finds it by the invocation's `run_id` or creates it (idempotent: of two workers
    racing, one parent remains). `run_tags` are the pipeline run's tags (see
    `stackwise.tracking.layout`); `manifest_*` point at the environment manifest already
    logged on the parent, which a child with the same environment reuses."""

    uri: str
    experiment: str
    experiment_id: str | None = None
    artifact_location: str | None = None
    parent_run_id: str | None = None
    run_tags: dict[str, str] = Field(default_factory=dict)
    manifest_digest: str | None = None
    manifest_artifact: str | None = None


class StepInvocation(_Model):
    """Version 1 of the contract: everything one attempt of one step needs, as JSON."""

    schema_version: Literal[1] = 1
    pipeline: PipelineRef
    step: str = Field(pattern=NAME_PATTERN)
    run_id: str = Field(pattern=NAME_PATTERN)
    attempt: int = Field(1, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    interval: Interval | None = None
    inputs: dict[str, InputRef] = Field(default_factory=dict)
    artifact_root: str = Field(description="URL of the artifact store (file://, s3://, ...)")
    resources: Resources = Field(default_factory=Resources)
    image: str | None = None
    timeout_s: float | None = Field(None, gt=0)
    cache: CachePolicy | None = None
    tracking: TrackingTarget | None = None
    orchestrator: str = "local"
    compute: str = "local"

    @field_serializer("resources")
    def _resources(self, value: Resources) -> dict[str, Any]:
        # `workers` came after v1's first readers: left out when unset, so that they still
        # read the invocations of every step that does not use it.
        data = dataclasses.asdict(value)
        if data["workers"] is None:
            del data["workers"]
        return data


class StepResult(_Model):
    """What one attempt produced. `outputs` are set when it SUCCEEDED; `error` holds the
    remote traceback (user frames only) when it FAILED; `logs` is the tail of what the step
    printed. Non-finite metric values travel as JSON `NaN`/`Infinity` between stackwise
    processes; the CLI prints them as null."""

    schema_version: Literal[1] = 1
    step: str
    status: StepStatus
    attempt: int = 1
    cached: bool = False
    cache_key: str | None = None
    outputs: dict[str, ArtifactRef] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)  # last value of each metric
    mlflow_run_id: str | None = None
    duration_s: float = 0.0
    error: str | None = None
    error_type: str | None = None
    logs: str = ""
    #: False when the invocation itself is wrong (another attempt would fail the same way).
    retryable: bool = True


class RunClose(_Model):
    """Closing a pipeline run that a foreign orchestrator ran step by step (its last task, an
    exit handler): the parent run ends FINISHED when every step of the pipeline recorded a
    success in the run index, FAILED otherwise (KILLED when `status` says so), and child runs
    left RUNNING are closed."""

    schema_version: Literal[1] = 1
    pipeline: PipelineRef
    run_id: str = Field(pattern=NAME_PATTERN)
    artifact_root: str
    tracking: TrackingTarget
    status: Literal["KILLED"] | None = None


def remote_problems(inv: StepInvocation) -> list[str]:
    """Why a worker on another host could not run this invocation (empty: it can). Remote
    compute backends and compiled targets refuse such invocations before submitting them,
    instead of failing on the worker: a pipeline file that is on this host only, an artifact
    store, tracking store or cache state store that is a local file or folder."""
    problems: list[str] = []
    if not inv.pipeline.is_portable:
        problems.append(
            f"the pipeline {inv.pipeline} is a file on this host only: name a code bundle "
            "(`stackwise bundle TARGET`) or install the project in the worker image and give "
            "its module (pkg.module:name)"
        )
    if _host_only(inv.artifact_root):
        problems.append(
            f"the artifact store {inv.artifact_root} is a folder on this host: use a store the "
            "workers reach (s3://, gs://, abfs://, ...) as artifact_store"
        )
    if inv.tracking is not None and _host_only(inv.tracking.uri):
        problems.append(
            f"the tracking store {inv.tracking.uri} is a file on this host: use an MLflow "
            "server (http://...) or a database URL the workers reach as tracking_uri"
        )
    if inv.cache is not None and inv.cache.store == "state" and _host_only(
        inv.cache.state_store or ""
    ):
        problems.append(
            "the step cache is in a SQLite state store on this host: set `cache: artifacts` "
            "(or a PostgreSQL state_store the workers reach)"
        )
    return problems


def _host_only(location: str) -> bool:
    return location.startswith(("file:", "sqlite:")) or "://" not in location


def parse_invocation(raw: str | bytes) -> StepInvocation:
    """Read an invocation's JSON, refusing other schema versions with a clear error.

    Raises InvocationError (exit 2) for invalid JSON, another schema version, or fields that
    do not fit v1 (unknown keys included)."""
    return _parse(raw, StepInvocation)


def parse_run_close(raw: str | bytes) -> RunClose:
    """Read a `RunClose` (same rules as `parse_invocation`)."""
    return _parse(raw, RunClose)


def _parse(raw: str | bytes, model: type[_M]) -> _M:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvocationError(f"the invocation is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise InvocationError("the invocation must be a JSON object (a StepInvocation).")
    version = data.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise InvocationError(_version_problem(version))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise InvocationError(
            f"the invocation does not fit {model.__name__} v{SCHEMA_VERSION}: {problems}. "
            "See docs/invocation.schema.json."
        ) from None


def _version_problem(version: object) -> str:
    if version is None:
        return (
            "the invocation has no schema_version: it was written by stackwise 0.1 (before the "
            f"v{SCHEMA_VERSION} contract); regenerate it with this stackwise (re-export the "
            "pipeline or rerun it)."
        )
    if isinstance(version, int) and version > SCHEMA_VERSION:
        return (
            f"the invocation has schema_version {version}, newer than this worker's stackwise "
            f"understands ({SCHEMA_VERSION}); upgrade stackwise where the step runs."
        )
    return (
        f"the invocation has schema_version {version!r}; this stackwise reads only "
        f"{SCHEMA_VERSION}. Regenerate the invocation with the same stackwise version."
    )


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of StepInvocation v1."""
    schema = StepInvocation.model_json_schema()
    schema["$id"] = "https://stackwise.dev/schemas/invocation-v1.json"
    schema["title"] = "StepInvocation v1"
    return schema


if __name__ == "__main__":  # python -m stackwise.contract > docs/invocation.schema.json
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
