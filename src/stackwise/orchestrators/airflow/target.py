"""`AirflowTarget`: the `Target` protocol for Apache Airflow 3.

`compile` writes a DAG file and its spec (no network). `deploy` logs in first (so that an
unreachable API or bad credentials fail before anything is written), writes the files into the
deployment's DAGs folder, waits until Airflow has parsed them (an import error puts the
previous files back and is shown), and unpauses the DAG. `trigger` starts a run through the
REST API with the parameters as the run's conf; `status` reads the run and its task instances.
Backfills are in `backfill` (Airflow 3 runs them only through its scheduler).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackwise.config import StackConfig, section
from stackwise.errors import ConfigError, TargetError
from stackwise.orchestrators.airflow import compile as compiler
from stackwise.orchestrators.airflow.settings import AirflowSettings
from stackwise.orchestrators.airflow.spec import (
    CLOSE_TASK,
    DagSpec,
    TrackingOut,
    dag_file_path,
    spec_path,
)
from stackwise.orchestrators.base import Deployment, RunRecord, StepRecord

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.interval import Interval
    from stackwise.orchestrators.airflow.client import AirflowClient

#: Airflow task instance states -> stackwise step statuses.
STEP_STATES = {
    "success": "SUCCEEDED", "failed": "FAILED", "upstream_failed": "SKIPPED",
    "skipped": "SKIPPED", "removed": "SKIPPED", "running": "RUNNING", "up_for_retry": "RUNNING",
    "restarting": "RUNNING", "deferred": "RUNNING", "up_for_reschedule": "RUNNING",
}  # fmt: skip
RUN_STATES = {"queued": "RUNNING", "running": "RUNNING", "success": "SUCCEEDED",
              "failed": "FAILED"}  # fmt: skip


class AirflowTarget:
    """Airflow 3 as a target; built from the stack (its `airflow:` section)."""

    name = "airflow"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.settings = section(config, "airflow", AirflowSettings)
        self._client: AirflowClient | None = None

    @property
    def poll_s(self) -> float:
        """Seconds between two looks at a run being followed (`airflow.poll_s`)."""
        return self.settings.poll_s

    @property
    def run_timeout_s(self) -> float | None:
        """Stop following a run after this long (`airflow.run_timeout_s`; None: never)."""
        return self.settings.run_timeout_s

    @property
    def client(self) -> AirflowClient:
        if self._client is None:
            from stackwise.orchestrators.airflow.client import AirflowClient

            self._client = AirflowClient(self.settings)
        return self._client

    # -- Target protocol -----------------------------------------------------------------------
    def validate(self, pipeline: Pipeline) -> list[str]:
        """Ids Airflow refuses, resources it cannot map, stores its workers cannot reach."""
        from urllib.parse import urlsplit

        found = compiler.problems(pipeline, self.settings)
        uri = self.config.tracking_uri_resolved if self.config.tracking else ""
        if uri and "://" in uri and urlsplit(uri).password:
            found.append(
                "the tracking URI holds a password, which would be written into the DAG spec: "
                "remove it from the URI and give it to the Airflow workers (e.g. "
                "MLFLOW_TRACKING_URI in their environment, or ~/.pgpass)"
            )
        if self.settings.executor != "local":  # workers on other hosts
            if not self.settings.bundle and (pipeline.ref or "").partition(":")[0].endswith(".py"):
                found.append(
                    f"with executor {self.settings.executor} the pipeline must reach other "
                    "hosts: set airflow.bundle: true, or install the project in the Airflow "
                    "image and name the pipeline as package.module:name"
                )
            if "://" not in self.config.artifact_store or self.config.artifact_store.startswith(
                "file:"
            ):
                found.append(
                    f"with executor {self.settings.executor} the artifact store must be shared "
                    "(s3://, gs://, ...), not a folder of this host"
                )
        return found

    def compile(self, pipeline: Pipeline, out: Path) -> list[Path]:
        """Write `<dag_id>.py` and `<dag_id>.stackwise.json` into the folder `out`."""
        return compiler.write_files(self.spec(pipeline), out)

    def spec(self, pipeline: Pipeline) -> DagSpec:
        """The pipeline's DAG as data: its reference (a code bundle stored in the artifact
        store when `airflow.bundle` is true), stores and schedule."""
        from stackwise.bundles import build_bundle, portable_ref
        from stackwise.tracking import tags as T
        from stackwise.tracking.manifest import git_info

        if not pipeline.ref:
            raise ConfigError(f"pipeline {pipeline.name!r} has no reference; load it by TARGET.")
        root = self.config.base_dir
        artifact_root = self.config.artifact_store_resolved
        bundle = build_bundle(root, artifact_root)[0] if self.settings.bundle else None
        ref = portable_ref(pipeline.ref, root, bundle)
        if bundle is not None or not ref.is_file:
            ref = ref.model_copy(update={"root": None})
        tracking = None
        if self.config.tracking:
            tracking = TrackingOut(
                uri=self.config.tracking_uri_resolved,
                experiment=self.config.experiment or pipeline.name,
                artifact_location=self.config.mlflow_artifacts_resolved,
            )
        git = git_info(str(root))
        tags = {}
        if git:  # bundled code has no .git: tag the runs with the commit that was compiled
            tags = {T.MLFLOW_GIT_COMMIT: git["commit"], T.GIT_DIRTY: str(git["dirty"]).lower()}
        return compiler.build_spec(
            pipeline, self.settings, ref=ref, artifact_root=artifact_root, tracking=tracking,
            git=tags,
        )  # fmt: skip

    def deploy(self, pipeline: Pipeline) -> Deployment:
        """Write the DAG into `airflow.dags_folder`, wait until parsed, unpause it."""
        folder = self._dags_folder()
        self.client.login()  # unreachable / bad credentials: nothing written yet
        spec = self.spec(pipeline)
        dag_file, data_file = dag_file_path(folder, spec.dag_id), spec_path(folder, spec.dag_id)
        before = {p: p.read_bytes() if p.exists() else None for p in (dag_file, data_file)}
        written_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=0.2)
        files = compiler.write_files(spec, folder)
        changed = any(before[p] != p.read_bytes() for p in (dag_file, data_file))
        try:
            self._wait_parsed(spec.dag_id, dag_file, written_at if changed else None)
        except TargetError:
            _restore(before)
            raise
        self.client.unpause(spec.dag_id)
        return Deployment(target=self.name, pipeline=pipeline.name, ref=spec.dag_id,
                          files=tuple(files))  # fmt: skip

    def trigger(
        self, deployment: Deployment, params: dict[str, Any], interval: Interval | None = None
    ) -> str:
        """Start a DAG run with `params` as its conf (secret parameters are left out: tasks
        read them from STACKWISE_PARAM_<NAME>); returns Airflow's run id."""
        from stackwise.tracking.redaction import is_secret_name

        conf = {k: v for k, v in params.items() if not is_secret_name(k)}
        logical = interval.logical_date.isoformat() if interval is not None else None
        run = self.client.trigger(deployment.ref, conf, logical)
        return str(run["dag_run_id"])

    def status(self, deployment: Deployment, run: str) -> RunRecord:
        return self.run_record(deployment.ref, self.client.dag_run(deployment.ref, run))

    def backfill(
        self, pipeline: Pipeline, intervals: list[Interval], params: dict[str, Any],
        **options: Any,
    ) -> tuple[int | None, list[Any]]:
        """An Airflow backfill over `intervals` (see `stackwise.orchestrators.airflow.backfill`)."""
        from stackwise.orchestrators.airflow.backfill import run_backfill

        return run_backfill(self, pipeline, intervals, params, **options)

    # -- helpers shared with backfills and `runs list` ------------------------------------------
    def run_record(self, dag_id: str, dag_run: dict[str, Any], steps: bool = True) -> RunRecord:
        """A DAG run as stackwise reports runs (steps from its task instances)."""
        record = RunRecord(
            run_id=str(dag_run["dag_run_id"]), pipeline=dag_id, pipeline_ref=dag_id,
            pipeline_version="", params=dict(dag_run.get("conf") or {}),
            status=RUN_STATES.get(str(dag_run.get("state")), "RUNNING"),
            created_at=_epoch(dag_run.get("run_after")) or 0.0, orchestrator="airflow",
            ended_at=_epoch(dag_run.get("end_date")),
            interval=_interval(dag_run),
        )  # fmt: skip
        if not steps:
            return record
        close_failed = False
        for ti in self.client.task_instances(dag_id, record.run_id):
            state = str(ti.get("state") or "")
            if ti["task_id"] == CLOSE_TASK:
                close_failed = state == "failed"
                continue
            record.steps[ti["task_id"]] = StepRecord(
                name=ti["task_id"], status=STEP_STATES.get(state, "PENDING"),
                attempt=int(ti.get("try_number") or 0), duration_s=ti.get("duration"),
                started_at=_epoch(ti.get("start_date")), ended_at=_epoch(ti.get("end_date")),
            )  # fmt: skip
        if close_failed and record.status == "FAILED":
            failed = [s for s in record.steps.values() if s.status == "FAILED"]
            record.error = ", ".join(s.name for s in failed) or "the run's close task failed"
        return record

    def list_runs(self, *, limit: int = 50, pipeline: str | None = None) -> list[RunRecord]:
        """Recent DAG runs of the DAGs stackwise exported (tag `stackwise`), newest first."""
        dag_ids = [pipeline] if pipeline else self.client.dags("stackwise")
        runs: list[RunRecord] = []
        for dag_id in dag_ids:
            for dag_run in self.client.dag_runs(dag_id, limit=limit):
                runs.append(self.run_record(dag_id, dag_run, steps=False))
        runs.sort(key=lambda r: r.created_at, reverse=True)
        return runs[:limit]

    def _dags_folder(self) -> Path:
        if not self.settings.dags_folder:
            raise ConfigError(
                "airflow.dags_folder is not set in the stack file: give the folder the "
                "deployment's dag-processor reads (its [core] dags_folder)."
            )
        return Path(self.config.resolve_path(self.settings.dags_folder))

    def _wait_parsed(self, dag_id: str, dag_file: Path, since: dt.datetime | None) -> None:
        """Until Airflow has parsed `dag_file` in a parse that began after `since` (when it
        changed; the API server's clock is taken to agree with this host's). Raises
        TargetError with Airflow's import error, or when the parse timeout passes."""
        deadline = time.monotonic() + self.settings.parse_timeout_s
        while True:
            for error in self.client.import_errors():
                if Path(str(error.get("filename", ""))).name == dag_file.name and (
                    since is None or _moment(error.get("timestamp")) >= since
                ):
                    trace = str(error.get("stack_trace", "")).strip().splitlines()
                    raise TargetError(
                        f"Airflow could not import {dag_file.name}: "
                        f"{trace[-1] if trace else 'unknown error'}; the previous DAG files "
                        "were put back and nothing was triggered."
                    )
            dag = self.client.get_dag(dag_id)
            if dag and dag.get("last_parsed_time"):
                # when the parse began: a parse that began before the write read the old files
                began = _moment(dag["last_parsed_time"]) - dt.timedelta(
                    seconds=float(dag.get("last_parse_duration") or 0.0))
                if since is None or began >= since:
                    return
            if time.monotonic() > deadline:
                raise TargetError(
                    f"Airflow did not parse DAG {dag_id} within "
                    f"{self.settings.parse_timeout_s:.0f} s: is its dag-processor running and "
                    f"reading {dag_file.parent} (airflow.dags_folder)? Nothing was triggered."
                )
            time.sleep(min(self.settings.poll_s, 1.0))


def _restore(before: dict[Path, bytes | None]) -> None:
    for path, content in before.items():
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(content)


def _moment(value: Any) -> dt.datetime:
    if not value:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _epoch(value: Any) -> float | None:
    return _moment(value).timestamp() if value else None


def _interval(dag_run: dict[str, Any]) -> dict[str, str] | None:
    start, end = dag_run.get("data_interval_start"), dag_run.get("data_interval_end")
    if not start or not end or start == end:
        return None
    logical = dag_run.get("logical_date") or start
    return {"logical_date": logical, "data_interval_start": start, "data_interval_end": end}
