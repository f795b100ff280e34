"""THE step runner: one `StepInvocation` in, one `StepResult` out.

Every orchestrator and compute backend runs steps only through `run_step` (in process) or
`python -m stackwise.runner` (in a fresh process). It loads the pipeline by reference, reads the
inputs from the artifact store, calls the function, writes the outputs and records the attempt
in MLflow as a child run of the pipeline run. Everything it needs is in the invocation, which
is plain JSON: no live objects cross a process boundary.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import os
import sys
import threading
import time
import traceback
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from stackwise.artifacts.store import ArtifactRef, ArtifactStore
from stackwise.authoring.context import DatasetRecord, Interval, StepContext, UndeclaredParams
from stackwise.authoring.context import reset_context as _reset_context
from stackwise.authoring.context import set_context as _set_context
from stackwise.errors import StackwiseError, StepCancelledError, StepTimeoutError

StepStatus = Literal["SUCCEEDED", "FAILED", "KILLED"]


class TrackingTarget(BaseModel):
    uri: str
    experiment_id: str
    parent_run_id: str
    tags: dict[str, str] = Field(default_factory=dict)
    manifest_digest: str | None = None
    manifest_artifact: str | None = None


class StepInvocation(BaseModel):
    pipeline_ref: str
    step: str
    run_id: str
    attempt: int = 1
    params: dict[str, Any] = Field(default_factory=dict)
    interval: dict[str, str] | None = None
    inputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    artifact_root: str
    tracking: TrackingTarget | None = None
    orchestrator: str = "local"
    compute: str = "local"
    cache_key: str | None = None


class StepResult(BaseModel):
    step: str
    status: StepStatus
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)  # last value of each logged metric
    mlflow_run_id: str | None = None
    duration_s: float = 0.0
    error: str | None = None
    error_type: str | None = None


class _Interrupt(BaseException):
    """Injected into a running step. A BaseException, like KeyboardInterrupt, so that a
    step's own `except Exception:` cannot swallow its timeout or cancellation."""


class _TimeoutInterrupt(_Interrupt):
    pass


class _CancelInterrupt(_Interrupt):
    pass


def _interrupt_for(reason: type[BaseException]) -> type[_Interrupt]:
    return _TimeoutInterrupt if issubclass(reason, StepTimeoutError) else _CancelInterrupt


class CancelToken:
    """Lets another thread stop a step running in this process. The exception is injected
    only while user code runs, never inside the runner's own bookkeeping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self.requested: type[BaseException] | None = None
        #: The attempt's MLflow run, known as soon as it exists, so that an attempt abandoned
        #: mid-way still links to its run.
        self.mlflow_run_id: str | None = None

    def enter(self) -> None:
        with self._lock:
            if self.requested is not None:
                raise _interrupt_for(self.requested)()
            self._thread_id = threading.get_ident()

    @property
    def in_user_code(self) -> bool:
        return self._thread_id is not None

    def leave(self) -> None:
        with self._lock:
            self._thread_id = None

    def cancel(self, exc_type: type[BaseException] = StepCancelledError) -> None:
        with self._lock:
            if self.requested is not None:
                return
            self.requested = exc_type
            if self._thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread_id), ctypes.py_object(_interrupt_for(exc_type))
                )


_stores: dict[str, ArtifactStore] = {}


def _store(root: str) -> ArtifactStore:
    store = _stores.get(root)
    if store is None:
        store = _stores[root] = ArtifactStore(root)
    return store


def run_step(inv: StepInvocation, cancel: CancelToken | None = None) -> StepResult:
    """Run one attempt of one step. Never raises for a failure of the step itself: the result
    says FAILED or KILLED, and the MLflow run is closed with the same status."""
    from stackwise.authoring.loader import load_pipeline

    started = time.perf_counter()
    cancel = cancel or CancelToken()
    run: Any = None
    tracker: Any = None
    ctx: StepContext | None = None
    status: StepStatus = "FAILED"
    outputs: dict[str, dict[str, Any]] = {}
    error: str | None = None
    error_type: str | None = None
    call_params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    try:
        pipeline = load_pipeline(inv.pipeline_ref)
        node = pipeline.nodes[inv.step]
        definition = node.definition
        store = _store(inv.artifact_root)
        kwargs: dict[str, Any] = {}
        datasets: list[DatasetRecord] = []
        for name, binding in node.bindings.items():
            if binding.kind == "output":
                ref = ArtifactRef.from_dict(inv.inputs[name])
                kwargs[name] = store.get(ref)
                if ref.serializer in ("parquet", "npy"):
                    datasets.append(
                        DatasetRecord(
                            name=f"{binding.step}.{binding.output}",
                            digest=ref.digest[:16],
                            source=ref.uri,
                            source_type="stackwise-artifact",
                            context="input",
                        )
                    )
            elif binding.kind == "param":
                kwargs[name] = call_params[name] = inv.params[binding.param or name]
            else:
                kwargs[name] = call_params[name] = binding.value
        interval = Interval.from_dict(inv.interval) if inv.interval else None
        ctx = StepContext(
            pipeline=pipeline.name,
            step=inv.step,
            run_id=inv.run_id,
            attempt=inv.attempt,
            params=dict(inv.params) if definition.context_param else UndeclaredParams(inv.step),
            interval=interval,
        )
        ctx.datasets.extend(datasets)
        if definition.context_param:
            kwargs[definition.context_param] = ctx
        if inv.tracking is not None:
            from stackwise.tracking.mlflow_tracker import tracker_for

            tracker = tracker_for(inv.tracking.uri)
            tracker.activate()
            env_tags, own_manifest = _manifest_tags(inv, pipeline.source_file)
            run = tracker.start_run(
                inv.tracking.experiment_id,
                inv.step if inv.attempt == 1 else f"{inv.step} (attempt {inv.attempt})",
                {**_step_tags(inv, pipeline.version), **env_tags},
                parent_run_id=inv.tracking.parent_run_id,
            )
            ctx.mlflow_run_id = cancel.mlflow_run_id = run.info.run_id
            if own_manifest is not None:
                tracker.log_json(run.info.run_id, own_manifest, "stackwise/environment.json")
                ctx.tags["stackwise.environment"] = (
                    f"runs:/{run.info.run_id}/stackwise/environment.json"
                )
            tracked_run_id = run.info.run_id
            ctx.flush = lambda metrics: tracker.log(tracked_run_id, metrics=metrics)
        value = _call(definition.fn, kwargs, ctx, run, cancel)
        if cancel.requested is not None:  # the step swallowed its interrupt: it still ends
            raise _interrupt_for(cancel.requested)()
        for out_name, out_value in _split_outputs(definition, value).items():
            outputs[out_name] = store.put(out_value).to_dict()
        status = "SUCCEEDED"
    except _TimeoutInterrupt:
        status, error_type = "FAILED", "StepTimeoutError"
        error = StepTimeoutError().message
    except _CancelInterrupt:
        status, error, error_type = "KILLED", StepCancelledError().message, "StepCancelledError"
    except StepCancelledError as exc:
        status, error, error_type = "KILLED", exc.message, "StepCancelledError"
    except KeyboardInterrupt:
        status, error, error_type = "KILLED", "interrupted", "KeyboardInterrupt"
    except StepTimeoutError as exc:
        status, error, error_type = "FAILED", exc.message, "StepTimeoutError"
    except StackwiseError as exc:
        status, error, error_type = "FAILED", exc.message, type(exc).__name__
    except Exception as exc:
        status, error_type = "FAILED", type(exc).__name__
        error = f"{type(exc).__name__}: {exc}\n{_user_traceback(exc)}"
    finally:
        if ctx is not None:
            metrics = ctx.last_metrics
        if run is not None and tracker is not None and ctx is not None:
            try:
                _finish_tracking(
                    tracker, run.info.run_id, ctx, inv.params, call_params, outputs, status, error
                )
            except Exception as exc:  # e.g. a metric name MLflow rejects
                status, error_type = "FAILED", "TrackingError"
                error = f"recording the step in MLflow failed: {type(exc).__name__}: {exc}"
    if error:  # results are stored and printed: no secret in them either
        from stackwise.tracking.redaction import redact_text, secrets_for_run

        error = redact_text(error, secrets_for_run(inv.params))
    return StepResult(
        step=inv.step,
        status=status,
        outputs=outputs,
        metrics=metrics,
        mlflow_run_id=run.info.run_id if run is not None else None,
        duration_s=round(time.perf_counter() - started, 6),
        error=error,
        error_type=error_type,
    )


def _call(fn: Any, kwargs: dict[str, Any], ctx: StepContext, run: Any, cancel: CancelToken) -> Any:
    token = _set_context(ctx)
    try:
        if run is not None:
            from stackwise.tracking.mlflow_tracker import ActiveRun

            with ActiveRun(run):
                return _guarded(fn, kwargs, cancel)
        return _guarded(fn, kwargs, cancel)
    finally:
        _reset_context(token)


def _guarded(fn: Any, kwargs: dict[str, Any], cancel: CancelToken) -> Any:
    cancel.enter()
    try:
        return fn(**kwargs)
    finally:
        cancel.leave()


def _split_outputs(definition: Any, value: Any) -> dict[str, Any]:
    outputs = definition.outputs
    if not outputs:
        return {}
    if definition.multi_output:
        names = [o.name for o in outputs]
        if isinstance(value, dict) and set(value) == set(names):
            return {n: value[n] for n in names}
        if isinstance(value, tuple) and len(value) == len(names):
            return dict(zip(names, value, strict=True))
        raise StackwiseError(
            f"step {definition.name!r} must return its outputs {names} (the NamedTuple it "
            f"declares), but returned a {type(value).__name__}."
        )
    expected = outputs[0].annotation
    checkable = (
        isinstance(expected, type)
        and expected not in (object, Any)
        and typing.get_origin(expected) is None
    )
    int_for_float = expected is float and isinstance(value, int)
    if checkable and not int_for_float and not isinstance(value, expected):
        raise StackwiseError(
            f"step {definition.name!r} is annotated to return {expected.__name__} but "
            f"returned a {type(value).__name__}; fix the return value or the annotation."
        )
    return {outputs[0].name: value}


def _step_tags(inv: StepInvocation, version: str) -> dict[str, str]:
    assert inv.tracking is not None
    tags = dict(inv.tracking.tags)
    tags.update(
        {
            "stackwise.step": inv.step,
            "stackwise.attempt": str(inv.attempt),
            "stackwise.compute": inv.compute,
            "stackwise.pipeline_version": version,
        }
    )
    for name, ref in inv.inputs.items():
        tags[f"stackwise.input.{name}"] = ref["uri"]
    return tags


def _manifest_tags(
    inv: StepInvocation, source_file: str | None
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Every run carries its environment manifest. When this process's environment is the one
    the parent run recorded (same digest), the child points at the parent's copy; a different
    process (another image, host or compute backend) logs its own, so nothing is assumed."""
    from stackwise.tracking.manifest import cached_manifest

    assert inv.tracking is not None
    image = os.environ.get("STACKWISE_IMAGE")  # set by container-based backends
    manifest, digest = cached_manifest(
        str(Path(source_file).parent) if source_file else os.getcwd(),
        inv.orchestrator,
        inv.compute,
        image,
    )
    tags = {"stackwise.environment.digest": digest}
    if digest == inv.tracking.manifest_digest and inv.tracking.manifest_artifact:
        tags["stackwise.environment"] = inv.tracking.manifest_artifact
        return tags, None
    return tags, manifest


def _finish_tracking(
    tracker: Any,
    run_id: str,
    ctx: StepContext,
    run_params: dict[str, Any],
    call_params: dict[str, Any],
    outputs: dict[str, dict[str, Any]],
    status: StepStatus,
    error: str | None,
) -> None:
    from stackwise.tracking.redaction import redact_params, redact_text, secrets_for_run

    secrets = secrets_for_run(run_params)
    tags = {k: redact_text(v, secrets) for k, v in ctx.tags.items()}
    tags.update(output_tags(outputs))
    tags["stackwise.status"] = status
    if error:
        tags["stackwise.error"] = redact_text(error, secrets)[-4000:]
    datasets = [
        dataclasses.replace(
            d, name=redact_text(d.name, secrets), source=redact_text(d.source, secrets)
        )
        for d in ctx.datasets
    ]
    final = "FINISHED" if status == "SUCCEEDED" else status
    try:
        tracker.log(
            run_id,
            params=redact_params(call_params, secrets),
            metrics=ctx.metrics,
            tags=tags,
        )
        ctx.metrics = []
        if datasets:
            tracker.log_datasets(run_id, datasets)
    except BaseException:
        final = "FAILED"  # the MLflow run says what stackwise reports: the step failed
        raise
    finally:
        tracker.end_run(run_id, final)


def output_tags(outputs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Where each output of a step run lives and its digest: what lineage follows. Shared by
    executed and cached step runs, so both read the same."""
    tags: dict[str, str] = {}
    for name, ref in outputs.items():
        tags[f"stackwise.output.{name}"] = ref["uri"]
        tags[f"stackwise.output.{name}.digest"] = ref["digest"]
    return tags


#: The process exit code for a step or run status (the CLI and `python -m stackwise.runner`).
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "KILLED": 130}


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the step function down, without the runner's own frames."""
    frames = traceback.extract_tb(exc.__traceback__)
    here = os.path.abspath(__file__)
    kept = [f for f in frames if os.path.abspath(f.filename) != here]
    return "".join(traceback.format_list(kept[-8:]))


def main(argv: list[str] | None = None) -> int:
    """`python -m stackwise.runner --invocation FILE [--result FILE]`: run one step in this
    (fresh) process. Exit 0 on success, 1 on failure, 130 when cancelled."""
    import signal

    parser = argparse.ArgumentParser(prog="python -m stackwise.runner", description=main.__doc__)
    parser.add_argument("--invocation", required=True, help="StepInvocation JSON file, or -")
    parser.add_argument("--result", help="where to write the StepResult JSON (default stdout)")
    args = parser.parse_args(argv)
    raw = sys.stdin.read() if args.invocation == "-" else Path(args.invocation).read_text()
    inv = StepInvocation.model_validate_json(raw)

    token = CancelToken()

    def on_signal(signum: int, _frame: object) -> None:
        # Handlers run in the main thread, which is the one running the step here: raise
        # directly while user code runs; during the runner's own bookkeeping just remember.
        exc_type = StepTimeoutError if signum == signal.SIGUSR1 else StepCancelledError
        token.requested = token.requested or exc_type
        if token.in_user_code:
            raise _interrupt_for(exc_type)()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    result = run_step(inv, token)
    payload = result.model_dump_json()
    if args.result:
        tmp = Path(args.result + ".tmp")
        tmp.write_text(payload)
        os.replace(tmp, args.result)
    else:
        print(payload)
    return EXIT_CODES[result.status]


if __name__ == "__main__":
    sys.exit(main())
