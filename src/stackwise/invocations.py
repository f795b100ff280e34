"""Building invocations: what every orchestrator adapter does to hand a step to the runner.

`build_invocation` turns one step of a pipeline into a `StepInvocation`: its options resolved
once (resources, image, timeout, compute backend), its inputs as `InputRef`s (with the concrete
artifact when the caller knows it, as the local orchestrator does; by name otherwise, as a
compiled DAG must), and the pipeline run's identity, parameters, interval, artifact store,
cache policy and tracking target. `tracking_target` builds the latter from a
`PipelineRunInfo`, so that every orchestrator tags its runs the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackwise.artifacts.store import ArtifactRef
from stackwise.authoring.pipeline import Pipeline
from stackwise.contract import (
    CachePolicy,
    InputRef,
    PipelineRef,
    StepInvocation,
    TrackingTarget,
)
from stackwise.interval import Interval
from stackwise.tracking.layout import PipelineRunInfo, run_tags


def build_invocation(
    pipeline: Pipeline,
    step: str,
    *,
    ref: PipelineRef,
    run_id: str,
    params: Mapping[str, Any],
    artifact_root: str,
    interval: Interval | None = None,
    attempt: int = 1,
    tracking: TrackingTarget | None = None,
    cache: CachePolicy | None = None,
    orchestrator: str = "local",
    default_compute: str = "local",
    inputs: Mapping[str, ArtifactRef] | None = None,
) -> StepInvocation:
    """The invocation of one attempt of `step`. `inputs` maps input names to artifacts already
    known; the others are left for the runner to resolve through the artifact store."""
    node = pipeline.nodes[step]
    options = node.definition.options
    known = inputs or {}
    refs = {
        name: InputRef(step=b.step or "", output=b.output or "", artifact=known.get(name))
        for name, b in node.bindings.items()
        if b.kind == "output"
    }
    return StepInvocation(
        pipeline=ref,
        step=step,
        run_id=run_id,
        attempt=attempt,
        params=dict(params),
        interval=interval,
        inputs=refs,
        artifact_root=artifact_root,
        resources=options.resources,
        image=options.image,
        timeout_s=options.timeout_s,
        cache=cache,
        tracking=tracking,
        orchestrator=orchestrator,
        compute=options.compute or default_compute,
    )


def tracking_target(
    uri: str,
    experiment: str,
    info: PipelineRunInfo,
    *,
    artifact_location: str | None = None,
) -> TrackingTarget:
    """The tracking target of a pipeline run that has no parent run yet (the runner, or the
    orchestrator through `RunLayout.open_parent`, finds or creates it)."""
    return TrackingTarget(
        uri=uri,
        experiment=experiment,
        artifact_location=artifact_location,
        run_tags=run_tags(info),
    )
