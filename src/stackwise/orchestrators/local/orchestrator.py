"""The embedded local orchestrator (the default): no server, state in a SQLite file.

`run` and `resume` check everything that can be checked before anything runs (parameters,
backends, the stores), write the state record first and then find or create the MLflow
parent run (so that every MLflow run can be found from the state store and closed), hand the
DAG to the `Executor`, and always close both, whatever happens: nothing is left RUNNING.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from stackwise.authoring.pipeline import Pipeline
from stackwise.compute.base import ComputeBackend
from stackwise.config import StackConfig
from stackwise.contract import CachePolicy, PipelineRef, TrackingTarget
from stackwise.errors import PipelineValidationError, StateStoreError, StepCancelledError
from stackwise.interval import Interval
from stackwise.orchestrators.base import (
    EventSink,
    RunRecord,
    StepRecord,
    ignore_event,
    new_run_id,
)
from stackwise.orchestrators.local import resumption
from stackwise.orchestrators.local.executor import Executor
from stackwise.orchestrators.local.shield import shielded
from stackwise.orchestrators.local.state import StateStore
from stackwise.processes import current_identity


class LocalOrchestrator:
    name = "local"

    def __init__(self, stack: StackConfig) -> None:
        self.stack = stack
        self._state: StateStore | None = None
        self._backends: dict[str, ComputeBackend] = {}
        self._checked = False
        self._lock = threading.Lock()
        if stack.tracking and stack.durability == "normal" and stack.owns_tracking_store:
            from stackwise.tracking.durability import relax

            relax(stack.tracking_uri_resolved)

    @property
    def state(self) -> StateStore:
        if self._state is None:
            from stackwise.orchestrators.local.cache import state_store

            self._state = state_store(
                self.stack.state_store_resolved, self.stack.base_dir, self.stack.durability
            )
        return self._state

    def backend(self, name: str) -> ComputeBackend:
        with self._lock:
            if name not in self._backends:
                from stackwise.plugins import COMPUTE_BACKENDS, resolve

                backend = resolve(COMPUTE_BACKENDS, "compute backend", name)(self.stack)
                backend.open()
                self._backends[name] = backend
            return self._backends[name]

    def close(self) -> None:
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            backend.close()

    # -- checks ---------------------------------------------------------------------------------
    def validate(self, pipeline: Pipeline) -> list[str]:
        problems: list[str] = []
        for name in pipeline.order:
            options = pipeline.nodes[name].definition.options
            backend = self.backend(options.compute or self.stack.compute)
            for problem in backend.validate(options.resources, options.image):
                problems.append(f"step {name!r} {problem}")
        return problems

    def preflight(self, pipeline: Pipeline, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything checkable before a run: parameters, backends, the state store, the
        artifact store and the tracking store. Returns the resolved parameters; raises with a
        fix otherwise. The stores are probed once per process (a backfill calls this per
        interval)."""
        from stackwise.artifacts.store import ArtifactStore

        values = pipeline.resolve_params(self._given(pipeline, params))
        problems = self.validate(pipeline)
        if problems:
            raise PipelineValidationError("; ".join(problems))
        _ = self.state
        if not self._checked:
            ArtifactStore(self.stack.artifact_store_resolved).check_writable()
            if self.stack.tracking:
                self._tracker(self.stack.tracking_uri_resolved).check_reachable()
            self._checked = True
        return values

    # -- runs -----------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord:
        return self.state.get_run(run_id)

    def list_runs(self, *, limit: int = 50, pipeline: str | None = None) -> list[RunRecord]:
        return self.state.list_runs(limit=limit, pipeline=pipeline)

    def run(
        self,
        pipeline: Pipeline,
        params: dict[str, Any] | None = None,
        *,
        max_parallel: int | None = None,
        use_cache: bool = True,
        interval: Interval | None = None,
        on_event: EventSink = ignore_event,
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
        ref = self.pipeline_ref(pipeline.ref)
        me = current_identity()
        run = RunRecord(
            run_id=run_id or new_run_id(), pipeline=pipeline.name, pipeline_ref=str(ref),
            pipeline_version=pipeline.version, params=values, status="RUNNING",
            created_at=time.time(), interval=interval.to_dict() if interval else None,
            artifact_root=self.stack.artifact_store_resolved, orchestrator=self.name,
            compute=self.stack.compute,
            options={"max_parallel": max_parallel or self.stack.max_parallel,
                     "use_cache": use_cache, "tracking": self.stack.tracking,
                     "cache_store": self.stack.cache, "tags": tags or {},
                     "secret_defaults": resumption.secret_defaults(
                         pipeline, self._given(pipeline, params))},
            host=me.host, pid=me.pid, pid_start=me.start,
            steps={n: StepRecord(n) for n in pipeline.order},
        )  # fmt: skip
        if self.stack.tracking:
            run.tracking_uri = self.stack.tracking_uri_resolved
        # The state record first: every MLflow run opened after it can be found from it.
        self.state.create_run(run, list(pipeline.order))
        try:
            target = self._open_tracking(pipeline, run, fresh=True) if self.stack.tracking else None
        except BaseException as exc:
            run.status, run.ended_at = "FAILED", time.time()
            run.error = f"{type(exc).__name__}: {exc}"
            self.state.update_run(run.run_id, status="FAILED", error=run.error,
                                  ended_at=run.ended_at)  # fmt: skip
            raise
        return self._execute(pipeline, ref, run, target, on_event, cancel)

    def resume(
        self,
        run_id: str,
        params: dict[str, Any] | None = None,
        *,
        on_event: EventSink = ignore_event,
        max_parallel: int | None = None,
        cancel: threading.Event | None = None,
    ) -> RunRecord:
        """Rerun what did not succeed in an earlier run (failed, killed, or stale after its
        process died), reusing the outputs of the steps that did, unless their code changed
        since (then they and their downstream steps rerun; `options["changed_steps"]` says
        which). Secret parameters are taken again from `params` (or the environment)."""
        from stackwise.bundles import load_pipeline_ref

        run = self.state.get_run(run_id)
        resumption.check_resume_params(params or {})
        if run.status == "SUCCEEDED":
            run.options["secret_sources"], run.options["changed_steps"] = {}, []
            return run
        if run.status == "RUNNING" and not run.stale:
            raise StateStoreError(
                f"run {run.run_id} is still running (pid {run.pid} on {run.host}); wait for it, "
                "or stop it first (Ctrl-C or kill), then resume."
            )
        ref = self.pipeline_ref(run.pipeline_ref)
        pipeline = load_pipeline_ref(ref)
        if set(pipeline.order) != set(run.steps):
            raise StateStoreError(
                f"run {run.run_id} was made with steps {list(run.steps)} but the pipeline now has "
                f"{list(pipeline.order)}; start a new run with `stackwise run` instead."
            )
        run.params = resumption.restore_params(run, pipeline, params or {})
        problems = self.validate(pipeline)
        if problems:
            raise PipelineValidationError("; ".join(problems))
        tracking = bool(run.options.get("tracking", True) and run.tracking_uri)
        if run.tracking_uri and tracking:
            self._tracker(run.tracking_uri).check_reachable()
        if not self.state.claim(run):
            raise StateStoreError(
                f"run {run.run_id} was resumed by another process just now; watch it with "
                f"`stackwise runs show {run.run_id}`."
            )
        resumption.wait_for_workers(run)
        if max_parallel:
            run.options["max_parallel"] = max_parallel
        changed = resumption.reset_steps(run, pipeline, self.state, self.stack)
        run.options["changed_steps"] = changed
        run.pipeline_version = pipeline.version
        self.state.update_run(run.run_id, pipeline_version=pipeline.version, options=run.options)
        target = self._reopen_tracking(pipeline, run) if tracking else None
        return self._execute(pipeline, ref, run, target, on_event, cancel)

    # -- shared ---------------------------------------------------------------------------------
    @staticmethod
    def _given(pipeline: Pipeline, params: dict[str, Any] | None) -> dict[str, Any]:
        """The run's parameters as given: `-p` values over secrets from STACKWISE_PARAM_*."""
        return {**resumption.secrets_from_env(pipeline), **(params or {})}

    def pipeline_ref(self, ref: str) -> PipelineRef:
        """A run's pipeline reference in portable form (relative to the project folder)."""
        from stackwise.bundles import portable_ref

        return portable_ref(ref, self.stack.base_dir)

    def _execute(
        self,
        pipeline: Pipeline,
        ref: PipelineRef,
        run: RunRecord,
        target: TrackingTarget | None,
        on_event: EventSink,
        cancel: threading.Event | None = None,
    ) -> RunRecord:
        from stackwise.invocations import build_invocation

        store = run.options.get("cache_store", "state")
        cache = CachePolicy(
            read=bool(run.options.get("use_cache", True)),
            store=store,
            state_store=self.stack.state_store_resolved if store == "state" else None,
        )
        artifact_root = run.artifact_root
        interval = Interval.from_dict(run.interval) if run.interval else None

        def invocation_for(step: str, attempt: int) -> Any:
            node = pipeline.nodes[step]
            inputs = {
                name: run.steps[b.step or ""].outputs[b.output or ""]
                for name, b in node.bindings.items()
                if b.kind == "output"
            }
            return build_invocation(
                pipeline, step, ref=ref, run_id=run.run_id, params=run.params,
                artifact_root=artifact_root, interval=interval, attempt=attempt,
                tracking=target, cache=cache, orchestrator=self.name,
                default_compute=self.stack.compute, inputs=inputs,
            )  # fmt: skip

        executor = Executor(
            pipeline=pipeline,
            run=run,
            state=self.state,
            backends={c: self.backend(c) for c in self._computes(pipeline)},
            invocation_for=invocation_for,
            on_event=on_event,
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
            with shielded():
                self._close(run, target, sweep=status != "SUCCEEDED" or executor.abandoned)
        return run

    def _close(self, run: RunRecord, target: TrackingTarget | None, sweep: bool) -> None:
        """Close the state record and the MLflow runs with one final status. Child runs close
        themselves; only after an interruption, a failure or an abandoned attempt are
        leftovers searched for."""
        try:
            if target is not None and target.parent_run_id:
                from stackwise.tracking.layout import RunLayout

                RunLayout.for_target(target).close_parent(target, run.status, sweep=sweep)
        finally:
            self.state.update_run(
                run.run_id, status=run.status, error=run.error, ended_at=run.ended_at
            )

    def _computes(self, pipeline: Pipeline) -> set[str]:
        return {
            pipeline.nodes[n].definition.options.compute or self.stack.compute
            for n in pipeline.order
        }

    @staticmethod
    def _tracker(uri: str) -> Any:
        from stackwise.tracking.mlflow_tracker import tracker_for

        return tracker_for(uri)

    # -- tracking -------------------------------------------------------------------------------
    def _target(self, pipeline: Pipeline, run: RunRecord) -> TrackingTarget:
        from stackwise.invocations import tracking_target
        from stackwise.tracking.layout import PipelineRunInfo, manifest_folder

        info = PipelineRunInfo(
            pipeline=pipeline.name, version=run.pipeline_version, ref=run.pipeline_ref,
            run_id=run.run_id, orchestrator=run.orchestrator, compute=run.compute,
            interval=Interval.from_dict(run.interval) if run.interval else None,
            source_folder=manifest_folder(pipeline.source_file),
            extra_tags=run.options.get("tags") or {},
        )  # fmt: skip
        return tracking_target(
            run.tracking_uri or self.stack.tracking_uri_resolved,
            self.stack.experiment or pipeline.name,
            info, artifact_location=self.stack.mlflow_artifacts_resolved,
        )  # fmt: skip

    def _open_tracking(
        self, pipeline: Pipeline, run: RunRecord, fresh: bool = False
    ) -> TrackingTarget:
        """The run's MLflow parent; `fresh`: a new run, whose state record was just created
        (its id is new: no parent to look for)."""
        from stackwise.tracking.layout import RunLayout, manifest_folder

        target = self._target(pipeline, run)
        layout = RunLayout.for_target(target)
        target = layout.open_parent(
            target, run.run_id, run.params, source_folder=manifest_folder(pipeline.source_file),
            fresh=fresh,
        )  # fmt: skip
        assert target.experiment_id is not None
        self._sweep_once(layout, target.experiment_id)
        run.mlflow_run_id, run.experiment_id = target.parent_run_id, target.experiment_id
        self.state.update_run(
            run.run_id, mlflow_run_id=run.mlflow_run_id, experiment_id=run.experiment_id,
            tracking_uri=run.tracking_uri,
        )  # fmt: skip
        return target

    def _reopen_tracking(self, pipeline: Pipeline, run: RunRecord) -> TrackingTarget:
        """Before a resume: the parent (found by the run id when the state record lacks it),
        leftovers closed, the parent RUNNING again and its code version updated, so MLflow
        and the state store agree."""
        from stackwise.tracking import tags as T
        from stackwise.tracking.layout import RunLayout

        target = self._open_tracking(pipeline, run)
        layout = RunLayout.for_target(target)
        layout.reopen_parent(target)
        assert target.parent_run_id is not None
        layout.tracker.log(target.parent_run_id, tags={T.PIPELINE_VERSION: run.pipeline_version})
        return target.model_copy(
            update={"run_tags": {**target.run_tags, T.PIPELINE_VERSION: run.pipeline_version}}
        )

    def _sweep_once(self, layout: Any, experiment_id: str) -> None:
        key = (layout.tracker.uri, experiment_id)
        with self._lock:
            if key in _swept:
                return
            _swept.add(key)
        layout.sweep_dead_owners(experiment_id)


#: (tracking URI, experiment) already swept for runs of dead processes in this process.
_swept: set[tuple[str, str]] = set()
