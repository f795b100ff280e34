"""THE step runner: one `StepInvocation` in, one `StepResult` out (see `stackwise.contract`).

Every orchestrator and compute backend runs steps only through `run_step` (in process) or
`python -m stackwise.runner --invocation FILE` (in a fresh process, on any host). The runner
loads the pipeline by its portable reference (fetching the code bundle when there is one),
resolves the inputs through the artifact store, checks the step cache, calls the function
(capturing what it prints), writes the outputs, records the attempt in MLflow as a child of
the pipeline run (finding or creating that parent), records the cache entry and the run
index, and returns the result. It imports no orchestrator, scheduler, CLI or state store.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from stackwise.artifacts.store import ArtifactRef, ArtifactStore
from stackwise.authoring.context import StepContext, UndeclaredParams
from stackwise.authoring.context import reset_context as _reset_context
from stackwise.authoring.context import set_context as _set_context
from stackwise.authoring.pipeline import Pipeline
from stackwise.caching import CacheEntry, CacheStore, open_cache, step_cache_key, usable
from stackwise.cancellation import CancelInterrupt, CancelToken, TimeoutInterrupt, interrupt_for
from stackwise.contract import (
    InputRef,
    RunClose,
    StepInvocation,
    StepResult,
    StepStatus,
    TrackingTarget,
    parse_invocation,
    parse_run_close,
)
from stackwise.distribution import Distribution, join_peers
from stackwise.errors import (
    ArtifactError,
    BundleError,
    ConfigError,
    InvocationError,
    ParameterError,
    PipelineError,
    StackwiseError,
    StepCancelledError,
    StepTimeoutError,
)
from stackwise.step_io import bind, resolve_inputs, split_outputs, write_index

__all__ = [
    "EXIT_CODES",
    "CancelToken",
    "InputRef",
    "RunClose",
    "StepInvocation",
    "StepResult",
    "TrackingTarget",
    "close_run",
    "main",
    "run_step",
]

#: The process exit code for a step or run status (the CLI and `python -m stackwise.runner`).
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "KILLED": 130}


_stores: dict[str, ArtifactStore] = {}
#: Errors of the invocation itself (not of the step): exit 2, and not worth a retry.
_SETUP_ERRORS = (InvocationError, BundleError, PipelineError, ParameterError, ArtifactError,
                 ConfigError)  # fmt: skip


def _store(root: str) -> ArtifactStore:
    store = _stores.get(root)
    if store is None:
        store = _stores[root] = ArtifactStore(root)
    return store


@dataclasses.dataclass
class _Attempt:
    """What one attempt has gathered so far (read by the `finally` of `run_step`)."""

    status: StepStatus = "FAILED"
    outputs: dict[str, ArtifactRef] = dataclasses.field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    call_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    ctx: StepContext | None = None
    step_run: Any = None  # stackwise.tracking.step_run.StepRun, imported only when tracked
    logs: str = ""
    user_code: bool = False  # the step's function was called
    retryable: bool = True
    cache_key: str | None = None


def run_step(
    inv: StepInvocation,
    cancel: CancelToken | None = None,
    cache: CacheStore | None = None,
    dist: Distribution | None = None,
) -> StepResult:
    """Run one attempt of one step. Never raises for a failure of the step itself: the result
    says FAILED or KILLED, and the MLflow run is closed with the same status. `cache`
    overrides the cache store the invocation names (an orchestrator's own, already open);
    `dist` makes this rank 0 of a distributed step (see `stackwise.distribution`)."""
    from stackwise.bundles import load_pipeline_ref

    started = time.perf_counter()
    cancel = cancel or CancelToken()
    a = _Attempt()
    cache_store: CacheStore | None = None
    try:
        pipeline = load_pipeline_ref(inv.pipeline)
        node = pipeline.nodes.get(inv.step)
        if node is None:
            raise InvocationError(
                f"pipeline {pipeline.name!r} has no step {inv.step!r}; its steps are "
                f"{', '.join(pipeline.order)}. Regenerate the invocation from the current code."
            )
        params = pipeline.resolve_params(inv.params)  # typed, defaults filled, unknown refused
        store = _store(inv.artifact_root)
        store.check_protocol()
        inputs = resolve_inputs(inv, store)
        if inv.cache is not None and node.definition.options.cache:
            a.cache_key = step_cache_key(node, inputs, params, inv.interval)
            state = inv.cache.store == "state"
            location = (inv.cache.state_store or "") if state else inv.artifact_root
            cache_store = cache or open_cache(inv.cache.store, location)
            hit = cache_store.lookup(a.cache_key) if inv.cache.read else None
            if hit is not None and usable(hit, store):
                return _cache_hit(inv, hit, a.cache_key, pipeline, store, started)
        kwargs, a.call_params, datasets = bind(node, inputs, params, store)
        definition = node.definition
        a.ctx = ctx = StepContext(
            pipeline=pipeline.name, step=inv.step, run_id=inv.run_id, attempt=inv.attempt,
            params=dict(params) if definition.context_param else UndeclaredParams(inv.step),
            interval=inv.interval, **(dist.who() if dist else {}),
        )  # fmt: skip
        ctx.datasets.extend(datasets)
        ctx.tags.update({str(k): str(v) for k, v in definition.options.tags.items()})
        if definition.context_param:
            kwargs[definition.context_param] = ctx
        if inv.tracking is not None:
            from stackwise.tracking.layout import manifest_folder
            from stackwise.tracking.step_run import StepRun

            a.step_run = StepRun.open(
                inv, ctx, source_folder=manifest_folder(pipeline.source_file),
                version=pipeline.version, inputs=inputs, cache_key=a.cache_key,
            )  # fmt: skip
            cancel.mlflow_run_id = ctx.mlflow_run_id
        from stackwise.tracking.redaction import secrets_for_run

        a.user_code = True
        value = _call(definition.fn, kwargs, ctx, a, cancel, secrets_for_run(inv.params))
        if dist is not None:  # rank 0 of N: the others' metrics and output, or their failure
            a.logs += join_peers(ctx, dist)
        if cancel.requested is not None:  # the step swallowed its interrupt: it still ends
            raise interrupt_for(cancel.requested)()
        for out_name, out_value in split_outputs(definition, value).items():
            a.outputs[out_name] = store.put(out_value)
        if cache_store is not None and a.cache_key:
            # One commit right after the outputs (before MLflow is told): from here on a kill
            # makes the resume a cache hit instead of running the step again.
            cache_store.record(
                CacheEntry(
                    key=a.cache_key, pipeline=pipeline.name, step=inv.step, outputs=a.outputs,
                    metrics=ctx.last_metrics, run_id=inv.run_id,
                    mlflow_run_id=ctx.mlflow_run_id,
                )
            )  # fmt: skip
        a.status = "SUCCEEDED"
    except TimeoutInterrupt:
        a.status, a.error_type, a.error = "FAILED", "StepTimeoutError", StepTimeoutError().message
    except CancelInterrupt:
        a.status, a.error_type = "KILLED", "StepCancelledError"
        a.error = StepCancelledError().message
    except StepCancelledError as exc:
        a.status, a.error, a.error_type = "KILLED", exc.message, "StepCancelledError"
    except KeyboardInterrupt:
        a.status, a.error, a.error_type = "KILLED", "interrupted", "KeyboardInterrupt"
    except StackwiseError as exc:
        a.status, a.error, a.error_type = "FAILED", exc.message, type(exc).__name__
        # Bad input found before the step's code ran: another attempt cannot succeed.
        a.retryable = a.user_code or not isinstance(exc, _SETUP_ERRORS)
    except Exception as exc:
        a.status, a.error_type = "FAILED", type(exc).__name__
        a.error = f"{type(exc).__name__}: {exc}\n{_user_traceback(exc)}"
    finally:
        _finish_tracking(a)
    return _result(inv, a, started)


def _call(
    fn: Any,
    kwargs: dict[str, Any],
    ctx: StepContext,
    a: _Attempt,
    cancel: CancelToken,
    secrets: list[str],
) -> Any:
    from stackwise.capture import capture

    token = _set_context(ctx)
    try:
        with capture(secrets) as buffer:
            try:
                if a.step_run is not None:
                    from stackwise.tracking.mlflow_tracker import ActiveRun

                    with ActiveRun(a.step_run.run):
                        return _guarded(fn, kwargs, cancel)
                return _guarded(fn, kwargs, cancel)
            finally:
                a.logs = buffer.text()
    finally:
        _reset_context(token)


def _guarded(fn: Any, kwargs: dict[str, Any], cancel: CancelToken) -> Any:
    cancel.enter()
    try:
        return fn(**kwargs)
    finally:
        cancel.leave()


def _finish_tracking(a: _Attempt) -> None:
    """Close the step's MLflow run with what the attempt gathered; a value MLflow refuses
    fails the step here, cleanly."""
    if a.step_run is None or a.ctx is None:
        return
    problem = a.step_run.finish(
        a.ctx, call_params=a.call_params, outputs=a.outputs, status=a.status, error=a.error,
        logs=a.logs,
    )  # fmt: skip
    if problem is not None:
        a.status, a.error_type, a.error, a.outputs = "FAILED", "TrackingError", problem, {}


def _cache_hit(
    inv: StepInvocation,
    hit: CacheEntry,
    key: str,
    pipeline: Pipeline,
    store: ArtifactStore,
    started: float,
) -> StepResult:
    """Reuse an earlier result: a cheap cached child run in MLflow, and the run index."""
    from stackwise.tracking.layout import manifest_folder
    from stackwise.tracking.step_run import record_cache_hit

    mlflow_run_id = None
    if inv.tracking is not None:
        mlflow_run_id = record_cache_hit(
            inv, manifest_folder(pipeline.source_file), pipeline.name, hit.outputs,
            hit.mlflow_run_id, key,
        )  # fmt: skip
    result = StepResult(
        step=inv.step, status="SUCCEEDED", attempt=inv.attempt, cached=True, cache_key=key,
        outputs=hit.outputs, metrics=hit.metrics, mlflow_run_id=mlflow_run_id,
        duration_s=round(time.perf_counter() - started, 6),
    )  # fmt: skip
    write_index(store, inv.run_id, result)
    return result


def _result(
    inv: StepInvocation, a: _Attempt, started: float
) -> StepResult:
    from stackwise.tracking.redaction import redact_text, secrets_for_run

    secrets = secrets_for_run(inv.params)
    error = redact_text(a.error, secrets) if a.error else None
    mlflow_run_id = a.step_run.run_id if a.step_run is not None else None
    result = StepResult(
        step=inv.step, status=a.status, attempt=inv.attempt, cache_key=a.cache_key,
        outputs=a.outputs, metrics=a.ctx.last_metrics if a.ctx is not None else {},
        mlflow_run_id=mlflow_run_id, duration_s=round(time.perf_counter() - started, 6),
        error=error, error_type=a.error_type, logs=redact_text(a.logs[-20_000:], secrets),
        retryable=a.retryable,
    )  # fmt: skip
    if result.status == "SUCCEEDED":
        write_index(_store(inv.artifact_root), inv.run_id, result)
    return result


def close_run(spec: RunClose) -> str:
    """Close a pipeline run a foreign orchestrator ran step by step; returns its status."""
    from stackwise.bundles import load_pipeline_ref
    from stackwise.step_io import read_index
    from stackwise.tracking.layout import RunLayout, manifest_folder

    pipeline = load_pipeline_ref(spec.pipeline)
    store = _store(spec.artifact_root)
    done = all(
        (r := read_index(store, spec.run_id, step)) is not None and r.status == "SUCCEEDED"
        for step in pipeline.order
    )
    status = spec.status or ("SUCCEEDED" if done else "FAILED")
    layout = RunLayout.for_target(spec.tracking)
    target = layout.open_parent(
        spec.tracking, spec.run_id, {}, pipeline=pipeline.name,
        source_folder=manifest_folder(pipeline.source_file),
    )  # fmt: skip
    layout.close_parent(target, status, sweep=True)
    return status


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the step function down, without the runner's own frames."""
    frames = traceback.extract_tb(exc.__traceback__)
    here = os.path.abspath(__file__)
    kept = [f for f in frames if os.path.abspath(f.filename) != here]
    return "".join(traceback.format_list(kept[-8:]))


def main(argv: list[str] | None = None) -> int:
    """`python -m stackwise.runner --invocation FILE [--result FILE]`: run one step in this
    (fresh) process (FILE `-` reads standard input). Exit 0 on success, 1 on failure, 130 when
    cancelled, 2 when the invocation is invalid (also when it only shows while loading: an
    unknown step, a bundle that fails its digest, a missing upstream output; the result then
    says `retryable: false`). `--close FILE` closes a pipeline run (a
    `RunClose`) after its last step and prints its status."""
    import signal

    parser = argparse.ArgumentParser(prog="python -m stackwise.runner", description=main.__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--invocation", help="StepInvocation JSON file, or -")
    what.add_argument("--close", help="RunClose JSON file, or -: close a pipeline run")
    parser.add_argument("--result", help="where to write the StepResult JSON (default stdout)")
    args = parser.parse_args(argv)
    source = args.invocation or args.close
    try:
        raw = _read_input(source)
        if args.result:
            _check_writable(Path(args.result))
        if args.close:
            print(close_run(parse_run_close(raw)))
            return 0
        inv = parse_invocation(raw)
    except StackwiseError as exc:
        print(f"{exc.headline}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    token = CancelToken()

    def on_signal(signum: int, _frame: object) -> None:
        # Handlers run in the main thread, which is the one running the step here: raise
        # directly while user code runs; during the runner's own bookkeeping just remember.
        exc_type = StepTimeoutError if signum == signal.SIGUSR1 else StepCancelledError
        token.requested = token.requested or exc_type
        if token.in_user_code:
            raise interrupt_for(exc_type)()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from stackwise.supervision import watch_parent

    watch_parent(token)
    result = run_step(inv, token)
    payload = result.model_dump_json()
    if args.result:
        tmp = args.result + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(payload)
        os.replace(tmp, args.result)
    else:
        print(payload)
    if result.status == "FAILED" and not result.retryable:
        print(f"invalid step invocation: {result.error}", file=sys.stderr)
        return 2
    return EXIT_CODES[result.status]


def _read_input(source: str) -> str:
    try:
        return sys.stdin.read() if source == "-" else Path(source).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvocationError(f"cannot read {source!r} ({exc}); give a JSON file or -.") from None


def _check_writable(result: Path) -> None:
    """Before the step runs: its result must have somewhere to go."""
    folder = result.parent if str(result.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise InvocationError(
            f"--result {str(result)!r}: its folder is missing or not writable; give a "
            "writable path (nothing was run)."
        )


if __name__ == "__main__":
    sys.exit(main())
