"""The ComputeBackend protocol: where one step attempt runs. The orchestrator decides when;
a backend only starts a `StepInvocation` somewhere and reports its `StepResult`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.runner import StepInvocation, StepResult


class StepHandle(Protocol):
    def done(self) -> bool: ...

    def result(self) -> StepResult:
        """The attempt's result; only valid once `done()`."""
        ...

    def cancel(self, reason: type[BaseException]) -> None:
        """Ask the attempt to stop: StepTimeoutError or StepCancelledError."""
        ...

    @property
    def mlflow_run_id(self) -> str | None:
        """The attempt's MLflow run once known (None when the backend cannot tell yet)."""
        ...


class ComputeBackend(Protocol):
    name: str

    def validate(self, pipeline: Pipeline, steps: list[str]) -> list[str]:
        """Problems that make these steps impossible here (checked before anything runs)."""
        ...

    def submit(
        self, invocation: StepInvocation, on_done: Callable[[StepHandle], None]
    ) -> StepHandle: ...
