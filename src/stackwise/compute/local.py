"""The reference backend: each step attempt runs in a daemon thread of this process.

Threads share the loaded pipeline and the MLflow client, so a step costs no process start.
Timeouts and Ctrl-C reach Python code at once (an exception is raised inside the step); a
step blocked inside native code sees it when that call returns. Daemon threads never keep
the process alive after the run is over.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stackwise.compute.base import HandleStatus, StepHandle
from stackwise.contract import StepInvocation, StepResult
from stackwise.runner import CancelToken, run_step

if TYPE_CHECKING:
    from stackwise.authoring.step import Resources


class _ThreadHandle:
    def __init__(self) -> None:
        self.token = CancelToken()
        self._result: StepResult | None = None
        self.running_since: float | None = time.monotonic()

    def status(self) -> HandleStatus:
        return "DONE" if self._result is not None else "RUNNING"

    def result(self) -> StepResult:
        assert self._result is not None, "result() before DONE"
        return self._result

    def logs(self) -> str:
        return self._result.logs if self._result is not None else ""

    def cancel(self, reason: type[BaseException]) -> None:
        self.token.cancel(reason)

    @property
    def mlflow_run_id(self) -> str | None:
        return self.token.mlflow_run_id


class LocalBackend:
    name = "local"

    def __init__(self, stack: Any = None) -> None:
        self.stack = stack

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def validate(self, resources: Resources, image: str | None) -> list[str]:
        return machine_problems(resources)

    def submit(
        self,
        invocation: StepInvocation,
        *,
        resources: Resources,
        image: str | None,
        on_done: Callable[[StepHandle], None],
    ) -> StepHandle:
        handle = _ThreadHandle()

        def work() -> None:
            try:
                handle._result = run_step(invocation, handle.token)
            except BaseException as exc:  # an injected exception that landed between frames
                handle._result = StepResult(
                    step=invocation.step,
                    status="KILLED" if handle.token.requested else "FAILED",
                    attempt=invocation.attempt,
                    error=f"{type(exc).__name__}: {exc}",
                    error_type=type(exc).__name__,
                )
            on_done(handle)

        threading.Thread(target=work, name=f"stackwise-{invocation.step}", daemon=True).start()
        return handle


def machine_problems(resources: Resources) -> list[str]:
    """What this machine can never give a step (GPUs it lacks, more CPUs than it has, several
    coordinated workers)."""
    problems = []
    if resources.workers and resources.workers > 1:
        problems.append(
            f"asks for {resources.workers} workers, but a step runs as one process here; run it "
            "with compute='ray' (distributed workers) or drop workers."
        )
    cpus = os.cpu_count() or 1
    if resources.gpu and not os.path.exists("/dev/nvidia0"):
        problems.append(
            f"needs {resources.gpu} GPU(s) but this machine has none; run it on a GPU backend "
            "(compute='kubernetes' or 'ray') or drop resources.gpu for a local run."
        )
    if resources.cpu and resources.cpu > cpus:
        problems.append(
            f"asks for {resources.cpu:g} CPUs but this machine has {cpus}; lower resources.cpu "
            "or run it on a bigger backend."
        )
    return problems
