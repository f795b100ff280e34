"""The scheduling loop of the embedded orchestrator: start ready steps (bounded parallelism),
skip cached ones, enforce timeouts, retry with backoff, propagate failures downstream, and on
Ctrl-C stop everything that runs. One thread (the caller's) owns all state; step attempts
report back through a queue.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from stackwise.artifacts.hashing import cache_key, stable_json, step_code_hash
from stackwise.artifacts.store import ArtifactRef, ArtifactStore
from stackwise.authoring.pipeline import Pipeline
from stackwise.compute.base import ComputeBackend, StepHandle
from stackwise.errors import StepCancelledError, StepTimeoutError
from stackwise.orchestrators.local.state import RunRecord, StateStore, StepRecord
from stackwise.runner import StepInvocation, StepResult, TrackingTarget

#: How long a cancelled or timed-out attempt may take to stop before it is abandoned.
STOP_GRACE_S = 5.0


@dataclasses.dataclass(frozen=True)
class StepEvent:
    """What the progress display and `--json` consumers see, in order, from the main thread."""

    run_id: str
    step: str
    status: str  # RUNNING, RETRYING, SUCCEEDED, FAILED, SKIPPED, KILLED
    attempt: int
    cached: bool = False
    duration_s: float | None = None
    error: str | None = None


EventSink = Callable[[StepEvent], None]


@dataclasses.dataclass
class _Attempt:
    handle: StepHandle
    started: float
    deadline: float | None
    stop_requested_at: float | None = None
    stop_reason: type[BaseException] | None = None


class Executor:
    def __init__(
        self,
        *,
        pipeline: Pipeline,
        run: RunRecord,
        state: StateStore,
        store: ArtifactStore,
        backends: dict[str, ComputeBackend],
        default_compute: str,
        tracking: TrackingTarget | None,
        on_event: EventSink,
        record_cached: Callable[[StepRecord, str | None], str | None],
        cancel: threading.Event | None = None,
    ) -> None:
        self.cancel = cancel
        #: An attempt was given up on while it may still run: its MLflow run needs closing.
        self.abandoned = False
        self.pipeline = pipeline
        self.run = run
        self.state = state
        self.store = store
        self.backends = backends
        self.default_compute = default_compute
        self.tracking = tracking
        self.on_event = on_event
        self.record_cached = record_cached
        self.max_parallel = int(run.options.get("max_parallel", 4))
        self.use_cache = bool(run.options.get("use_cache", True))
        self.records = run.steps
        self.running: dict[str, _Attempt] = {}
        self.not_before: dict[str, float] = {}
        self.tries: dict[str, int] = {}  # attempts made in this execution (resume resets)
        self.done: queue.Queue[StepHandle] = queue.Queue()

    # -- the loop -----------------------------------------------------------------------------
    def execute(self) -> None:
        try:
            while True:
                cancelled = self.cancel is not None and self.cancel.is_set()
                if cancelled and (self.running or self._startable_later()):
                    raise StepCancelledError("the run was cancelled")
                if not cancelled:
                    self._start_ready()
                if not self.running and not self._startable_later():
                    break
                self._wait()
        except BaseException:
            self._stop_all(StepCancelledError)
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
        now = time.monotonic()
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
            if len(self.running) >= self.max_parallel:
                return
            self._start(name)

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
    def _start(self, name: str) -> None:
        node = self.pipeline.nodes[name]
        options = node.definition.options
        record = self.records[name]
        inputs = {
            input_name: self.records[b.step or ""].outputs[b.output or ""]
            for input_name, b in node.bindings.items()
            if b.kind == "output"
        }
        key = self._cache_key(name, inputs) if options.cache else None
        record.cache_key = key
        if key and self.use_cache and self._try_cache(record, key):
            return
        record.attempt += 1
        self.tries[name] = self.tries.get(name, 0) + 1
        record.status, record.error, record.started_at = "RUNNING", None, time.time()
        self.state.update_step(
            self.run.run_id, name, status="RUNNING", attempt=record.attempt,
            started_at=record.started_at, error=None, cache_key=key,
        )  # fmt: skip
        compute = options.compute or self.default_compute
        invocation = StepInvocation(
            pipeline_ref=self.run.pipeline_ref,
            step=name,
            run_id=self.run.run_id,
            attempt=record.attempt,
            params=self.run.params,
            interval=self.run.interval,
            inputs=inputs,
            artifact_root=self.run.artifact_root,
            tracking=self.tracking,
            orchestrator=self.run.orchestrator,
            compute=compute,
            cache_key=key,
        )
        handle = self.backends[compute].submit(invocation, self.done.put)
        now = time.monotonic()
        self.running[name] = _Attempt(
            handle, now, now + options.timeout_s if options.timeout_s else None
        )
        self.on_event(StepEvent(self.run.run_id, name, "RUNNING", record.attempt))

    def _cache_key(self, name: str, inputs: dict[str, dict[str, Any]]) -> str:
        node = self.pipeline.nodes[name]
        values: dict[str, str] = {k: v["digest"] for k, v in inputs.items()}
        for input_name, b in node.bindings.items():
            if b.kind == "param":
                values[input_name] = stable_json(self.run.params.get(b.param or ""))
            elif b.kind == "const":
                values[input_name] = stable_json(b.value)
        if node.definition.context_param:  # the step can read every parameter
            values["__params__"] = stable_json(self.run.params)
        return cache_key(
            step_code_hash(node.definition.fn),
            node.definition.options.to_dict(),
            values,
            self.run.interval,
        )

    def _try_cache(self, record: StepRecord, key: str) -> bool:
        hit = self.state.cache_lookup(key)
        if hit is None:
            return False
        if not all(self.store.exists(ArtifactRef.from_dict(o)) for o in hit.outputs.values()):
            return False
        now = time.time()
        record.status, record.cached, record.outputs = "SUCCEEDED", True, hit.outputs
        record.metrics = hit.metrics
        record.started_at = record.ended_at = now
        record.duration_s = 0.0
        record.error = None
        record.mlflow_run_id = self.record_cached(record, hit.mlflow_run_id)
        self.state.finish_step(self.run.run_id, record, self.pipeline.name, cache=False)
        self.on_event(
            StepEvent(self.run.run_id, record.name, "SUCCEEDED", record.attempt, True, 0.0)
        )
        return True

    # -- finishing ----------------------------------------------------------------------------
    def _finished(self, handle: StepHandle) -> None:
        name = next((n for n, a in self.running.items() if a.handle is handle), None)
        if name is None:
            return  # an attempt abandoned after its stop grace ran out
        attempt = self.running.pop(name)
        result = handle.result()
        if attempt.stop_reason is StepTimeoutError and result.status != "SUCCEEDED":
            timeout = self.pipeline.nodes[name].definition.options.timeout_s
            result = result.model_copy(
                update={"status": "FAILED", "error": f"timed out after {timeout:g}s",
                        "error_type": "StepTimeoutError"}
            )  # fmt: skip
        self._record_result(name, result)

    def _record_result(self, name: str, result: StepResult) -> None:
        record = self.records[name]
        record.ended_at = time.time()
        record.duration_s = result.duration_s
        record.mlflow_run_id = result.mlflow_run_id
        record.error = result.error
        retries = self.pipeline.nodes[name].definition.options.retries
        record.metrics = result.metrics
        if result.status == "SUCCEEDED":
            record.status, record.outputs = "SUCCEEDED", result.outputs
        elif result.status == "FAILED" and self.tries.get(name, 0) <= retries.count:
            delay = retries.delay_before(self.tries[name] + 1)
            record.status = "PENDING"
            self.not_before[name] = time.monotonic() + delay
            self.state.update_step(
                self.run.run_id, name, status="PENDING", error=result.error,
                mlflow_run_id=result.mlflow_run_id, duration_s=result.duration_s,
            )  # fmt: skip
            self.on_event(
                StepEvent(self.run.run_id, name, "RETRYING", record.attempt,
                          duration_s=result.duration_s, error=result.error)
            )  # fmt: skip
            return
        else:
            record.status = result.status
        self.state.finish_step(self.run.run_id, record, self.pipeline.name, cache=True)
        self.on_event(
            StepEvent(self.run.run_id, name, record.status, record.attempt,
                      duration_s=result.duration_s, error=result.error)
        )  # fmt: skip

    def _skip(self, name: str) -> None:
        record = self.records[name]
        record.status, record.error = "SKIPPED", "an upstream step did not succeed"
        self.state.update_step(self.run.run_id, name, status="SKIPPED", error=record.error)
        self.on_event(StepEvent(self.run.run_id, name, "SKIPPED", record.attempt))

    # -- timeouts and cancellation ------------------------------------------------------------
    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for name, attempt in list(self.running.items()):
            if attempt.deadline and now >= attempt.deadline and attempt.stop_reason is None:
                attempt.stop_reason, attempt.stop_requested_at = StepTimeoutError, now
                attempt.handle.cancel(StepTimeoutError)
            elif attempt.stop_requested_at and now >= attempt.stop_requested_at + STOP_GRACE_S:
                # It ignores the stop (blocked in native code): abandon it, record the failure.
                self.running.pop(name)
                self.abandoned = True
                timeout = self.pipeline.nodes[name].definition.options.timeout_s
                self._record_result(
                    name,
                    StepResult(
                        step=name, status="FAILED", duration_s=now - attempt.started,
                        error=f"timed out after {timeout:g}s and did not stop; abandoned",
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

    def _record_killed(self, name: str, result: StepResult) -> None:
        record = self.records[name]
        record.status = "KILLED" if result.status != "SUCCEEDED" else "SUCCEEDED"
        record.error = result.error
        record.outputs = result.outputs
        record.mlflow_run_id = result.mlflow_run_id or record.mlflow_run_id
        record.ended_at, record.duration_s = time.time(), result.duration_s
        self.state.finish_step(self.run.run_id, record, self.pipeline.name, cache=True)
        self.on_event(
            StepEvent(self.run.run_id, name, record.status, record.attempt, error=result.error)
        )
