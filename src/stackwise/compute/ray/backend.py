"""`RayBackend`: where a step runs when its compute is `ray` (the orchestrator stays whatever
it is: local, or another one calling the runner).

- `open()` connects to `ray.address` (`auto`, `ray://host:10001`, `host:port`), or starts a
  local Ray when there is none; a process that already called `ray.init` keeps its
  connection. `close()` shuts down only a Ray this backend started.
- The code reaches the workers as a code bundle in the artifact store (built once per
  project content; see `stackwise.bundles`), never through a shared folder; `ray.runtime_env`
  adds packages or variables.
- `validate()` refuses a step the cluster can never run (see `feasibility.py`), and, when the
  cluster has a node other than this host, an artifact store, tracking store or cache that
  only this host can see (`contract.remote_problems`).
- `submit()` starts a Ray task (`worker.run_attempt`) with `num_cpus`, `num_gpus`, `memory`
  and `accelerator_type` from the step's resources, or, with `workers=N`, a gang of N actors
  (`gang.py`). Ray never retries on its own: retries are the orchestrator's, one attempt each.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stackwise.compute.base import ResultHandle, StepHandle
from stackwise.compute.ray.feasibility import Demand, problems
from stackwise.compute.ray.settings import RaySettings
from stackwise.compute.remote import BundleShipper, DoneHandle, stack_location_problems
from stackwise.contract import StepInvocation, StepResult, StepStatus, remote_problems
from stackwise.errors import ComputeError, StackwiseError, StepTimeoutError

if TYPE_CHECKING:
    from stackwise.authoring.step import Resources

#: After a stop request, how long a task may take before Ray kills its worker process.
_FORCE_AFTER_S = 3.0


class RayBackend:
    name = "ray"

    def __init__(self, stack: Any = None) -> None:
        from stackwise.config import section

        self.stack = stack
        self.settings = section(stack, "ray", RaySettings) if stack is not None else RaySettings()
        self._started = False
        self._shipper = BundleShipper()
        self._task: Any = None

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        import ray

        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # workers use this Python
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if self.settings.runtime_env:
            options["runtime_env"] = self.settings.runtime_env
        if self.settings.namespace:
            options["namespace"] = self.settings.namespace
        if self.settings.address is None:
            options.update(num_cpus=self.settings.num_cpus, num_gpus=self.settings.num_gpus)
        try:
            ray.init(address=self.settings.address, **options)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError from Ray
            where = self.settings.address or "a local Ray"
            raise ComputeError(
                f"cannot start or reach {where} ({type(exc).__name__}: {exc}); start the "
                "cluster (`ray start --head`) or fix ray.address in the stack file."
            ) from None
        self._started = True

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    # -- checks -----------------------------------------------------------------------------
    def nodes(self) -> list[dict[str, float]]:
        """The alive nodes' total resources."""
        import ray

        return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]

    def same_host(self) -> bool:
        """True when every node of the cluster is this host (a local Ray): then host-local
        stores are visible to the workers."""
        import ray
        from ray.util import get_node_ip_address

        here = get_node_ip_address()  # type: ignore[no-untyped-call]
        nodes = ray.nodes()  # type: ignore[no-untyped-call]
        return all(n.get("NodeManagerAddress") == here for n in nodes if n.get("Alive"))

    def validate(self, resources: Resources, image: str | None) -> list[str]:
        try:
            demand = Demand.of(resources)
        except StackwiseError as exc:
            return [exc.message]
        found = [] if self.settings.autoscaling else problems(
            demand, self.nodes(), self.settings.placement_strategy
        )  # fmt: skip
        return found + self._location_problems()

    def _location_problems(self) -> list[str]:
        """What the workers of a multi-host cluster could not see, from the stack's stores."""
        if self.stack is None or self.same_host():
            return []
        return stack_location_problems(self.stack, "the Ray cluster")

    # -- running ----------------------------------------------------------------------------
    def submit(
        self,
        invocation: StepInvocation,
        *,
        resources: Resources,
        image: str | None,
        on_done: Callable[[StepHandle], None],
    ) -> StepHandle:
        try:
            demand = Demand.of(resources)
            invocation = self._shipper.portable(invocation)
            found = [] if self.same_host() else remote_problems(invocation)
            if found:
                raise ComputeError("cannot run on the Ray cluster: " + "; ".join(found) + ".")
        except StackwiseError as exc:
            return DoneHandle.failed(invocation, exc, on_done)
        if demand.workers > 1:
            from stackwise.compute.ray.gang import GangHandle

            return GangHandle(invocation, demand, self.settings, self.nodes, on_done)
        return TaskHandle(self._remote_task(), invocation, demand, on_done)

    def _remote_task(self) -> Any:
        if self._task is None:
            import ray

            from stackwise.compute.ray.worker import run_attempt

            self._task = ray.remote(max_retries=0)(run_attempt)
        return self._task


class TaskHandle(ResultHandle):
    """One single-worker attempt as a Ray streaming-generator task (implements StepHandle)."""

    def __init__(
        self, task: Any, inv: StepInvocation, demand: Demand, on_done: Callable[[StepHandle], None]
    ) -> None:
        self.inv = inv
        self.running_since: float | None = None
        self.host: str | None = None
        self._run_id: str | None = None
        self._result: StepResult | None = None
        self._stop: type[BaseException] | None = None
        self._ref = task.options(**demand.ray_options()).remote(inv.model_dump_json())
        threading.Thread(target=self._watch, args=(on_done,), daemon=True).start()

    def logs(self) -> str:
        return self._result.logs if self._result is not None else ""

    @property
    def mlflow_run_id(self) -> str | None:
        return self._result.mlflow_run_id if self._result is not None else self._run_id

    def cancel(self, reason: type[BaseException]) -> None:
        """Ray raises KeyboardInterrupt in the task (the step is stopped, its MLflow run
        closed); a task still there after a few seconds has its worker process killed."""
        import ray

        if self._result is not None or self._stop is not None:
            return
        self._stop = reason
        ray.cancel(self._ref)

        def force() -> None:
            time.sleep(_FORCE_AFTER_S)
            if self._result is None:
                ray.cancel(self._ref, force=True)

        threading.Thread(target=force, daemon=True).start()

    def _watch(self, on_done: Callable[[StepHandle], None]) -> None:
        import ray
        from ray.exceptions import RayError, RayTaskError, TaskCancelledError

        result: StepResult | None = None
        try:
            for ref in self._ref:
                kind, value = ray.get(ref)
                if kind == "started":
                    self.running_since, self.host = time.monotonic(), value
                elif kind == "mlflow_run":
                    self._run_id = value
                else:
                    result = StepResult.model_validate_json(value)
        except TaskCancelledError:
            pass
        except RayTaskError as exc:  # an error outside the step's own code: the whole story
            result = self._failed(f"the Ray task failed: {exc}")
        except RayError as exc:  # the worker process died (segfault, os._exit, OOM, node lost)
            if self._stop is None:
                result = self._failed(f"the Ray worker running it died: {exc}")
        if result is None:
            result = self._failed(
                "timed out" if self._stop is StepTimeoutError else "stopped",
                "FAILED" if self._stop is StepTimeoutError else "KILLED",
            )
        self._result = result
        on_done(self)

    def _failed(self, error: str, status: StepStatus = "FAILED") -> StepResult:
        return StepResult(
            step=self.inv.step, status=status, attempt=self.inv.attempt,
            error=error, error_type="RayError", mlflow_run_id=self._run_id,
        )  # fmt: skip
