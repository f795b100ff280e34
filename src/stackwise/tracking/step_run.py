"""One step attempt's MLflow run, as the runner records it: opened under the pipeline run's
parent (found or created once per process), then closed with everything the attempt gathered
(params, metrics, tags, dataset inputs, what it printed). A cache hit gets a cheap child run
instead. The layout itself (tag names, parents, manifests) is `stackwise.tracking.layout`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from stackwise.artifacts.store import ArtifactRef
from stackwise.authoring.context import StepContext
from stackwise.contract import StepInvocation, TrackingTarget
from stackwise.tracking import tags as T
from stackwise.tracking.layout import RunLayout, output_tags

#: How long a worker that created a pipeline's parent run waits for a racing worker's.
PARENT_SETTLE_S = 0.2
LOG_ARTIFACT = "stackwise/logs/{step}-attempt{attempt}.txt"
MANIFEST_ARTIFACT = "stackwise/environment.json"

_parents: dict[tuple[str, str], TrackingTarget] = {}
_parents_lock = threading.Lock()


def parent_target(inv: StepInvocation, source_folder: str, pipeline: str) -> TrackingTarget:
    """The invocation's tracking target with its parent run: given by the orchestrator, or
    found or created once per process (a foreign orchestrator's workers)."""
    target = inv.tracking
    assert target is not None
    if target.parent_run_id is not None:
        return target
    key = (target.uri, inv.run_id)
    with _parents_lock:
        known = _parents.get(key)
        if known is None:
            known = RunLayout.for_target(target).open_parent(
                target, inv.run_id, inv.params, pipeline=pipeline, source_folder=source_folder,
                settle_s=PARENT_SETTLE_S,
            )  # fmt: skip
            _parents[key] = known
    return known


@dataclasses.dataclass
class StepRun:
    """An open step run; `finish` closes it."""

    inv: StepInvocation
    layout: RunLayout
    run: Any

    @property
    def run_id(self) -> str:
        return str(self.run.info.run_id)

    @classmethod
    def open(
        cls,
        inv: StepInvocation,
        ctx: StepContext,
        *,
        source_folder: str,
        version: str,
        inputs: Mapping[str, ArtifactRef],
        cache_key: str | None,
    ) -> StepRun:
        """One create_run call (plus the manifest, when this process's environment differs
        from the one logged on the parent)."""
        target = parent_target(inv, source_folder, ctx.pipeline)
        layout = RunLayout.for_target(target)
        layout.tracker.activate()
        manifest, digest = layout.manifest(target, source_folder)
        tags = layout.child_tags(
            target, inv.step, **{T.ATTEMPT: str(inv.attempt), T.COMPUTE: inv.compute,
                                 T.PIPELINE_VERSION: version, T.ENVIRONMENT_DIGEST: digest},
        )  # fmt: skip
        if cache_key:
            tags[T.CACHE_KEY] = cache_key
        for name, ref in inputs.items():
            tags[T.input_tag(name)] = ref.uri
        own_manifest = digest != target.manifest_digest or not target.manifest_artifact
        if not own_manifest:
            tags[T.ENVIRONMENT] = target.manifest_artifact or ""
        name = inv.step if inv.attempt == 1 else f"{inv.step} (attempt {inv.attempt})"
        step_run = cls(inv, layout, layout.open_step(target, name, tags))
        run_id = step_run.run_id
        ctx.mlflow_run_id = run_id
        if own_manifest:
            layout.tracker.log_json(run_id, manifest, MANIFEST_ARTIFACT)
            ctx.tags[T.ENVIRONMENT] = f"runs:/{run_id}/{MANIFEST_ARTIFACT}"
        ctx.flush = lambda metrics: layout.tracker.log(run_id, metrics=metrics)
        return step_run

    def finish(
        self,
        ctx: StepContext,
        *,
        call_params: Mapping[str, Any],
        outputs: Mapping[str, ArtifactRef],
        status: str,
        error: str | None,
        logs: str,
    ) -> str | None:
        """Record what the attempt gathered and close the run with its status. Returns why
        MLflow refused the records (the step then fails, and its run closes FAILED), or None."""
        from stackwise.tracking.redaction import redact_params, redact_text, secrets_for_run

        tracker = self.layout.tracker
        secrets = secrets_for_run(self.inv.params)
        tags = {k: redact_text(v, secrets) for k, v in ctx.tags.items()}
        tags.update(output_tags(outputs))
        tags[T.STATUS] = status
        if error:
            tags[T.ERROR] = redact_text(error, secrets)[-4000:]
        datasets = [
            dataclasses.replace(
                d, name=redact_text(d.name, secrets), source=redact_text(d.source, secrets)
            )
            for d in ctx.datasets
        ]
        final = "FINISHED" if status == "SUCCEEDED" else status
        problem = None
        try:
            tracker.log(self.run_id, params=redact_params(call_params, secrets),
                        metrics=ctx.metrics, tags=tags)  # fmt: skip
            ctx.metrics = []
            if datasets:
                tracker.log_datasets(self.run_id, datasets)
            if logs:
                path = LOG_ARTIFACT.format(step=self.inv.step, attempt=self.inv.attempt)
                tracker.log_text(self.run_id, redact_text(logs, secrets), path)
        except Exception as exc:  # e.g. a value MLflow refuses
            final = "FAILED"
            problem = f"recording the step in MLflow failed: {type(exc).__name__}: {exc}"
        finally:
            tracker.end_run(self.run_id, final)
        return problem


def record_cache_hit(
    inv: StepInvocation,
    source_folder: str,
    pipeline: str,
    outputs: Mapping[str, ArtifactRef],
    cached_from: str | None,
    cache_key: str,
) -> str:
    """The cheap child run of a cache hit; returns its id."""
    target = parent_target(inv, source_folder, pipeline)
    return RunLayout.for_target(target).record_cache_hit(
        target, inv.step, outputs, cached_from, cache_key
    )
