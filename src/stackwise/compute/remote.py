"""What every remote compute backend (Ray, Kubernetes) does before a step leaves this host:
ship the code as a bundle, and refuse stores only this host can see."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from stackwise.compute.base import HandleStatus, StepHandle
from stackwise.contract import (
    BundleRef,
    CachePolicy,
    PipelineRef,
    StepInvocation,
    StepResult,
    TrackingTarget,
    remote_problems,
)
from stackwise.errors import ComputeError, StackwiseError


def stack_location_problems(stack: Any, where: str) -> list[str]:
    """`contract.remote_problems` for the stores a stack names (checked before a run, when
    no invocation exists yet). `where` names the cluster in the messages."""
    if stack is None:
        return []
    probe = StepInvocation(
        pipeline=PipelineRef(target="probe", name="probe"), step="probe", run_id="probe",
        artifact_root=stack.artifact_store_resolved,
        tracking=TrackingTarget(uri=stack.tracking_uri_resolved, experiment="probe")
        if stack.tracking else None,
        cache=CachePolicy(store=stack.cache, state_store=stack.state_store_resolved),
    )  # fmt: skip
    return [f"cannot run on {where}: {p}." for p in remote_problems(probe)]


class BundleShipper:
    """Replaces a host-local pipeline reference by a code bundle in the artifact store (built
    once per project folder, artifact store and backend), so no worker needs this host's
    folders."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bundles: dict[tuple[str, str], BundleRef] = {}

    def portable(self, inv: StepInvocation) -> StepInvocation:
        ref = inv.pipeline
        if ref.bundle is not None or ref.root is None:
            return inv
        from stackwise.artifacts.store import local_path
        from stackwise.bundles import build_bundle

        key = (ref.root, inv.artifact_root)
        with self._lock:
            bundle = self._bundles.get(key)
            if bundle is None:
                root = local_path(ref.root)
                if root is None:
                    raise ComputeError(f"the project root {ref.root} is not a local folder.")
                bundle, _, _ = build_bundle(root, inv.artifact_root)
                self._bundles[key] = bundle
        pipeline = ref.model_copy(update={"bundle": bundle, "root": None})
        return inv.model_copy(update={"pipeline": pipeline})


class DoneHandle:
    """An attempt refused before it started (implements StepHandle)."""

    running_since: float | None = None
    mlflow_run_id: str | None = None

    def __init__(self, result: StepResult) -> None:
        self._result = result

    @classmethod
    def failed(
        cls, inv: StepInvocation, exc: StackwiseError, on_done: Callable[[StepHandle], None]
    ) -> DoneHandle:
        handle = cls(StepResult(
            step=inv.step, status="FAILED", attempt=inv.attempt, error=exc.message,
            error_type=type(exc).__name__, retryable=False,
        ))  # fmt: skip
        on_done(handle)
        return handle

    def status(self) -> HandleStatus:
        return "DONE"

    def result(self) -> StepResult:
        return self._result

    def logs(self) -> str:
        return ""

    def cancel(self, reason: type[BaseException]) -> None:
        return None
