"""The scheduling loop of the embedded orchestrator: start ready steps (bounded parallelism),
enforce timeouts (counted from the moment an attempt runs), retry with backoff, propagate
failures downstream, and on Ctrl-C stop everything that runs. One thread (the caller's) owns
all state; step attempts report back through a queue. Caching is the runner's: a cache hit
comes back as a result marked `cached`.

State-store writes of one turn of the loop go in one transaction: the outcomes of the steps
that finished (and skips, retries) together with the RUNNING of the steps they release,
written before those are submitted; the events of the outcomes follow that commit. A kill
before the commit leaves the finished steps RUNNING in the store: a resume reruns them (a
cache hit when the runner recorded one), as a kill just before their own commit always did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from stackwise.artifacts.hashing import sha256_bytes, stable_json
from stackwise.authoring.codehash import step_code_hash
from stackwise.authoring.pipeline import Pipeline
from stackwise.compute.base import ComputeBackend, StepHandle
from stackwise.contract import StepInvocation, StepResult
from stackwise.errors import StepCancelledError, StepTimeoutError
from stackwise.orchestrators.base import EventSink, RunRecord, StepEvent
from stackwise.orchestrators.local.shield import shielded
from stackwise.orchestrators.local.state import StateStore

#: How long a cancelled or timed-out attempt may take to stop before it is abandoned.
STOP_GRACE_S = 5.0

#: Builds the invocation of attempt `attempt` of a step from the artifacts of its inputs.
InvocationFor = Callable[[str, int], StepInvocation]


@dataclasses.dataclass
class _Attempt:
    handle: StepHandle
    timeout_s: float | None
    deadline: float | None = None
    stop_requested_at: float | None = None
    stop_reason: type[BaseException] | None = None


class Executor:
    def __init__(
        self,
        *,
        pipeline: Pipeline,
        run: RunRecord,
        state: StateStore,
        backends: dict[str, ComputeBackend],
        invocation_for: InvocationFor,
        on_event: EventSink,
        cancel: threading.Event | None = None,
    ) -> None:
        self.cancel = cancel
        #: An attempt was given up on while it may still run: its MLflow run needs closing.
        self.abandoned = False
        self.pipeline = pipeline
        self.run = run
        self.state = state
        self.backends = backends
        self.invocation_for = invocation_for
        self.on_event = on_event
        self.max_parallel = int(run.options.get("max_parallel", 4))
        self.records = run.steps
        self.running: dict[str, _Attempt] = {}
        self.not_before: dict[str, float] = {}
        self.tries: dict[str, int] = {}  # attempts made in this execution (resume resets)
        self.done: queue.SimpleQueue[StepHandle] = queue.SimpleQueue()
        #: Step rows to write in the next transaction, and the events to emit after it.
        self._writes: list[tuple[str, dict[str, Any]]] = []
        self._events: list[StepEvent] = []

    # -- the loop -----------------------------------------------------------------------------
    def execute(self) -> None:
        """Run the steps to the end. In an untracked run, the runner's cache entries commit
        with their steps' outcomes (`StateStore.defer_cache`): one transaction per step fewer
        on the hot path (a kill in between loses the entry with the outcome; the resume
        reruns the step). A tracked step's entry keeps its own commit right after its outputs,
        before the MLflow run is closed."""
        deferred = not self.run.options.get("tracking", True)
        if deferred:
            self.state.defer_cache(self.run.run_id)
        try:
            self._loop()
        finally:
            if deferred:
                with shielded(), contextlib.suppress(Exception):  # the error raised wins
                    self.state.undefer_cache(self.run.run_id)

    def _loop(self) -> None:
        try:
            while True:
                cancelled = self.cancel is not None and self.cancel.is_set()
                if cancelled and (self.running or self._startable_later()):
                    raise StepCancelledError("the run was cancelled")
                if not cancelled:
                    self._start_ready()
                self._flush()
                if not self.running and not self._startable_later():
                    break
                self._wait()
        except BaseException:
            with shielded():  # a second Ctrl-C must not leave a step recorded RUNNING
                # A store that refuses this write (locked, gone) must neither stop the running
                # steps from being cancelled nor replace the error being raised; a row it
                # leaves RUNNING names this process, so the next start sees it stale.
                with contextlib.suppress(Exception):
                    self._flush()
                self._stop_all(StepCancelledError)
                self._kill_unsubmitted()
            raise

    def _startable_later(self) -> bool:
        return any(
            self.records[n].status == "PENDING" and self._ready(n) for n in self.pipeline.order
        )

    def _ready(self, name: str) -> bool:
        return all(
            self.records[u].status == "SUCCEEDED" for u in self.pipeline.nodes[name].upstream
        )

    def _start_ready(self) -> None:
        """Start what is ready: their RUNNING rows join the pending writes (the outcomes
        that released them), one commit, then the submits."""
        now = time.monotonic()
        starting: list[tuple[str, StepInvocation]] = []
        for name in self.pipeline.order:
            record = self.records[name]
            if record.status != "PENDING" or name in self.running:
                continue
            upstream = self.pipeline.nodes[name].upstream
            if any(self.records[u].status in ("FAILED", "SKIPPED", "KILLED") for u in upstream):
                self._skip(name)
                continue
            if not self._ready(name) or self.not_before.get(name, 0.0) > now:
                continue
            if len(self.running) + len(starting) >= self.max_parallel:
                break
            starting.append((name, self._prepare(name)))
        self._flush()
        for name, invocation in starting:
            self._submit(name, invocation)

    def _write(self, name: str, fields: dict[str, Any]) -> None:
        self._writes.append((name, self.state.step_fields(fields)))

    def _flush(self) -> None:
        """Commit the pending step rows in one transaction, then emit their events."""
        writes, self._writes = self._writes, []
        if writes:
            self.state.write_steps(self.run.run_id, writes)
        events, self._events = self._events, []
        for event in events:
            self.on_event(event)

    def _wait(self) -> None:
        now = time.monotonic()
        wake = [now + (0.1 if self.cancel is not None else 0.5)]
        wake += [a.deadline for a in self.running.values() if a.deadline and not a.stop_reason]
        wake += [
            a.stop_requested_at + STOP_GRACE_S for a in self.running.values() if a.stop_requested_at
        ]
        wake += [t for n, t in self.not_before.items() if self.records[n].status == "PENDING"]
        timeout = max(0.0, min(wake) - now)
        try:
            handle = self.done.get(timeout=timeout)
            self._finished(handle)
            while True:  # drain whatever else finished meanwhile
                self._finished(self.done.get_nowait())
        except queue.Empty:
            pass
        self._enforce_deadlines()

    # -- starting -----------------------------------------------------------------------------
    def _prepare(self, name: str) -> StepInvocation:
        """The next attempt's invocation; the step is RUNNING from here (written with the
        next flush, before it is submitted)."""
        record = self.records[name]
        record.attempt += 1
        self.tries[name] = self.tries.get(name, 0) + 1
        invocation = self.invocation_for(name, record.attempt)
        record.status, record.error, record.started_at = "RUNNING", None, time.time()
        record.cached, record.worker = False, None
        self._write(name, {"status": "RUNNING", "attempt": record.attempt,
                           "started_at": record.started_at, "error": None, "cached": False,
                           "worker": None})  # fmt: skip
        return invocation

    def _submit(self, name: str, invocation: StepInvocation) -> None:
        record = self.records[name]
        try:
            handle = self.backends[invocation.compute].submit(
                invocation, resources=invocation.resources, image=invocation.image,
                on_done=self.done.put,
            )  # fmt: skip
        except Exception as exc:  # no process, no file descriptor, no disk: the attempt failed
            self._record_result(name, StepResult(
                step=name, status="FAILED", attempt=record.attempt, error_type="SubmitError",
                error=f"could not start the step on compute {invocation.compute!r}: "
                f"{type(exc).__name__}: {exc}",
            ))  # fmt: skip
            return
        self.running[name] = _Attempt(handle, invocation.timeout_s)
        worker = _worker_token(handle)
        if worker is not None:  # a step process: a resume must wait for it to be gone
            record.worker = worker
            self.state.update_step(self.run.run_id, name, worker=worker)
        self.on_event(StepEvent(self.run.run_id, name, "RUNNING", record.attempt))

    # -- finishing ----------------------------------------------------------------------------
    def _finished(self, handle: StepHandle) -> None:
        name = next((n for n, a in self.running.items() if a.handle is handle), None)
        if name is None:
            return  # an attempt abandoned after its stop grace ran out
        attempt = self.running.pop(name)
        result = handle.result()
        if attempt.stop_reason is StepTimeoutError and result.status != "SUCCEEDED":
            result = result.model_copy(
                update={"status": "FAILED", "error": f"timed out after {attempt.timeout_s:g}s",
                        "error_type": "StepTimeoutError"}
            )  # fmt: skip
        self._record_result(name, result)

    def _record_result(self, name: str, result: StepResult) -> None:
        record = self.records[name]
        record.ended_at = time.time()
        record.duration_s = result.duration_s
        record.mlflow_run_id = result.mlflow_run_id
        record.error = result.error
        record.cached = result.cached
        record.cache_key = result.cache_key
        record.metrics = result.metrics
        retries = self.pipeline.nodes[name].definition.options.retries
        if result.status == "SUCCEEDED":
            record.status, record.outputs = "SUCCEEDED", result.outputs
            record.code_version = step_version(self.pipeline, name)
        elif result.status == "FAILED" and self.tries.get(name, 0) <= retries.count:
            delay = retries.delay_before(self.tries[name] + 1)
            record.status = "PENDING"
            self.not_before[name] = time.monotonic() + delay
            self._write(name, {"status": "PENDING", "error": result.error,
                               "mlflow_run_id": result.mlflow_run_id,
                               "duration_s": result.duration_s, "worker": None})  # fmt: skip
            self._events.append(
                StepEvent(self.run.run_id, name, "RETRYING", record.attempt,
                          duration_s=result.duration_s, error=result.error)
            )  # fmt: skip
            return
        else:
            record.status = result.status
        record.worker = None
        self._writes.append((name, self.state.step_row(record)))
        self._events.append(
            StepEvent(self.run.run_id, name, record.status, record.attempt, record.cached,
                      duration_s=result.duration_s, error=result.error)
        )  # fmt: skip

    def _skip(self, name: str) -> None:
        record = self.records[name]
        record.status, record.error = "SKIPPED", "an upstream step did not succeed"
        self._write(name, {"status": "SKIPPED", "error": record.error})
        self._events.append(StepEvent(self.run.run_id, name, "SKIPPED", record.attempt))

    # -- timeouts and cancellation ------------------------------------------------------------
    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for name, attempt in list(self.running.items()):
            if attempt.deadline is None and attempt.timeout_s:
                since = attempt.handle.running_since  # queueing never counts against it
                if since is not None:
                    attempt.deadline = since + attempt.timeout_s
            if attempt.deadline and now >= attempt.deadline and attempt.stop_reason is None:
                attempt.stop_reason, attempt.stop_requested_at = StepTimeoutError, now
                attempt.handle.cancel(StepTimeoutError)
            elif attempt.stop_requested_at and now >= attempt.stop_requested_at + STOP_GRACE_S:
                # It ignores the stop (blocked in native code): abandon it, record the failure.
                self.running.pop(name)
                self.abandoned = True
                since = attempt.handle.running_since or attempt.stop_requested_at
                self._record_result(
                    name,
                    StepResult(
                        step=name, status="FAILED", duration_s=now - since,
                        error=f"timed out after {attempt.timeout_s or 0:g}s and did not stop; "
                        "abandoned",
                        error_type="StepTimeoutError",
                        mlflow_run_id=attempt.handle.mlflow_run_id,
                    ),
                )  # fmt: skip

    def _stop_all(self, reason: type[BaseException]) -> None:
        """Cancel every running attempt and wait (bounded) for them to report back."""
        self.abandoned = self.abandoned or bool(self.running)
        for attempt in self.running.values():
            attempt.handle.cancel(reason)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.running and time.monotonic() < deadline:
            try:
                handle = self.done.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            name = next((n for n, a in self.running.items() if a.handle is handle), None)
            if name is None:
                continue
            self.running.pop(name)
            result = handle.result()
            if result.status == "FAILED" and result.error_type in (
                "StepCancelledError",
                "KeyboardInterrupt",
            ):
                result = result.model_copy(update={"status": "KILLED"})
            self._record_killed(name, result)
        for name, attempt in list(self.running.items()):
            self.running.pop(name)
            result = StepResult(
                step=name,
                status="KILLED",
                error="interrupted; did not stop in time",
                mlflow_run_id=attempt.handle.mlflow_run_id,
            )
            self._record_killed(name, result)

    def _kill_unsubmitted(self) -> None:
        """Steps marked RUNNING for a submit that an interruption prevented: KILLED."""
        for name, record in self.records.items():
            if record.status == "RUNNING" and name not in self.running:
                self._record_killed(name, StepResult(
                    step=name, status="KILLED", error="interrupted before it started",
                ))  # fmt: skip

    def _record_killed(self, name: str, result: StepResult) -> None:
        record = self.records[name]
        record.status = "KILLED" if result.status != "SUCCEEDED" else "SUCCEEDED"
        record.error = result.error
        record.outputs = result.outputs
        record.mlflow_run_id = result.mlflow_run_id or record.mlflow_run_id
        record.ended_at, record.duration_s = time.time(), result.duration_s
        if record.status == "SUCCEEDED":
            record.code_version = step_version(self.pipeline, name)
        self.state.finish_step(self.run.run_id, record)
        self.on_event(
            StepEvent(self.run.run_id, name, record.status, record.attempt, error=result.error)
        )


def step_version(pipeline: Pipeline, name: str) -> str:
    """What a step's result depends on besides its inputs: its code (with its project-local
    modules), options and wiring. A resume reruns a step whose version changed. Kept on the
    (immutable) pipeline with the code hash it was made from, so it is recomputed only when
    that hash changes (after `stackwise.authoring.loader.forget`)."""
    node = pipeline.nodes[name]
    code = step_code_hash(node.definition.fn)
    known: dict[str, tuple[str, str]] = pipeline.__dict__.setdefault("_step_versions", {})
    if name in known and known[name][0] == code:
        return known[name][1]
    payload = {
        "code": code,
        "options": node.definition.options.to_dict(),
        "bindings": {k: b.describe() for k, b in sorted(node.bindings.items())},
    }
    version = sha256_bytes(stable_json(payload).encode())[:16]
    known[name] = (code, version)
    return version


def _worker_token(handle: StepHandle) -> str | None:
    pid = getattr(handle, "pid", None)
    if pid is None:
        return None
    import socket

    from stackwise.processes import ProcessIdentity, start_token

    return ProcessIdentity(socket.gethostname(), int(pid), start_token(int(pid))).token
