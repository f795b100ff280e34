"""The reference backend: each step attempt runs in a daemon thread of this process.

Threads share the loaded pipeline and the MLflow client, so a step costs no process start.
Timeouts and Ctrl-C reach Python code at once (an exception is raised inside the step); a
step blocked inside native code sees it when that call returns. Daemon threads never keep
the process alive after the run is over.

Threads are reused: a finished attempt's thread waits (up to `IDLE_S`) for the next one, so a
step does not pay for a thread start. A thread still busy, e.g. one whose attempt was
abandoned while blocked in native code, is never handed new work: the pool starts another.
Each attempt runs in a fresh `contextvars` context and with MLflow's per-thread active-run
state emptied, as on a new thread; other thread-local state of the step's own libraries
persists from one attempt to the next on the same thread (as on any warm worker).
"""

from __future__ import annotations

import contextvars
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stackwise.compute.base import HandleStatus, StepHandle
from stackwise.contract import StepInvocation, StepResult
from stackwise.runner import CancelToken, run_step

if TYPE_CHECKING:
    from stackwise.authoring.step import Resources


#: How long an idle worker thread waits for the next attempt before it ends.
IDLE_S = 30.0

_Job = Callable[[], None]


class _WorkerPool:
    """Daemon threads fed by a queue, grown on demand: a submitted job goes to an idle thread
    if there is one, else to a new thread. `idle` counts the threads waiting for work that no
    submitter has claimed yet; a submitter claims one (idle -= 1) before queueing its job, so
    every queued job has a waiting thread and never waits behind a busy one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._idle = 0

    def submit(self, job: _Job, name: str) -> None:
        with self._lock:
            claimed = self._idle > 0
            if claimed:
                self._idle -= 1
        if claimed:
            self._jobs.put(job)
        else:
            threading.Thread(target=self._work, args=(job,), name=name, daemon=True).start()

    def _work(self, job: _Job) -> None:
        while True:
            try:
                contextvars.Context().run(job)  # empty, as on a new thread
            except BaseException:  # an interrupt that landed after the attempt: retire
                return
            next_job = self._next()
            if next_job is None:
                return
            job = next_job

    def _next(self) -> _Job | None:
        with self._lock:
            self._idle += 1
        while True:
            try:
                return self._jobs.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no job is on its way to a waiting thread: leave
                        self._idle -= 1
                        return None
                # every waiting thread is claimed: a job is on its way, wait for it


_pool = _WorkerPool()


def _reset_pool_in_child() -> None:
    """A forked child has none of the parent's threads: start from an empty pool."""
    global _pool
    _pool = _WorkerPool()


os.register_at_fork(after_in_child=_reset_pool_in_child)


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
            threading.current_thread().name = f"stackwise-{invocation.step}"
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
            _forget_mlflow_thread_state()
            on_done(handle)

        _pool.submit(work, name=f"stackwise-{invocation.step}")
        return handle


def _forget_mlflow_thread_state() -> None:
    """A run the step started and did not end must not become the active run of the next
    attempt this thread runs (each attempt once had a thread of its own)."""
    fluent = sys.modules.get("mlflow.tracking.fluent")
    for name, empty in (("_active_run_stack", list), ("_last_active_run_id", lambda: None)):
        variable = getattr(fluent, name, None)
        if variable is not None and hasattr(variable, "set"):
            variable.set(empty())


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
