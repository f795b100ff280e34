"""The ComputeBackend protocol: where one step attempt runs. The orchestrator decides when; a
backend starts a `StepInvocation` somewhere (a thread, a process, a Ray task, a Kubernetes
Job) and reports on it through a `StepHandle`.

Lifecycle: `open()` once before the first submit (connect to a cluster), `validate()` before
anything runs (refuse what the backend can never satisfy, instead of leaving a step pending
forever), `submit()` per attempt, `close()` when the run is over. A handle reports QUEUED until
the attempt really runs; the orchestrator counts a step's timeout from RUNNING, so waiting for
a slot or a node never counts against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from stackwise.authoring.step import Resources
    from stackwise.contract import StepInvocation, StepResult

HandleStatus = Literal["QUEUED", "RUNNING", "DONE"]


class StepHandle(Protocol):
    def status(self) -> HandleStatus: ...

    @property
    def running_since(self) -> float | None:
        """`time.monotonic()` when the attempt started running (None while QUEUED)."""
        ...

    def result(self) -> StepResult:
        """The attempt's result, with the remote traceback when it failed; only when DONE."""
        ...

    def logs(self) -> str:
        """What the attempt printed so far (kept after it ends)."""
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

    def open(self) -> None:
        """Prepare (connect, start a local cluster); called once before the first submit."""
        ...

    def close(self) -> None:
        """Release what `open` took; attempts still running are the orchestrator's to stop."""
        ...

    def validate(self, resources: Resources, image: str | None) -> list[str]:
        """Why a step with these needs can never run here (empty: it can)."""
        ...

    def submit(
        self,
        invocation: StepInvocation,
        *,
        resources: Resources,
        image: str | None,
        on_done: Callable[[StepHandle], None],
    ) -> StepHandle:
        """Start one attempt; `on_done(handle)` is called (from any thread) when it is DONE."""
        ...


class ResultHandle:
    """What the handles of remote backends share: QUEUED until `running_since` is set, DONE
    once `_result` is. Subclasses set both from their watcher thread and add `logs`,
    `mlflow_run_id` and `cancel`."""

    running_since: float | None = None
    _result: StepResult | None = None

    def status(self) -> HandleStatus:
        if self._result is not None:
            return "DONE"
        return "RUNNING" if self.running_since is not None else "QUEUED"

    def result(self) -> StepResult:
        assert self._result is not None, "result() before DONE"
        return self._result
