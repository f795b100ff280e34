"""The driver's side of a distributed step: N `RankWorker` actors placed together.

1. A placement group of N bundles (one per worker, the step's per-worker resources) is
   created and must be placed within `placement_timeout_s`; otherwise the step fails with
   what the cluster has (a gang that cannot be placed would otherwise wait forever).
2. One actor per bundle; rank 0's actor picks the rendezvous address (its host and a free
   port); every rank runs with its rank, the world size and that address.
3. Each other rank's report goes to rank 0 as soon as it fails, or all together once all
   succeeded; rank 0 then writes the outputs and closes the step's MLflow run.
4. When any rank fails or the attempt is stopped (timeout, Ctrl-C), every rank is stopped; in
   the end the actors are killed and the placement group removed, whatever happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from stackwise.compute.base import ResultHandle, StepHandle
from stackwise.compute.ray.feasibility import Demand, describe_cluster
from stackwise.compute.ray.settings import RaySettings
from stackwise.compute.ray.worker import STOP_GRACE_S, RankWorker
from stackwise.contract import StepInvocation, StepResult, StepStatus
from stackwise.distribution import PeerReport
from stackwise.errors import StepTimeoutError


class GangHandle(ResultHandle):
    """A running distributed attempt (implements `StepHandle`)."""

    def __init__(
        self,
        inv: StepInvocation,
        demand: Demand,
        settings: RaySettings,
        nodes: Callable[[], list[dict[str, float]]],
        on_done: Callable[[StepHandle], None],
    ) -> None:
        self.inv, self.demand, self.settings, self._nodes = inv, demand, settings, nodes
        self.running_since: float | None = None
        self._result: StepResult | None = None
        self._stop: str | None = None
        self._actors: list[Any] = []
        threading.Thread(target=self._drive, args=(on_done,), daemon=True).start()

    # -- StepHandle -------------------------------------------------------------------------
    def logs(self) -> str:
        return self._result.logs if self._result is not None else ""

    @property
    def mlflow_run_id(self) -> str | None:
        return self._result.mlflow_run_id if self._result is not None else None

    def cancel(self, reason: type[BaseException]) -> None:
        self._stop = "timeout" if reason is StepTimeoutError else "cancel"

    # -- the driver -------------------------------------------------------------------------
    def _drive(self, on_done: Callable[[StepHandle], None]) -> None:
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        n = self.demand.workers
        strategy = self.settings.placement_strategy
        group = placement_group([self.demand.bundle()] * n, strategy=strategy)
        try:
            self._result = self._run(group, n)
        except Exception as exc:  # Ray itself failed (a node died, the cluster went away)
            self._result = self._failed(f"the Ray workers failed: {type(exc).__name__}: {exc}")
        finally:
            for actor in self._actors:
                ray.kill(actor)
            remove_placement_group(group)
        on_done(self)

    def _run(self, group: Any, n: int) -> StepResult:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        deadline = time.monotonic() + self.settings.placement_timeout_s
        while not group.wait(0.2):
            if self._stop is not None:
                return self._failed("stopped before its workers were placed", "KILLED")
            if time.monotonic() >= deadline:
                return self._failed(
                    f"its {n} workers of {self.demand.describe()} could not be placed together "
                    f"on the Ray cluster within {self.settings.placement_timeout_s:g}s "
                    f"({describe_cluster(self._nodes())}); lower workers or resources, or raise "
                    "ray.placement_timeout_s when the cluster is busy.",
                    retryable=False,
                )
        actor_class: Any = ray.remote(max_concurrency=4)(RankWorker)  # type: ignore[call-overload]
        self._actors = [
            actor_class.options(
                **self.demand.ray_options(),
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    group, placement_group_bundle_index=rank
                ),
            ).remote()
            for rank in range(n)
        ]
        rendezvous = ray.get(self._actors[0].rendezvous.remote())
        self.running_since = time.monotonic()
        payload = self.inv.model_dump_json()
        pending = {
            actor.run.remote(payload, rank, n, rendezvous): rank
            for rank, actor in enumerate(self._actors)
        }
        return self._watch(pending, n)

    def _watch(self, pending: dict[Any, int], n: int) -> StepResult:
        import ray

        reports: list[PeerReport] = []
        delivered = stop_sent = False
        given_up_at: float | None = None
        while True:
            if self._stop is not None and not stop_sent:
                stop_sent, given_up_at = True, time.monotonic()
                for actor in self._actors:
                    actor.stop.remote(self._stop)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.1)
            for ref in ready:
                rank = pending.pop(ref)
                if rank == 0:
                    return self._rank0(ref)
                report = self._report(ref, rank)
                reports.append(report)
                if report.status != "SUCCEEDED" and not delivered:
                    delivered, given_up_at = True, time.monotonic()
                    self._actors[0].deliver.remote([report])
                    for actor in self._actors[1:]:
                        actor.stop.remote("cancel")
            if not delivered and len(reports) == n - 1:
                delivered = True
                self._actors[0].deliver.remote(reports)
            if given_up_at is not None and time.monotonic() > given_up_at + 2 * STOP_GRACE_S:
                failed = next((r for r in reports if r.status != "SUCCEEDED"), None)
                why = f"rank {failed.rank} failed: {failed.error}" if failed else "it was stopped"
                return self._failed(f"{why}; rank 0 did not stop in time and was killed")

    def _rank0(self, ref: Any) -> StepResult:
        import ray
        from ray.exceptions import RayError

        try:
            return StepResult.model_validate_json(ray.get(ref))
        except RayError as exc:
            return self._failed(f"rank 0 of {self.demand.workers} died: {exc}")

    def _report(self, ref: Any, rank: int) -> PeerReport:
        import ray
        from ray.exceptions import RayError

        try:
            report = ray.get(ref)
            assert isinstance(report, PeerReport)
            return report
        except RayError as exc:  # its process died (a segfault, the node went away)
            return PeerReport(rank=rank, host="?", error=f"its Ray worker died: {exc}")

    def _failed(
        self, error: str, status: StepStatus = "FAILED", retryable: bool = True
    ) -> StepResult:
        return StepResult(
            step=self.inv.step, status=status, attempt=self.inv.attempt,
            error=error, error_type="ComputeError" if not retryable else "WorkerFailedError",
            retryable=retryable,
        )  # fmt: skip
