"""What runs inside the Ray workers. Only the invocation's JSON crosses over; the worker loads
the pipeline from the code bundle, runs the step through `stackwise.runner.run_step`, and
sends back the `StepResult` as JSON. Nothing here imports the orchestrator.

A single-worker step is `run_attempt`, a streaming generator task: it reports ("started",
host) when it really runs (the orchestrator counts the timeout from there), ("mlflow_run", id)
as soon as the step's MLflow run exists, then ("result", json). The step runs in a thread of
the task, so that a stop (the invocation's timeout, enforced here too, or `ray.cancel`, which
Ray delivers as KeyboardInterrupt to the task's thread) is injected only into the step's own
code and the runner always closes the MLflow run.

A distributed step is N `RankWorker` actors (see `gang.py`).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from stackwise.cancellation import CancelToken
from stackwise.contract import StepInvocation, StepResult
from stackwise.distribution import Distribution, PeerReport, run_peer
from stackwise.errors import StepCancelledError, StepTimeoutError, WorkerFailedError

#: How long a stopped step may take to close its MLflow run before the task gives up on it.
STOP_GRACE_S = 3.0
_REASONS: dict[str, type[BaseException]] = {
    "timeout": StepTimeoutError, "cancel": StepCancelledError,
}  # fmt: skip


def run_attempt(payload: str) -> Iterator[tuple[str, str | None]]:
    """The Ray task of one single-worker attempt (a generator: see the module docstring)."""
    from stackwise.runner import run_step

    inv = StepInvocation.model_validate_json(payload)
    yield ("started", socket.gethostname())
    token = CancelToken()
    box: dict[str, StepResult] = {}
    thread = threading.Thread(target=lambda: box.update(result=run_step(inv, token)), daemon=True)
    timer = _timer(inv, token)
    thread.start()
    told = False
    try:
        while thread.is_alive():
            thread.join(0.05)
            if not told and token.mlflow_run_id:
                told = True
                yield ("mlflow_run", token.mlflow_run_id)
    except KeyboardInterrupt:  # ray.cancel: stop the step; the runner closes its MLflow run
        token.cancel(StepCancelledError)
        thread.join(STOP_GRACE_S)
        raise
    finally:
        if timer is not None:
            timer.cancel()
    yield ("result", box["result"].model_dump_json())


def _timer(inv: StepInvocation, token: CancelToken) -> threading.Timer | None:
    if not inv.timeout_s:
        return None
    timer = threading.Timer(inv.timeout_s, token.cancel, args=(StepTimeoutError,))
    timer.daemon = True
    timer.start()
    return timer


class RankWorker:
    """One rank of a distributed step (a threaded Ray actor: `run` occupies one thread,
    `deliver` and `stop` arrive on others)."""

    def __init__(self) -> None:
        self.token = CancelToken()
        self.peers: list[PeerReport] | None = None
        self.peer_failure: PeerReport | None = None
        self.arrived = threading.Event()

    def rendezvous(self) -> str:
        """`host:port` with a port free on this node now (rank 0's, for the other ranks)."""
        host = socket.gethostbyname(socket.gethostname())
        with socket.socket() as s:
            s.bind(("", 0))
            return f"{host}:{s.getsockname()[1]}"

    def run(self, payload: str, rank: int, world_size: int, rendezvous: str) -> Any:
        """Rank 0: the runner's `StepResult` JSON. Other ranks: their `PeerReport`."""
        from stackwise.runner import run_step

        inv = StepInvocation.model_validate_json(payload)
        timer = _timer(inv, self.token)
        try:
            if rank > 0:
                return run_peer(inv, Distribution(rank, world_size, rendezvous), self.token)
            dist = Distribution(0, world_size, rendezvous, join_peers=self._join)
            result = run_step(inv, self.token, dist=dist)
            if self.peer_failure is not None and result.status == "KILLED":
                result = _failed_by_peer(inv, result, self.peer_failure, world_size)
            return result.model_dump_json()
        finally:
            if timer is not None:
                timer.cancel()

    def deliver(self, reports: Sequence[PeerReport]) -> None:
        """The other ranks' reports (rank 0). A failure stops rank 0's own code at once."""
        failed = [r for r in reports if r.status != "SUCCEEDED"]
        if failed:
            self.peer_failure = failed[0]
            self.token.cancel(StepCancelledError)
        self.peers = list(reports)
        self.arrived.set()

    def stop(self, reason: str) -> None:
        self.token.cancel(_REASONS[reason])
        self.arrived.set()

    def _join(self) -> Sequence[PeerReport]:
        from stackwise.cancellation import interrupt_for

        while not self.arrived.wait(0.1):
            pass
        if self.peer_failure is not None:
            return [self.peer_failure]
        if self.token.requested is not None:
            raise interrupt_for(self.token.requested)()
        return self.peers or []


def _failed_by_peer(
    inv: StepInvocation, result: StepResult, peer: PeerReport, world_size: int
) -> StepResult:
    """Rank 0 was stopped because another rank failed: the step FAILED (not KILLED), in the
    result and in its MLflow run."""
    message = WorkerFailedError(
        f"rank {peer.rank} of {world_size} ({peer.host}) failed: {peer.error}"
    ).message
    if result.mlflow_run_id and inv.tracking is not None:
        from stackwise.tracking import tags as T
        from stackwise.tracking.mlflow_tracker import tracker_for

        tracker = tracker_for(inv.tracking.uri)
        tracker.log(result.mlflow_run_id, tags={T.STATUS: "FAILED", T.ERROR: message[-4000:]})
        tracker.end_run(result.mlflow_run_id, "FAILED")
    return result.model_copy(
        update={"status": "FAILED", "error": message, "error_type": "WorkerFailedError"}
    )
