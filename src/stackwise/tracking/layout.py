"""The MLflow run layout, in one place, for every orchestrator.

A pipeline run is one parent run (tagged `stackwise.run_kind=pipeline` and its
`stackwise.run_id`); each step attempt is a nested child run; a cache hit is a cheap child
named `STEP (cached)`. The environment manifest is logged once per process and environment
and referenced by digest from every run. `open_parent` finds the parent of a pipeline run or
creates it, idempotently: whichever process gets there first creates it, retries and other
workers find it, and of two workers racing to create it one parent remains.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stackwise.contract import TrackingTarget
from stackwise.interval import Interval
from stackwise.tracking import tags as T
from stackwise.tracking.mlflow_tracker import MlflowTracker, tracker_for

_manifest_lock = threading.Lock()
#: (tracking URI, experiment id, manifest digest) -> where this process's manifest is logged.
_manifest_refs: dict[tuple[str, str, str], str] = {}
MANIFEST_PATH = "stackwise/environment.json"


@dataclasses.dataclass(frozen=True)
class PipelineRunInfo:
    """What a pipeline run's tags describe (the same on every orchestrator)."""

    pipeline: str
    version: str
    ref: str
    run_id: str
    orchestrator: str
    compute: str
    interval: Interval | None = None
    source_folder: str | None = None
    extra_tags: Mapping[str, str] = dataclasses.field(default_factory=dict)


def run_tags(info: PipelineRunInfo) -> dict[str, str]:
    """The tags of a pipeline run, shared by its parent and every child run."""
    from stackwise.tracking.manifest import git_info

    tags = {
        T.PIPELINE: info.pipeline,
        T.PIPELINE_VERSION: info.version,
        T.PIPELINE_REF: info.ref,
        T.RUN_ID: info.run_id,
        T.ORCHESTRATOR: info.orchestrator,
        T.COMPUTE: info.compute,
        T.MLFLOW_SOURCE_NAME: info.ref,
    }
    git = git_info(info.source_folder or os.getcwd())
    if git:
        tags[T.MLFLOW_GIT_COMMIT] = git["commit"]
        tags[T.GIT_DIRTY] = str(git["dirty"]).lower()
    if info.interval is not None:
        tags[T.LOGICAL_DATE] = info.interval.logical_date.isoformat()
        tags[T.DATA_INTERVAL_START] = info.interval.data_interval_start.isoformat()
        tags[T.DATA_INTERVAL_END] = info.interval.data_interval_end.isoformat()
    for key, value in info.extra_tags.items():
        tags[str(key)] = str(value)
    return tags


def output_tags(outputs: Mapping[str, Any]) -> dict[str, str]:
    """Where each output of a step run lives and its digest: what lineage follows. Shared by
    executed and cached step runs, so both read the same."""
    tags: dict[str, str] = {}
    for name, ref in outputs.items():
        tags[T.output_tag(name)] = ref.uri
        tags[T.output_digest_tag(name)] = ref.digest
    return tags


def owner() -> str:
    """This process as the owner of a run: host/pid/start time (see stackwise.processes)."""
    from stackwise.processes import current_identity

    return current_identity().token


class RunLayout:
    """The operations every orchestrator needs, over one tracking store."""

    def __init__(self, tracker: MlflowTracker) -> None:
        self.tracker = tracker

    @classmethod
    def for_target(cls, target: TrackingTarget) -> RunLayout:
        return cls(tracker_for(target.uri))

    # -- the parent -----------------------------------------------------------------------
    def open_parent(
        self,
        target: TrackingTarget,
        run_id: str,
        params: Mapping[str, Any],
        *,
        pipeline: str | None = None,
        source_folder: str | None = None,
        settle_s: float = 0.0,
        fresh: bool = False,
    ) -> TrackingTarget:
        """Find the parent run of pipeline run `run_id` or create it, and log this process's
        manifest on it once. Returns the target with `experiment_id`, `parent_run_id` and the
        manifest reference filled in.

        `settle_s` > 0 when other processes may race to create the same parent (workers of a
        foreign orchestrator): the creator waits that long, looks again, and of several
        parents keeps the oldest, deleting its own if it lost. `fresh`: the caller has just
        made `run_id` (and recorded it first), so no parent can exist yet: none is searched
        for. A manifest this process already logged in the experiment is referenced in the
        new parent's tags (no call of its own)."""
        from stackwise.tracking.redaction import redact_params

        # The keys every parent is found by, whatever the caller's run_tags hold.
        target = target.model_copy(
            update={"run_tags": {**target.run_tags, T.RUN_ID: run_id,
                                 T.PIPELINE: target.run_tags.get(T.PIPELINE) or pipeline
                                 or "pipeline"}}
        )  # fmt: skip
        tracker = self.tracker
        exp_id = target.experiment_id or tracker.experiment_id(
            target.experiment, target.artifact_location
        )
        manifest, digest = self.manifest(target, source_folder)
        parents = [] if fresh else self.find_parents(exp_id, run_id)
        if parents:
            parent = parents[0]
        else:
            run_name = f"{target.run_tags[T.PIPELINE]} {run_id}"
            tags = {**target.run_tags, T.RUN_KIND: T.RUN_KIND_PIPELINE, T.OWNER: owner(),
                    T.ENVIRONMENT_DIGEST: digest}  # fmt: skip
            with _manifest_lock:
                known = _manifest_refs.get((tracker.uri, exp_id, digest))
            if known is not None:
                tags[T.ENVIRONMENT] = known
            created = tracker.start_run(exp_id, run_name, tags)
            parent = created
            if settle_s > 0:
                time.sleep(settle_s)
                found = self.find_parents(exp_id, run_id)
                winner = found[0] if found else created
                if winner.info.run_id != created.info.run_id:
                    tracker.delete_run(created.info.run_id)
                    parent = winner
            if parent is created and params:
                tracker.log(created.info.run_id, params=redact_params(params))
        parent_id = str(parent.info.run_id)
        ref = self.ensure_manifest(exp_id, parent_id, parent.data.tags, manifest, digest)
        return target.model_copy(
            update={"experiment_id": exp_id, "parent_run_id": parent_id,
                    "manifest_digest": digest, "manifest_artifact": ref}
        )  # fmt: skip

    def find_parents(self, experiment_id: str, run_id: str) -> list[Any]:
        """Active parent runs of pipeline run `run_id`, oldest first."""
        runs = self.tracker.search(
            experiment_id,
            f"tags.`{T.RUN_ID}` = '{_quote(run_id)}' and "
            f"tags.`{T.RUN_KIND}` = '{T.RUN_KIND_PIPELINE}'",
        )
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    def manifest(
        self, target: TrackingTarget, source_folder: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """This process's environment manifest and its digest."""
        from stackwise.tracking.manifest import cached_manifest

        return cached_manifest(
            source_folder or os.getcwd(),
            target.run_tags.get(T.ORCHESTRATOR, "local"),
            target.run_tags.get(T.COMPUTE, "local"),
            os.environ.get("STACKWISE_IMAGE"),
        )

    def ensure_manifest(
        self,
        experiment_id: str,
        parent_id: str,
        parent_tags: Mapping[str, str],
        manifest: dict[str, Any],
        digest: str,
    ) -> str:
        """Where the manifest with `digest` is logged for runs of this experiment: the parent's
        own copy when it has this digest, this process's earlier copy, or a new copy logged
        on the parent (once per process, environment and experiment)."""
        if parent_tags.get(T.ENVIRONMENT_DIGEST) == digest and parent_tags.get(T.ENVIRONMENT):
            return str(parent_tags[T.ENVIRONMENT])
        key = (self.tracker.uri, experiment_id, digest)
        with _manifest_lock:
            known = _manifest_refs.get(key)
        if known is not None:
            if parent_tags.get(T.ENVIRONMENT_DIGEST) == digest:
                self.tracker.log(parent_id, tags={T.ENVIRONMENT: known})
            return known
        self.tracker.log_json(parent_id, manifest, MANIFEST_PATH)
        ref = f"runs:/{parent_id}/{MANIFEST_PATH}"
        with _manifest_lock:
            _manifest_refs[key] = ref
        self.tracker.log(parent_id, tags={T.ENVIRONMENT: ref, T.ENVIRONMENT_DIGEST: digest})
        return ref

    def close_parent(self, target: TrackingTarget, status: str, *, sweep: bool) -> None:
        """Terminate the parent with `status` (SUCCEEDED -> FINISHED); with `sweep`, first
        close children still RUNNING (left by a killed process or a stuck step)."""
        assert target.parent_run_id and target.experiment_id
        if sweep:
            leftover = "KILLED" if status == "KILLED" else "FAILED"
            self.tracker.close_open_children(target.experiment_id, target.parent_run_id, leftover)
        final = "FINISHED" if status == "SUCCEEDED" else status
        self.tracker.log(target.parent_run_id, tags={T.STATUS: status})
        self.tracker.end_run(target.parent_run_id, final, release_connection=True)

    def reopen_parent(self, target: TrackingTarget) -> None:
        """Before resuming: close leftover children as KILLED and mark the parent RUNNING."""
        assert target.parent_run_id and target.experiment_id
        self.tracker.close_open_children(target.experiment_id, target.parent_run_id, "KILLED")
        self.tracker.reopen(target.parent_run_id)
        self.tracker.log(target.parent_run_id, tags={T.OWNER: owner()})

    # -- children ---------------------------------------------------------------------------
    def child_tags(self, target: TrackingTarget, step: str, **extra: str) -> dict[str, str]:
        return {**target.run_tags, T.RUN_KIND: T.RUN_KIND_STEP, T.STEP: step, **extra}

    def open_step(
        self, target: TrackingTarget, name: str, step_tags: Mapping[str, str]
    ) -> Any:
        """Create a step's child run under the parent (one create_run call)."""
        assert target.parent_run_id and target.experiment_id
        return self.tracker.start_run(
            target.experiment_id, name, step_tags, parent_run_id=target.parent_run_id
        )

    def record_cache_hit(
        self,
        target: TrackingTarget,
        step: str,
        outputs: Mapping[str, Any],
        cached_from: str | None,
        cache_key: str,
    ) -> str:
        """A cache hit still gets a (cheap) child run, so that lineage and the MLflow UI show
        every step of every run and where its outputs came from."""
        tags = self.child_tags(
            target, step, **{T.CACHED: "true", T.STATUS: "SUCCEEDED", T.CACHE_KEY: cache_key,
                             T.ENVIRONMENT: target.manifest_artifact or "",
                             T.ENVIRONMENT_DIGEST: target.manifest_digest or ""},
        )  # fmt: skip
        if cached_from:
            tags[T.CACHED_FROM] = cached_from
        tags.update(output_tags(outputs))
        child = self.open_step(target, f"{step} (cached)", tags)
        self.tracker.end_run(child.info.run_id, "FINISHED")
        return str(child.info.run_id)

    # -- leftovers --------------------------------------------------------------------------
    def sweep_dead_owners(self, experiment_id: str) -> list[str]:
        """Close runs of this experiment left RUNNING by a process of this host that is gone
        (SIGKILL, power loss): a parent as KILLED with its children. Returns the closed ids."""
        from stackwise.processes import ProcessIdentity

        host = socket.gethostname()
        runs = self.tracker.search(  # a foreign orchestrator's workers close their own runs
            experiment_id,
            f"attributes.status = 'RUNNING' and tags.`{T.RUN_KIND}` = '{T.RUN_KIND_PIPELINE}' "
            f"and tags.`{T.ORCHESTRATOR}` = 'local'",
        )
        closed: list[str] = []
        for run in runs:
            token = run.data.tags.get(T.OWNER)
            ident = ProcessIdentity.parse(token) if token else None
            if ident is None or ident.host != host or ident.alive():
                continue
            self.tracker.close_open_children(experiment_id, run.info.run_id, "KILLED")
            self.tracker.log(run.info.run_id, tags={T.STATUS: "KILLED"})
            self.tracker.end_run(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
        return closed


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def manifest_folder(source_file: str | None) -> str:
    return str(Path(source_file).parent) if source_file else os.getcwd()
