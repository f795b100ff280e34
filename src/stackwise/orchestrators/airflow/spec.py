"""`DagSpec`: everything an Airflow DAG of a pipeline needs, as plain data (JSON).

`compile` writes it beside a fixed DAG file; `dag.build_dag` reads it back and builds the DAG
with `airflow.sdk` objects; `task` reads it inside each task. Nothing in it is ever pasted into
Python source, so a name, description or default holding quotes, newlines or code stays data.
Secret parameters are absent (tasks read them from `STACKWISE_PARAM_<NAME>`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stackwise.contract import PipelineRef

#: Bumped when the spec changes shape; `build_dag` refuses other versions.
SPEC_VERSION: Literal[1] = 1
#: The final task of every DAG: closes the pipeline run's MLflow parent (trigger rule ALL_DONE).
CLOSE_TASK = "stackwise_close"
SPEC_SUFFIX = ".stackwise.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PodSpec(_Model):
    """A task's pod under the KubernetesExecutor: Kubernetes quantities as strings."""

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str]] = Field(default_factory=list)
    namespace: str | None = None


class TaskSpec(_Model):
    """One Airflow task of a step. Times in seconds; `retry_backoff` is Airflow's multiplier
    (`retry_exponential_backoff`, 0 for a constant delay)."""

    task_id: str
    upstream: list[str] = Field(default_factory=list)
    retries: int = 0
    retry_delay_s: float = 1.0
    retry_backoff: float = 0.0
    max_retry_delay_s: float | None = None
    timeout_s: float | None = None
    pool: str | None = None
    pool_slots: int = 1
    queue: str | None = None
    pod: PodSpec | None = None
    doc: str = ""


class ParamOut(_Model):
    """A pipeline parameter as an Airflow `Param`: its JSON Schema (`type`, `enum`)."""

    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    default: Any = None
    required: bool = False
    description: str = ""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ScheduleOut(_Model):
    """The pipeline's schedule as Airflow takes it (datetimes as ISO 8601 with offsets)."""

    kind: Literal["cron", "delta"]
    cron: str | None = None
    every_s: float | None = None
    start: str
    end: str | None = None
    timezone: str = "UTC"
    catchup: bool = False
    max_active_runs: int = 4


class TrackingOut(_Model):
    uri: str
    experiment: str
    artifact_location: str | None = None


class DagSpec(_Model):
    """One pipeline as one Airflow DAG."""

    spec_version: Literal[1] = SPEC_VERSION
    dag_id: str
    description: str = ""
    doc_md: str = ""
    tags: list[str] = Field(default_factory=list)
    schedule: ScheduleOut | None = None
    params: list[ParamOut] = Field(default_factory=list)
    secret_params: list[str] = Field(default_factory=list)
    tasks: list[TaskSpec]
    pipeline: str
    pipeline_ref: PipelineRef
    artifact_root: str
    tracking: TrackingOut | None = None
    compute: str = "airflow"
    executor: Literal["local", "celery", "kubernetes"] = "local"
    git: dict[str, str] = Field(default_factory=dict)  # tags of the commit compiled

    @property
    def steps(self) -> list[str]:
        return [t.task_id for t in self.tasks]


def spec_path(dags_folder: Path, dag_id: str) -> Path:
    return dags_folder / f"{dag_id}{SPEC_SUFFIX}"


def dag_file_path(dags_folder: Path, dag_id: str) -> Path:
    return dags_folder / f"{dag_id}.py"


def read_spec(path: Path) -> DagSpec:
    """The spec at `path`. Raises ValueError (shown by Airflow as the DAG's import error)
    naming the file when it is missing, of another version, or malformed."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"stackwise DAG spec {path}: cannot read it ({exc}); re-export.") from None
    version = data.get("spec_version") if isinstance(data, dict) else None
    if version != SPEC_VERSION:
        raise ValueError(
            f"stackwise DAG spec {path} has spec_version {version!r}; this stackwise reads "
            f"{SPEC_VERSION}: re-export the pipeline with the stackwise installed in Airflow."
        )
    return DagSpec.model_validate(data)
