"""The Orchestrator protocol: decides when and in what order steps run, and runs each one only
through the step runner (`stackwise.runner`). Targets that compile to another system (Airflow,
Kubeflow) implement the same `validate` so problems surface before anything is deployed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stackwise.authoring.context import Interval
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.orchestrators.local.executor import EventSink
    from stackwise.orchestrators.local.state import RunRecord


class Orchestrator(Protocol):
    name: str

    def validate(self, pipeline: Pipeline) -> list[str]:
        """Problems that stop this pipeline from running here; empty when it can run."""
        ...

    def run(
        self,
        pipeline: Pipeline,
        params: dict[str, Any] | None = None,
        *,
        max_parallel: int | None = None,
        use_cache: bool = True,
        interval: Interval | None = None,
        on_event: EventSink = ...,
    ) -> RunRecord: ...

    def resume(self, run_id: str, *, on_event: EventSink = ...) -> RunRecord: ...
