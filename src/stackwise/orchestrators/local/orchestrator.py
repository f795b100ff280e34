"""The embedded local orchestrator (the default): no server, state in a SQLite file.

`run` and `resume` check everything that can be checked before anything runs (parameters,
backends, the tracking server), open the MLflow parent run and the state record, hand the
DAG to the `Executor`, and always close both, whatever happens: nothing is left RUNNING.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from stackwise.artifacts.store import ArtifactRef, ArtifactStore
from stackwise.authoring.context import Interval
from stackwise.authoring.pipeline import Pipeline
from stackwise.compute.base import ComputeBackend
from stackwise.config import StackConfig
from stackwise.errors import PipelineValidationError, StateStoreError, StepCancelledError
from stackwise.orchestrators.local.executor import EventSink, Executor, StepEvent
from stackwise.orchestrators.local.state import RunRecord, StateStore, StepRecord
from stackwise.runner import TrackingTarget, output_tags


def new_run_id() -> str:
    """Sortable and unique: creation time, then randomness."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


def _ignore(_event: StepEvent) -> None:
    return None


class LocalOrchestrator:
    name = "local"

    def __init__(self, stack: StackConfig) -> None:
        self.stack = stack
        self._state: StateStore | None = None
        self._backends: dict[str, ComputeBackend] = {}
        self._manifest_refs: dict[tuple[str, str, str], str] = {}
        self._checked = False
        self._lock = threading.Lock()

    @property
    def state(self) -> StateStore:
        if self._state is None:
            self._state = StateStore(self.stack.state_store_resolved)
        return self._state

    def backend(self, name: str) -> ComputeBackend:
        if name not in self._backends:
            from stackwise.plugins import COMPUTE_BACKENDS, resolve

            self._backends[name] = resolve(COMPUTE_BACKENDS, "compute backend", name)()
        return self._backends[name]

    def validate(self, pipeline: Pipeline) -> list[str]:
        by_backend: dict[str, list[str]] = {}
        for name in pipeline.order:
            compute = pipeline.nodes[name].definition.options.compute or self.stack.compute
            by_backend.setdefault(compute, []).append(name)
        problems: list[str] = []
        for compute, steps in by_backend.items():
            problems += self.backend(compute).validate(pipeline, steps)
        return problems

    def preflight(self, pipeline: Pipeline, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything checkable before a run: parameters, backends, the state store and the
        tracking server. Returns the resolved parameters; raises with a fix otherwise."""
        values = pipeline.resolve_params(params or {})
        problems = self.validate(pipeline)
        if problems:
            raise PipelineValidationError("; ".join(problems))
        _ = self.state
        if not self._checked:  # once per process: a backfill calls this per interval
            ArtifactStore(self.stack.artifact_store_resolved).check_writable()
            if self.stack.tracking:
                self._tracker().check_reachable()
            self._checked = True
        return values

    # -- run ----------------------------------------------------------------------------------
    def run(
        self,
        pipeline: Pipeline,
        params: dict[str, Any] | None = None,
        *,
        max_parallel: int | None = None,
        use_cache: bool = True,
        interval: Interval | None = None,
        on_event: EventSink = _ignore,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
        cancel: threading.Event | None = None,
    ) -> RunRecord:
        """Run the whole pipeline once. Raises before anything runs on bad input; otherwise
        returns the finished run record (check `.status`)."""
        if pipeline.ref is None:
            raise PipelineValidationError(
                f"pipeline {pipeline.name!r} has no reference; load it with "
                "stackwise.load_pipeline('module:name') so steps can find it in any process."
            )
        values = self.preflight(pipeline, params)
        run = RunRecord(
            run_id=run_id or new_run_id(),
            pipeline=pipeline.name,
            pipeline_ref=pipeline.ref,
            pipeline_version=pipeline.version,
            params=values,
            status="RUNNING",
            created_at=time.time(),
            interval=interval.to_dict() if interval else None,
            artifact_root=self.stack.artifact_store_resolved,
            orchestrator=self.name,
            compute=self.stack.compute,
            options={
                "max_parallel": max_parallel or self.stack.max_parallel,
                "use_cache": use_cache,
                "tracking": self.stack.tracking,
                "tags": tags or {},
            },
            host=socket.gethostname(),
            pid=os.getpid(),
            steps={n: StepRecord(n) for n in pipeline.order},
        )
        state = self.state  # open it (and fail) before MLflow gets a run
        tracking = self._open_parent_run(pipeline, run) if self.stack.tracking else None
        try:
            state.create_run(run, list(pipeline.order))
        except Exception:
            if tracking is not None:
                self._tracker().end_run(tracking.parent_run_id, "FAILED")
            raise
        return self._execute(pipeline, run, tracking, on_event, cancel)

    # -- resume -------------------------------------------------------------------------------
    def resume(
        self,
        run_id: str,
        *,
        on_event: EventSink = _ignore,
        max_parallel: int | None = None,
        cancel: threading.Event | None = None,
    ) -> RunRecord:
        """Rerun what did not succeed in an earlier run (failed, killed, or stale after its
        process died), reusing the outputs of the steps that did."""
        from stackwise.authoring.loader import load_pipeline

        run = self.state.get_run(run_id)
        if run.status == "SUCCEEDED":
            return run
        if run.status == "RUNNING" and not run.stale:
            raise StateStoreError(
                f"run {run.run_id} is still running (pid {run.pid} on {run.host}); wait for it, "
                "or stop it first (Ctrl-C or kill), then resume."
            )
        pipeline = load_pipeline(run.pipeline_ref)
        missing = [s for s in run.steps if s not in pipeline.nodes]
        if missing or set(pipeline.order) != set(run.steps):
            raise StateStoreError(
                f"run {run.run_id} was made with steps {list(run.steps)} but the pipeline now has "
                f"{list(pipeline.order)}; start a new run with `stackwise run` instead."
            )
        problems = self.validate(pipeline)
        if problems:
            raise PipelineValidationError("; ".join(problems))
        if not self.state.claim(run):
            raise StateStoreError(
                f"run {run.run_id} was resumed by another process just now; watch it with "
                f"`stackwise runs show {run.run_id}`."
            )
        if max_parallel:
            run.options["max_parallel"] = max_parallel
        run.status, run.pipeline_version = "RUNNING", pipeline.version
        self.state.update_run(run.run_id, pipeline_version=pipeline.version, options=run.options)
        store = ArtifactStore(run.artifact_root)
        for record in run.steps.values():
            keep = record.status == "SUCCEEDED" and all(
                store.exists(ArtifactRef.from_dict(o)) for o in record.outputs.values()
            )
            if not keep:
                record.status, record.error, record.cached, record.outputs = (
                    "PENDING",
                    None,
                    False,
                    {},
                )
                self.state.update_step(run.run_id, record.name, status="PENDING", error=None,
                                       cached=False, outputs={})  # fmt: skip
        tracking = None
        if run.options.get("tracking", True) and run.mlflow_run_id and run.experiment_id:
            tracker = self._tracker(run.tracking_uri)
            tracker.close_open_children(run.experiment_id, run.mlflow_run_id, "KILLED")
            tracker.reopen(run.mlflow_run_id)
            tracking = self._tracking_target(pipeline, run)
        return self._execute(pipeline, run, tracking, on_event, cancel)

    # -- shared -------------------------------------------------------------------------------
    def _execute(
        self,
        pipeline: Pipeline,
        run: RunRecord,
        tracking: TrackingTarget | None,
        on_event: EventSink,
        cancel: threading.Event | None = None,
    ) -> RunRecord:
        executor = Executor(
            pipeline=pipeline,
            run=run,
            state=self.state,
            store=ArtifactStore(run.artifact_root),
            backends={c: self.backend(c) for c in self._computes(pipeline)},
            default_compute=self.stack.compute,
            tracking=tracking,
            on_event=on_event,
            record_cached=lambda rec, src: self._record_cached(tracking, rec, src),
            cancel=cancel,
        )
        status, error = "FAILED", None
        try:
            executor.execute()
            failed = [r.name for r in run.steps.values() if r.status != "SUCCEEDED"]
            status = "SUCCEEDED" if not failed else "FAILED"
            error = f"steps not succeeded: {', '.join(failed)}" if failed else None
        except (KeyboardInterrupt, StepCancelledError, SystemExit) as exc:
            status, error = "KILLED", f"interrupted ({type(exc).__name__})"
            raise
        except BaseException as exc:
            status, error = "FAILED", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            run.status, run.error, run.ended_at = status, error, time.time()
            self._close(run, tracking, sweep=status != "SUCCEEDED" or executor.abandoned)
        return run

    def _close(self, run: RunRecord, tracking: TrackingTarget | None, sweep: bool) -> None:
        """Close the state record and the MLflow runs with one final status, even when the
        process is being interrupted. Child runs close themselves; only after an
        interruption, a failure or an abandoned attempt are leftovers searched for."""
        try:
            if tracking is not None:
                tracker = self._tracker(tracking.uri)
                if sweep:
                    leftover = "KILLED" if run.status == "KILLED" else "FAILED"
                    tracker.close_open_children(
                        tracking.experiment_id, tracking.parent_run_id, leftover
                    )
                tracker.end_run(
                    tracking.parent_run_id, "FINISHED" if run.status == "SUCCEEDED" else run.status
                )
        finally:
            self.state.update_run(
                run.run_id, status=run.status, error=run.error, ended_at=run.ended_at
            )

    def _computes(self, pipeline: Pipeline) -> set[str]:
        return {
            pipeline.nodes[n].definition.options.compute or self.stack.compute
            for n in pipeline.order
        }

    def _tracker(self, uri: str | None = None) -> Any:
        from stackwise.tracking.mlflow_tracker import tracker_for

        return tracker_for(uri or self.stack.tracking_uri_resolved)

    def _open_parent_run(self, pipeline: Pipeline, run: RunRecord) -> TrackingTarget:
        """The parent run costs create_run + set_terminated, plus one log_batch when there
        are parameters or this process's manifest is not yet in MLflow."""
        from stackwise.tracking.redaction import redact_params

        tracker = self._tracker()
        experiment = self.stack.experiment or pipeline.name
        run.tracking_uri = tracker.uri
        run.experiment_id = tracker.experiment_id(experiment, self.stack.mlflow_artifacts_resolved)
        manifest, digest = self._manifest(pipeline, run)
        known = self._manifest_refs.get((tracker.uri, run.experiment_id, digest))
        tags = self._run_tags(pipeline, run)
        tags["stackwise.environment.digest"] = digest
        if known:
            tags["stackwise.environment"] = known
        parent = tracker.start_run(run.experiment_id, f"{pipeline.name} {run.run_id}", tags)
        run.mlflow_run_id = parent.info.run_id
        try:
            extra: dict[str, str] = {}
            if not known:
                extra["stackwise.environment"] = self._log_manifest(tracker, run, manifest, digest)
            if run.params or extra:
                tracker.log(run.mlflow_run_id, params=redact_params(run.params), tags=extra)
        except BaseException:
            tracker.end_run(run.mlflow_run_id, "FAILED")
            raise
        return self._tracking_target(pipeline, run)

    def _log_manifest(
        self, tracker: Any, run: RunRecord, manifest: dict[str, Any], digest: str
    ) -> str:
        """Log this process's manifest on `run` and remember it: later runs of this process
        (a backfill's hundreds of intervals) point at this copy instead of logging it again."""
        assert run.mlflow_run_id and run.experiment_id
        tracker.log_json(run.mlflow_run_id, manifest, "stackwise/environment.json")
        ref = f"runs:/{run.mlflow_run_id}/stackwise/environment.json"
        with self._lock:
            self._manifest_refs[(tracker.uri, run.experiment_id, digest)] = ref
        return ref

    def _manifest(self, pipeline: Pipeline, run: RunRecord) -> tuple[dict[str, Any], str]:
        from stackwise.tracking.manifest import cached_manifest

        folder = str(Path(pipeline.source_file).parent) if pipeline.source_file else os.getcwd()
        return cached_manifest(
            folder, run.orchestrator, run.compute, os.environ.get("STACKWISE_IMAGE")
        )

    def _tracking_target(self, pipeline: Pipeline, run: RunRecord) -> TrackingTarget:
        """What every step of this run needs to record itself; after `resume` in a new
        process, this process's manifest is attached to the parent first."""
        assert run.mlflow_run_id and run.experiment_id
        tracker = self._tracker(run.tracking_uri)
        manifest, digest = self._manifest(pipeline, run)
        ref = self._manifest_refs.get((tracker.uri, run.experiment_id, digest))
        if ref is None:
            ref = self._log_manifest(tracker, run, manifest, digest)
            env_tags = {"stackwise.environment": ref, "stackwise.environment.digest": digest}
            tracker.log(run.mlflow_run_id, tags=env_tags)
        return TrackingTarget(
            uri=run.tracking_uri or self.stack.tracking_uri_resolved,
            experiment_id=run.experiment_id,
            parent_run_id=run.mlflow_run_id,
            tags=self._run_tags(pipeline, run),
            manifest_digest=digest,
            manifest_artifact=ref,
        )

    def _run_tags(self, pipeline: Pipeline, run: RunRecord) -> dict[str, str]:
        from stackwise.tracking.manifest import git_info

        tags = {
            "stackwise.pipeline": pipeline.name,
            "stackwise.pipeline_version": run.pipeline_version,
            "stackwise.pipeline_ref": run.pipeline_ref,
            "stackwise.run_id": run.run_id,
            "stackwise.orchestrator": run.orchestrator,
            "stackwise.compute": run.compute,
            "mlflow.source.name": run.pipeline_ref,
        }
        folder = str(Path(pipeline.source_file).parent) if pipeline.source_file else os.getcwd()
        git = git_info(folder)
        if git:
            tags["mlflow.source.git.commit"] = git["commit"]
            tags["stackwise.git.dirty"] = str(git["dirty"]).lower()
        if run.interval:
            tags["stackwise.logical_date"] = run.interval["logical_date"]
            tags["stackwise.data_interval_start"] = run.interval["start"]
            tags["stackwise.data_interval_end"] = run.interval["end"]
        for key, value in (run.options.get("tags") or {}).items():
            tags[str(key)] = str(value)
        return tags

    def _record_cached(
        self, tracking: TrackingTarget | None, record: StepRecord, source_mlflow: str | None
    ) -> str | None:
        """A cache hit still gets a (cheap) child run, so that lineage and the MLflow UI show
        every step of every run and where its outputs came from."""
        if tracking is None:
            return None
        tracker = self._tracker(tracking.uri)
        tags = {**tracking.tags, "stackwise.step": record.name, "stackwise.cached": "true",
                "stackwise.status": "SUCCEEDED",
                "stackwise.environment": tracking.manifest_artifact or "",
                "stackwise.environment.digest": tracking.manifest_digest or ""}  # fmt: skip
        if source_mlflow:
            tags["stackwise.cached_from"] = source_mlflow
        tags.update(output_tags(record.outputs))
        child = tracker.start_run(
            tracking.experiment_id, f"{record.name} (cached)", tags, tracking.parent_run_id
        )
        tracker.end_run(child.info.run_id, "FINISHED")
        return str(child.info.run_id)
