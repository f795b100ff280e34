"""`KubernetesBackend`: each step attempt a Job (see `manifests.py`), talked to through the
official `kubernetes` client.

- `open()` loads the credentials: `kubernetes.api_url` (an API server reached without
  credentials, e.g. `kubectl proxy`), `in_cluster`, or the kubeconfig (`config_file`,
  `context`). `validate()` refuses a step with no image, with `workers` > 1, with a memory
  that is no Kubernetes quantity, and stores the cluster cannot see (`contract.remote_problems`:
  a pod is never this host). The code is shipped as a bundle in the artifact store.
- `submit()` creates the invocation Secret and the Job, then makes the Job the Secret's owner
  (Kubernetes deletes the Secret with the Job). A thread polls the Job, streams the pod's log
  (echoed on this process's stderr, kept for `logs()`), and reads the `StepResult` from the
  log's last line once the Job completed or failed.
- `cancel()` deletes the Job and its pods (the runner in the pod gets SIGTERM and closes its
  MLflow run as KILLED) and the Secret.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stackwise.compute.base import ResultHandle, StepHandle
from stackwise.compute.kubernetes import manifests
from stackwise.compute.kubernetes.settings import KubernetesSettings
from stackwise.compute.quantities import memory_bytes
from stackwise.compute.remote import BundleShipper, DoneHandle, stack_location_problems
from stackwise.contract import StepInvocation, StepResult, StepStatus, remote_problems
from stackwise.errors import ComputeError, StackwiseError, StepTimeoutError

if TYPE_CHECKING:
    from stackwise.authoring.step import Resources


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, stack: Any = None) -> None:
        from stackwise.config import section

        self.stack = stack
        self.settings = (
            section(stack, "kubernetes", KubernetesSettings)
            if stack is not None
            else KubernetesSettings()
        )
        self.api: Any = None
        self._shipper = BundleShipper()

    def open(self) -> None:
        from kubernetes import client, config

        s = self.settings
        try:
            if s.api_url:
                self.api = client.ApiClient(client.Configuration(host=s.api_url))
            elif s.in_cluster:
                config.load_incluster_config()
                self.api = client.ApiClient()
            else:
                self.api = config.new_client_from_config(
                    config_file=s.config_file, context=s.context
                )
        except Exception as exc:  # ConfigException, OSError: no kubeconfig, no such context
            raise ComputeError(
                f"cannot load the Kubernetes credentials ({type(exc).__name__}: {exc}); set "
                "kubernetes.context or kubernetes.config_file (a kubeconfig), in_cluster: true, "
                "or api_url in the stack file."
            ) from None

    def close(self) -> None:
        if self.api is not None:
            self.api.close()
            self.api = None

    def validate(self, resources: Resources, image: str | None) -> list[str]:
        problems = []
        if not (image or self.settings.image):
            problems.append(
                "has no image to run in on Kubernetes; set kubernetes.image in the stack file "
                "or @step(image=...)."
            )
        if resources.workers and resources.workers > 1:
            problems.append(
                f"asks for {resources.workers} workers, but a Kubernetes Job runs one; use "
                "compute='ray' for distributed steps."
            )
        if resources.memory:
            try:
                memory_bytes(resources.memory)
            except StackwiseError as exc:
                problems.append(exc.message)
        return problems + stack_location_problems(self.stack, "Kubernetes")

    def submit(
        self,
        invocation: StepInvocation,
        *,
        resources: Resources,
        image: str | None,
        on_done: Callable[[StepHandle], None],
    ) -> StepHandle:
        try:
            invocation = self._shipper.portable(invocation)
            found = remote_problems(invocation)
            if found:
                raise ComputeError("cannot run on Kubernetes: " + "; ".join(found) + ".")
            image = image or self.settings.image
            if not image:
                raise ComputeError("no image: set kubernetes.image or @step(image=...).")
        except StackwiseError as exc:
            return DoneHandle.failed(invocation, exc, on_done)
        name = manifests.job_name(invocation)
        self._create(invocation, name, image)
        return JobHandle(self.api, invocation, name, self.settings, on_done)

    def _create(self, inv: StepInvocation, name: str, image: str) -> None:
        from kubernetes import client

        ns = self.settings.namespace
        core, batch = client.CoreV1Api(self.api), client.BatchV1Api(self.api)
        core.create_namespaced_secret(ns, manifests.invocation_secret(inv, name, self.settings))
        # backoffLimit 0: the orchestrator retries, each attempt a Job of its own.
        job = manifests.job(inv, name=name, image=image, settings=self.settings, backoff_limit=0)
        created = batch.create_namespaced_job(ns, job)
        owner = client.V1OwnerReference(
            api_version="batch/v1", kind="Job", name=name, uid=created.metadata.uid,
            block_owner_deletion=True,
        )  # fmt: skip
        core.patch_namespaced_secret(name, ns, {"metadata": {"ownerReferences": [owner]}})


class JobHandle(ResultHandle):
    """One attempt as a Kubernetes Job (implements StepHandle)."""

    def __init__(
        self,
        api: Any,
        inv: StepInvocation,
        name: str,
        settings: KubernetesSettings,
        on_done: Callable[[StepHandle], None],
    ) -> None:
        from kubernetes import client

        self.inv, self.name, self.settings = inv, name, settings
        self.core, self.batch = client.CoreV1Api(api), client.BatchV1Api(api)
        self.running_since: float | None = None
        self.pod: str | None = None
        self._log: list[str] = []
        self._streamer: threading.Thread | None = None
        self._result: StepResult | None = None
        self._stop: type[BaseException] | None = None
        self._wake = threading.Event()
        threading.Thread(target=self._drive, args=(on_done,), daemon=True).start()

    def logs(self) -> str:
        return "".join(self._log)

    @property
    def mlflow_run_id(self) -> str | None:
        return self._result.mlflow_run_id if self._result is not None else None

    def cancel(self, reason: type[BaseException]) -> None:
        self._stop = self._stop or reason
        self._wake.set()

    # -- following the Job ------------------------------------------------------------------
    def _drive(self, on_done: Callable[[StepHandle], None]) -> None:
        try:
            self._result = self._follow()
        except Exception as exc:  # the API server went away, refused a call...
            self._result = self._failed(f"the Kubernetes API failed: {type(exc).__name__}: {exc}")
            self._delete()
        on_done(self)

    def _follow(self) -> StepResult:
        ns = self.settings.namespace
        while True:
            if self._stop is not None:
                self._delete()
                timeout = self._stop is StepTimeoutError
                return self._failed("timed out" if timeout else "stopped",
                                    "FAILED" if timeout else "KILLED")  # fmt: skip
            status = self.batch.read_namespaced_job_status(self.name, ns).status
            self._watch_pod()
            ended = {c.type: c for c in (status.conditions or []) if c.status == "True"}
            if "Complete" in ended or "Failed" in ended:
                return self._outcome(ended.get("Failed"))
            self._wake.wait(self.settings.poll_interval_s)

    def _watch_pod(self) -> None:
        if self._streamer is not None:
            return
        pods = self.core.list_namespaced_pod(
            self.settings.namespace, label_selector=f"job-name={self.name}"
        ).items
        running = [p for p in pods if p.status and p.status.phase != "Pending"]
        if running:
            self.pod = running[-1].metadata.name
            self.running_since = time.monotonic()
            self._streamer = threading.Thread(target=self._stream, daemon=True)
            self._streamer.start()

    def _stream(self) -> None:
        """Follow the pod's log to its end, echoing each piece on stderr."""
        try:
            response = self.core.read_namespaced_pod_log(
                self.pod, self.settings.namespace, container=manifests.CONTAINER, follow=True,
                _preload_content=False,
            )  # fmt: skip
            for chunk in response.stream():
                text = chunk.decode(errors="replace")
                self._log.append(text)
                sys.stderr.write(text)
        except Exception:  # the pod went away; `_outcome` reads what is left
            pass

    def _outcome(self, failed: Any) -> StepResult:
        if self._streamer is None:
            self._watch_pod()
        if self._streamer is not None:
            self._streamer.join(30)
        if not self._log and self.pod is not None:
            self._log.append(
                self.core.read_namespaced_pod_log(
                    self.pod, self.settings.namespace, container=manifests.CONTAINER
                )
            )
        for line in reversed(self.logs().splitlines()):
            if line.startswith('{"schema_version"'):
                return StepResult.model_validate_json(line)
        if failed is not None and failed.reason == "DeadlineExceeded":
            return self._failed(f"timed out after {self.inv.timeout_s:g}s (activeDeadlineSeconds)")
        why = f"{failed.reason}: {failed.message}" if failed is not None else "no result"
        return self._failed(f"the Job {self.name} ended without a result ({why}):\n"
                            f"{self.logs()[-2000:]}")  # fmt: skip

    def _delete(self) -> None:
        """Delete the Job with its pods (Kubernetes sends them SIGTERM) and the Secret."""
        from kubernetes.client import V1DeleteOptions

        ns = self.settings.namespace
        options = V1DeleteOptions(propagation_policy="Background")
        for delete in (self.batch.delete_namespaced_job, self.core.delete_namespaced_secret):
            # already gone, or the API is away: the Job's TTL cleans up
            with contextlib.suppress(Exception):
                delete(self.name, ns, body=options)

    def _failed(self, error: str, status: StepStatus = "FAILED") -> StepResult:
        return StepResult(
            step=self.inv.step, status=status, attempt=self.inv.attempt, error=error,
            error_type="StepTimeoutError" if "timed out" in error else "KubernetesError",
            logs=self.logs()[-20_000:],
        )  # fmt: skip
