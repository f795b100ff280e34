"""Two orchestrator shapes and the neutral types they return.

- `Orchestrator`: stackwise orders the steps itself (the embedded `local` orchestrator): it
  runs a pipeline to completion, resumes a run, and answers for its runs.
- `Target`: stackwise hands a compiled pipeline to another system (Airflow, Kubeflow): it
  validates, compiles to files, deploys, triggers runs and reports their status.

Both run every step only through the step runner (`stackwise.runner`). The CLI talks only to
these protocols and types; implementations import this module, never the reverse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stackwise.artifacts.store import ArtifactRef

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.interval import Interval

RUN_TERMINAL = ("SUCCEEDED", "FAILED", "KILLED")


def new_run_id() -> str:
    """Sortable and unique: creation time (UTC), then randomness."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


@dataclasses.dataclass
class StepRecord:
    """One step of a pipeline run. `status`: PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED (an
    upstream step did not succeed) or KILLED; times are epoch seconds."""

    name: str
    status: str = "PENDING"
    attempt: int = 0
    cached: bool = False
    mlflow_run_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    outputs: dict[str, ArtifactRef] = dataclasses.field(default_factory=dict)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None
    cache_key: str | None = None
    code_version: str | None = None
    #: The process running the current attempt (host/pid/start), when it is not the
    #: orchestrator itself: a resume waits for it to be gone before it starts another.
    worker: str | None = None


@dataclasses.dataclass
class RunRecord:
    """One pipeline run. `status`: RUNNING, SUCCEEDED, FAILED or KILLED (`stale` when RUNNING
    but its owning process is gone). `params` never hold a secret in clear."""

    run_id: str
    pipeline: str
    pipeline_ref: str
    pipeline_version: str
    params: dict[str, Any]
    status: str
    created_at: float
    interval: dict[str, str] | None = None
    mlflow_run_id: str | None = None
    experiment_id: str | None = None
    tracking_uri: str | None = None
    artifact_root: str = ""
    orchestrator: str = "local"
    compute: str = "local"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    ended_at: float | None = None
    host: str | None = None
    pid: int | None = None
    pid_start: str | None = None
    error: str | None = None
    steps: dict[str, StepRecord] = dataclasses.field(default_factory=dict)

    @property
    def stale(self) -> bool:
        """RUNNING, but the process that owns it is gone (SIGKILL, power loss); judged by
        host, pid and process start time, so a reused pid does not look alive."""
        from stackwise.processes import identity_alive

        if self.status != "RUNNING" or self.pid is None:
            return False
        return not identity_alive(self.host, self.pid, self.pid_start)


@dataclasses.dataclass(frozen=True)
class StepEvent:
    """What the progress display and `--json` consumers see, in order, from one thread."""

    run_id: str
    step: str
    status: str  # RUNNING, RETRYING, SUCCEEDED, FAILED, SKIPPED, KILLED
    attempt: int
    cached: bool = False
    duration_s: float | None = None
    error: str | None = None


EventSink = Callable[[StepEvent], None]


def ignore_event(_event: StepEvent) -> None:
    return None


class Orchestrator(Protocol):
    name: str

    def validate(self, pipeline: Pipeline) -> list[str]:
        """Problems that stop this pipeline from running here; empty when it can run."""
        ...

    def preflight(self, pipeline: Pipeline, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything checkable before a run (parameters, backends, stores); returns the
        resolved parameters, raises a StackwiseError with the fix otherwise."""
        ...

    def run(
        self,
        pipeline: Pipeline,
        params: dict[str, Any] | None = None,
        *,
        max_parallel: int | None = None,
        use_cache: bool = True,
        interval: Interval | None = None,
        on_event: EventSink = ...,
        run_id: str | None = None,
    ) -> RunRecord:
        """Run the whole pipeline once and return its finished record (check `.status`)."""
        ...

    def resume(
        self,
        run_id: str,
        params: dict[str, Any] | None = None,
        *,
        on_event: EventSink = ...,
        max_parallel: int | None = None,
    ) -> RunRecord:
        """Rerun what did not succeed in an earlier run. `params` gives again the values of
        secret parameters, which are never stored."""
        ...

    def get_run(self, run_id: str) -> RunRecord: ...

    def list_runs(self, *, limit: int = 50, pipeline: str | None = None) -> list[RunRecord]: ...


@dataclasses.dataclass(frozen=True)
class Deployment:
    """Where a compiled pipeline went: the target's own id for it and the files written."""

    target: str
    pipeline: str
    ref: str
    files: tuple[Path, ...] = ()


class Target(Protocol):
    """An orchestrator stackwise hands a compiled pipeline to (Airflow, Kubeflow)."""

    name: str

    def validate(self, pipeline: Pipeline) -> list[str]:
        """What the target would reject (names, resources, schedules), before compiling."""
        ...

    def compile(self, pipeline: Pipeline, out: Path) -> list[Path]:
        """Write the target's files (a DAG file, a KFP spec) from data; no network."""
        ...

    def deploy(self, pipeline: Pipeline) -> Deployment:
        """Make the target know the pipeline (upload, wait until parsed, unpause)."""
        ...

    def trigger(
        self, deployment: Deployment, params: dict[str, Any], interval: Interval | None = None
    ) -> str:
        """Start one run; returns the target's run id."""
        ...

    def status(self, deployment: Deployment, run: str) -> RunRecord:
        """The run as stackwise reports runs."""
        ...
