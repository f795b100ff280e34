"""`stackwise.yaml`: which orchestrator, compute backend, tracking store, artifact store and
state store a project uses. Validated with pydantic; an unknown key or bad value is an error
that names the file, the key and the allowed values.

Precedence for the tracking URI: `MLFLOW_TRACKING_URI` > `tracking_uri` in the file > the
default `sqlite:///.stackwise/mlflow.db`. Relative paths are resolved against the folder that
holds the stack file (the current folder when there is none).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stackwise.errors import ConfigError

DEFAULT_FILE = "stackwise.yaml"
M = TypeVar("M", bound=BaseModel)
STATE_DIR = ".stackwise"


class StackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orchestrator: str = Field(
        "local", description="where runs are ordered: local, airflow, kubeflow"
    )
    compute: str = Field(
        "local", description="where steps run: local (threads), subprocess, ray, kubernetes"
    )
    tracking: bool = Field(True, description="record runs in MLflow")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI")
    experiment: str | None = Field(None, description="MLflow experiment (default: pipeline name)")
    artifact_store: str = Field(f"{STATE_DIR}/artifacts", description="folder or fsspec URL")
    mlflow_artifacts: str = Field(
        f"{STATE_DIR}/mlartifacts", description="artifact root of new MLflow experiments"
    )
    state_store: str = Field(
        f"sqlite:///{STATE_DIR}/state.db", description="SQLAlchemy URL (sqlite or postgresql)"
    )
    max_parallel: int = Field(4, ge=1, le=1024, description="steps running at once")
    durability: Literal["normal", "full"] = Field(
        "normal",
        description="embedded SQLite stores: normal (WAL, synchronous=NORMAL) or full sync",
    )
    cache: Literal["state", "artifacts"] = Field(
        "state", description="where the step cache is kept: the state store or the artifact store"
    )
    pipelines: list[str] = Field(
        default_factory=list, description="pipelines `stackwise scheduler start` runs"
    )
    policies: dict[str, Any] | None = Field(
        None,
        description="promotion policies, validated by stackwise.governance.policies when used",
    )
    # One section per backend, validated by that backend's own model when it is used (see
    # `section`), so that the core never imports a backend to read a stack file.
    airflow: dict[str, Any] | None = Field(None, description="Airflow deployment (orchestrator)")
    kubeflow: dict[str, Any] | None = Field(None, description="Kubeflow Pipelines (orchestrator)")
    ray: dict[str, Any] | None = Field(None, description="Ray cluster (compute backend)")
    kubernetes: dict[str, Any] | None = Field(None, description="Kubernetes Jobs (compute)")

    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    source: str | None = Field(None, exclude=True)

    @field_validator("orchestrator")
    @classmethod
    def _known_orchestrator(cls, value: str) -> str:
        from stackwise.plugins import ORCHESTRATORS, PLANNED_ORCHESTRATORS, TARGETS

        allowed = tuple(dict.fromkeys((*ORCHESTRATORS, *TARGETS, *PLANNED_ORCHESTRATORS)))
        if value not in allowed:
            raise ValueError(f"unknown orchestrator; allowed: {', '.join(allowed)}")
        return value

    @field_validator("compute")
    @classmethod
    def _known_compute(cls, value: str) -> str:
        from stackwise.plugins import COMPUTE_BACKENDS, PLANNED_COMPUTE_BACKENDS

        allowed = (*COMPUTE_BACKENDS, *PLANNED_COMPUTE_BACKENDS)
        if value not in allowed:
            raise ValueError(f"unknown compute backend; allowed: {', '.join(allowed)}")
        return value

    @field_validator("state_store")
    @classmethod
    def _known_state_store(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+")):
            raise ValueError("allowed: sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
        return value

    # -- resolved locations ------------------------------------------------------------------
    def resolve_path(self, value: str) -> str:
        if "://" in value:
            return value
        path = Path(value)
        return str(path if path.is_absolute() else (self.base_dir / path).resolve())

    @property
    def tracking_uri_resolved(self) -> str:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.tracking_uri
        if uri is None:
            uri = f"sqlite:///{STATE_DIR}/mlflow.db"
        return self._resolve_sqlite(uri)

    @property
    def owns_tracking_store(self) -> bool:
        """Whether the tracking store is stackwise's default one (nobody named a store)."""
        return not (os.environ.get("MLFLOW_TRACKING_URI") or self.tracking_uri)

    @property
    def state_store_resolved(self) -> str:
        return self._resolve_sqlite(self.state_store)

    @property
    def artifact_store_resolved(self) -> str:
        """The artifact store's URL (a folder becomes `file:///abs/folder`)."""
        from stackwise.artifacts.store import to_url

        return to_url(self.resolve_path(self.artifact_store))

    @property
    def mlflow_artifacts_resolved(self) -> str | None:
        """Artifact location for experiments stackwise creates on a local store; a server
        decides its own."""
        if self.tracking_uri_resolved.startswith(("http://", "https://", "databricks")):
            return None
        location = self.resolve_path(self.mlflow_artifacts)
        return location if "://" in location else Path(location).as_uri()

    def _resolve_sqlite(self, uri: str) -> str:
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            rel = uri.removeprefix("sqlite:///")
            return "sqlite:///" + str((self.base_dir / rel).resolve())
        return uri


def section(config: StackConfig, name: str, model: type[M]) -> M:
    """The stack file's `name:` section validated by a backend's own pydantic `model` (an absent
    section gives the model's defaults). Raises ConfigError naming the file and the key."""
    try:
        return model.model_validate(getattr(config, name) or {})
    except ValidationError as exc:
        fields = list(model.model_fields)
        raise ConfigError(
            _describe(Path(config.source or DEFAULT_FILE), exc, fields, prefix=f"{name}.")
        ) from None


def load_stack(path: str | os.PathLike[str] | None = None) -> StackConfig:
    """The stack config from `path`, or `./stackwise.yaml` when it exists, or the defaults."""
    import yaml

    explicit = path is not None
    file = Path(path) if path is not None else Path.cwd() / DEFAULT_FILE
    if not file.exists():
        if explicit:
            raise ConfigError(
                f"stack file {str(file)!r} does not exist; create it or drop --stack to use "
                "the defaults (local orchestrator, MLflow in .stackwise/)."
            )
        return StackConfig()
    try:
        data: Any = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}; fix the syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping of keys to values at the top level.")
    for key in ("base_dir", "source"):
        if key in data:
            raise ConfigError(f"{file}: unknown key {key!r}.")
    try:
        return StackConfig(**data, base_dir=file.resolve().parent, source=str(file))
    except ValidationError as exc:
        raise ConfigError(_describe(file, exc)) from None


def _describe(
    file: Path, exc: ValidationError, fields: list[str] | None = None, prefix: str = ""
) -> str:
    from stackwise.errors import did_you_mean

    if fields is None:
        fields = [k for k in StackConfig.model_fields if k not in ("base_dir", "source")]
    problems = []
    for err in exc.errors():
        key = prefix + (".".join(str(p) for p in err["loc"]) or "(top level)")
        if err["type"] == "extra_forbidden":
            problems.append(
                f"unknown key {key!r}.{did_you_mean(key.removeprefix(prefix), fields)} "
                f"Allowed keys: {', '.join(fields)}"
            )
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"key {key!r} = {err.get('input')!r}: {msg}")
    return f"{file}: " + "; ".join(problems) + "."
