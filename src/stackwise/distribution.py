"""One step run as N coordinated workers (data parallel), whatever engine places them.

Rank 0 runs the step through the runner as any attempt does (`run_step(inv, dist=...)`): it
owns the step's MLflow run, its outputs, cache entry and run index. Ranks 1..N-1 run the same
function through `run_peer`, which records nothing itself and returns a `PeerReport` (status,
traceback, metrics, what it printed). Before rank 0's results are written, the runner calls
`join_peers`: it waits for every other rank, fails the step when one of them failed, and adds
their metrics to the step's run under `rank<r>/<key>` (rank 0 keeps the plain keys, so a
1-worker run and rank 0 of N record the same names) and their output to the step's log.

A `Distribution` is plain data plus, on rank 0, the engine's way of waiting for the others
(`stackwise.compute.ray` implements it with Ray actors).
"""

from __future__ import annotations

import dataclasses
import socket
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from stackwise.authoring.context import MetricRecord, StepContext, UndeclaredParams
from stackwise.cancellation import CancelInterrupt, CancelToken, Interrupt
from stackwise.contract import StepInvocation, StepStatus
from stackwise.errors import WorkerFailedError
from stackwise.tracking import tags as T


@dataclasses.dataclass
class PeerReport:
    """What rank `rank` (> 0) of a distributed step did. Plain data (crosses processes)."""

    rank: int
    host: str
    status: StepStatus = "FAILED"
    error: str | None = None
    metrics: list[MetricRecord] = dataclasses.field(default_factory=list)
    logs: str = ""


@dataclasses.dataclass(frozen=True)
class Distribution:
    """Who this worker is. `join_peers` (rank 0 only) blocks until every other rank has ended
    and returns their reports; it raises an Interrupt when the attempt is stopped."""

    rank: int
    world_size: int
    rendezvous: str | None = None
    join_peers: Callable[[], Sequence[PeerReport]] | None = None

    def who(self) -> dict[str, Any]:
        """The `StepContext` fields of this worker."""
        return {"rank": self.rank, "world_size": self.world_size, "rendezvous": self.rendezvous}


def peer_metric_key(rank: int, key: str) -> str:
    """The key under which rank `rank`'s metric `key` lands in the step's MLflow run."""
    return key if rank == 0 else f"{T.RANK_METRIC_PREFIX.format(rank=rank)}{key}"


def join_peers(ctx: StepContext, dist: Distribution) -> str:
    """Rank 0, after its function returned: wait for the other ranks, add their metrics to
    `ctx` and return their output (for the step's log). Raises WorkerFailedError naming the
    first rank that failed, with its traceback."""
    if dist.join_peers is None:
        return ""
    reports = sorted(dist.join_peers(), key=lambda r: r.rank)
    for report in reports:
        if report.status != "SUCCEEDED":
            raise WorkerFailedError(
                f"rank {report.rank} of {dist.world_size} ({report.host}) "
                f"{'was stopped' if report.status == 'KILLED' else 'failed'}: {report.error}"
            )
    logs = []
    for report in reports:
        ctx.metrics.extend(
            dataclasses.replace(m, key=peer_metric_key(report.rank, m.key)) for m in report.metrics
        )
        if report.logs:
            logs.append(f"\n--- rank {report.rank} ({report.host}) ---\n{report.logs}")
    ctx.tags[T.WORLD_SIZE] = str(dist.world_size)
    return "".join(logs)


def run_peer(inv: StepInvocation, dist: Distribution, cancel: CancelToken) -> PeerReport:
    """Run rank `dist.rank` (> 0) of a distributed step: the same function on the same inputs
    and parameters, with its own `StepContext`; no MLflow run, outputs or cache entry of its
    own. Never raises for a failure of the step: the report says FAILED or KILLED."""
    from stackwise.artifacts.store import ArtifactStore
    from stackwise.authoring.context import reset_context, set_context
    from stackwise.bundles import load_pipeline_ref
    from stackwise.capture import capture
    from stackwise.step_io import bind, resolve_inputs
    from stackwise.tracking.redaction import redact_text, secrets_for_run

    report = PeerReport(rank=dist.rank, host=socket.gethostname())
    secrets = secrets_for_run(inv.params)
    try:
        pipeline = load_pipeline_ref(inv.pipeline)
        definition = pipeline.nodes[inv.step].definition
        params = pipeline.resolve_params(inv.params)
        store = ArtifactStore(inv.artifact_root)
        inputs = resolve_inputs(inv, store)
        kwargs, _, _ = bind(pipeline.nodes[inv.step], inputs, params, store)
        ctx = StepContext(
            pipeline=pipeline.name, step=inv.step, run_id=inv.run_id, attempt=inv.attempt,
            params=dict(params) if definition.context_param else UndeclaredParams(inv.step),
            interval=inv.interval, **dist.who(),
        )  # fmt: skip
        if definition.context_param:
            kwargs[definition.context_param] = ctx
        token = set_context(ctx)
        try:
            with capture(secrets) as buffer:
                try:
                    _call(definition.fn, kwargs, cancel)
                finally:
                    report.logs = redact_text(buffer.text()[-20_000:], secrets)
        finally:
            reset_context(token)
        report.metrics, report.status = list(ctx.metrics), "SUCCEEDED"
    except (CancelInterrupt, KeyboardInterrupt):
        report.status, report.error = "KILLED", "stopped"
    except Interrupt:
        report.error = "timed out"
    except Exception as exc:
        tb = "".join(traceback.format_tb(exc.__traceback__)[-8:])
        report.error = redact_text(f"{type(exc).__name__}: {exc}\n{tb}", secrets)
    return report


def _call(fn: Any, kwargs: dict[str, Any], cancel: CancelToken) -> Any:
    cancel.enter()
    try:
        return fn(**kwargs)
    finally:
        cancel.leave()
