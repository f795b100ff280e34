"""The Python entry point behind `stackwise run`, for notebooks and tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackwise.orchestrators.base import EventSink, RunRecord


def run(
    target: str,
    params: dict[str, Any] | None = None,
    *,
    stack: str | None = None,
    max_parallel: int | None = None,
    use_cache: bool = True,
    on_event: EventSink | None = None,
) -> RunRecord:
    """Load `target` ('module:name' or 'file.py:name'), run it once on the stack's
    orchestrator and return the finished run record."""
    from stackwise.authoring.loader import load_pipeline
    from stackwise.config import load_stack
    from stackwise.plugins import ORCHESTRATORS, resolve

    config = load_stack(stack)
    pipeline = load_pipeline(target)
    orchestrator = resolve(ORCHESTRATORS, "orchestrator", config.orchestrator)(config)
    kwargs: dict[str, Any] = {"max_parallel": max_parallel, "use_cache": use_cache}
    if on_event is not None:
        kwargs["on_event"] = on_event
    record: RunRecord = orchestrator.run(pipeline, params, **kwargs)
    return record
