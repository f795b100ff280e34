"""The reference backend: each step attempt runs in a daemon thread of this process.

Threads share the loaded pipeline and the MLflow client, so a step costs no process start.
Timeouts and Ctrl-C reach Python code at once (an exception is raised inside the step); a
step blocked inside native code sees it when that call returns. Daemon threads never keep
the process alive after the run is over.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from stackwise.runner import CancelToken, StepInvocation, StepResult, run_step

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline


class _ThreadHandle:
    def __init__(self) -> None:
        self.token = CancelToken()
        self._result: StepResult | None = None

    def done(self) -> bool:
        return self._result is not None

    def result(self) -> StepResult:
        assert self._result is not None, "result() before done()"
        return self._result

    def cancel(self, reason: type[BaseException]) -> None:
        self.token.cancel(reason)

    @property
    def mlflow_run_id(self) -> str | None:
        return self.token.mlflow_run_id


class LocalBackend:
    name = "local"

    def validate(self, pipeline: Pipeline, steps: list[str]) -> list[str]:
        problems = []
        cpus = os.cpu_count() or 1
        has_gpu = os.path.exists("/dev/nvidia0")
        for name in steps:
            res = pipeline.nodes[name].definition.options.resources
            if res.gpu and not has_gpu:
                problems.append(
                    f"step {name!r} needs {res.gpu} GPU(s) but this machine has none; run it on "
                    "a GPU backend (compute='kubernetes' or 'ray' in a later release) or drop "
                    "resources.gpu for a local run."
                )
            if res.cpu and res.cpu > cpus:
                problems.append(
                    f"step {name!r} asks for {res.cpu} CPUs but this machine has {cpus}; lower "
                    "resources.cpu or run it on a bigger backend."
                )
        return problems

    def submit(
        self, invocation: StepInvocation, on_done: Callable[[_ThreadHandle], None]
    ) -> _ThreadHandle:
        handle = _ThreadHandle()

        def work() -> None:
            try:
                handle._result = run_step(invocation, handle.token)
            except BaseException as exc:  # an injected exception that landed between frames
                handle._result = StepResult(
                    step=invocation.step,
                    status="KILLED" if handle.token.requested else "FAILED",
                    error=f"{type(exc).__name__}: {exc}",
                    error_type=type(exc).__name__,
                )
            on_done(handle)

        threading.Thread(target=work, name=f"stackwise-{invocation.step}", daemon=True).start()
        return handle
