"""The Kubernetes backend end to end against a loopback API server (`kube_api.FakeKubeAPI`; no
cluster can run here): the invocation Secret and the Job are created with the expected
bodies, the Secret is owned by the Job, the Job is polled, its pod's log streamed, the result
read from it; a failing step brings its traceback; cancelling deletes the Job and the Secret.
And what the backend refuses before anything runs."""

from __future__ import annotations

import queue
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
from kube_api import FakeKubeAPI, process_env

from stackwise import Resources
from stackwise.compute.base import StepHandle
from stackwise.compute.kubernetes.backend import KubernetesBackend
from stackwise.compute.kubernetes.settings import SCHEMA_VERSION
from stackwise.config import StackConfig
from stackwise.contract import PipelineRef, StepInvocation
from stackwise.errors import ComputeError, StepCancelledError

FLOW = """
    import os
    import time
    import stackwise as sw

    @sw.step
    def hello(name: str) -> str:
        print(f"hello {name} from the pod")
        return f"{name}:{os.environ['DB_PASSWORD']}"

    def parse(row: int) -> int:
        raise ValueError(f"bad row {row}")

    @sw.step
    def broken() -> int:
        return parse(7)

    @sw.step
    def sleepy() -> int:
        print("going to sleep")
        time.sleep(60)
        return 1

    @sw.pipeline
    def flow(name: str = "ada") -> None:
        hello(name)
        broken()
        sleepy()
"""


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKubeAPI]:
    image = tmp_path / "image"  # what the image holds: the project, installed
    image.mkdir()
    (image / "k8s_flow.py").write_text(textwrap.dedent(FLOW))
    api = FakeKubeAPI(tmp_path / "pods", process_env(image))
    api.secrets["db-creds"] = {"stringData": {"password": "hunter2"}}
    yield api
    api.close()


def _backend(url: str) -> KubernetesBackend:
    stack = StackConfig(
        compute="kubernetes", artifact_store="memory://artifacts", tracking=False,
        kubernetes={
            "namespace": "ml", "image": "registry.example/ml/stackwise:1.4", "api_url": url,
            "secrets": {"DB_PASSWORD": {"secret": "db-creds", "key": "password"}},
            "poll_interval_s": 0.2, "python": sys.executable,
        },
    )  # fmt: skip
    backend = KubernetesBackend(stack)
    backend.open()
    return backend


def _inv(step: str, **extra: object) -> StepInvocation:
    return StepInvocation(
        pipeline=PipelineRef(target="k8s_flow", name="flow"), step=step, run_id="run-1",
        params={"name": "grace"}, artifact_root="memory://artifacts",
        resources=Resources(cpu=1, memory="256Mi"), **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def _submit(backend: KubernetesBackend, inv: StepInvocation) -> tuple[StepHandle, queue.Queue]:
    done: queue.Queue[StepHandle] = queue.Queue()
    handle = backend.submit(inv, resources=inv.resources, image=None, on_done=done.put)
    return handle, done


@pytest.mark.slow
def test_a_step_runs_as_a_job_and_its_result_comes_back(kube: FakeKubeAPI) -> None:
    backend = _backend(kube.url)
    inv = _inv("hello")
    handle, done = _submit(backend, inv)
    assert done.get(timeout=120) is handle
    result = handle.result()

    assert result.status == "SUCCEEDED", result.error
    assert handle.running_since is not None
    assert "hello grace from the pod" in handle.logs()  # streamed from the pod's log
    assert "hello grace from the pod" in result.logs
    # the calls, in order, with the bodies the API server received
    methods = [(m, p.split("?")[0].rsplit("/", 2)[-2:]) for m, p, _ in kube.requests]
    assert methods[:3] == [("POST", ["ml", "secrets"]), ("POST", ["ml", "jobs"]),
                           ("PATCH", ["secrets", handle.name])]  # type: ignore[attr-defined]  # fmt: skip
    (secret,) = kube.calls("POST", "/api/v1/namespaces/ml/secrets")
    assert StepInvocation.model_validate_json(secret["stringData"]["invocation.json"]) == inv
    (job,) = kube.calls("POST", "/apis/batch/v1/namespaces/ml/jobs")
    kubernetes_validate.validate({**job, "status": None} if "status" in job else job,
                                 SCHEMA_VERSION, strict=True)  # fmt: skip
    assert job["spec"]["backoffLimit"] == 0  # the orchestrator retries, one Job per attempt
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "256Mi"}
    (patch,) = kube.calls("PATCH", "/secrets/")
    (owner,) = patch["metadata"]["ownerReferences"]
    assert owner["kind"] == "Job" and owner["uid"] == kube.jobs[owner["name"]]["metadata"]["uid"]
    assert kube.calls("GET", f"/jobs/{owner['name']}/status")
    assert kube.calls("GET", "labelSelector=job-name")
    assert kube.calls("GET", "/log?")
    assert result.outputs["output"].uri.startswith("memory://")
    backend.close()


@pytest.mark.slow
def test_a_failing_step_brings_its_traceback(kube: FakeKubeAPI) -> None:
    backend = _backend(kube.url)
    handle, done = _submit(backend, _inv("broken"))
    done.get(timeout=120)
    result = handle.result()
    assert result.status == "FAILED"
    assert "ValueError: bad row 7" in (result.error or "") and "in parse" in (result.error or "")
    backend.close()


@pytest.mark.slow
def test_cancelling_deletes_the_job_and_its_secret(kube: FakeKubeAPI) -> None:
    backend = _backend(kube.url)
    handle, done = _submit(backend, _inv("sleepy"))
    deadline = time.monotonic() + 60
    while "going to sleep" not in handle.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert handle.status() == "RUNNING"
    handle.cancel(StepCancelledError)
    assert done.get(timeout=60) is handle
    assert handle.result().status == "KILLED"
    name = handle.name  # type: ignore[attr-defined]
    (delete,) = kube.calls("DELETE", f"/jobs/{name}")
    assert delete["propagationPolicy"] == "Background"
    assert kube.calls("DELETE", f"/secrets/{name}") and name not in kube.secrets
    proc = kube.procs[name]
    assert proc.wait(10) is not None  # the "pod" got SIGTERM and ended
    backend.close()


def test_what_kubernetes_refuses_before_anything_runs(project: Path) -> None:
    stack = StackConfig(base_dir=project, compute="kubernetes", kubernetes={"api_url": "x"})
    backend = KubernetesBackend(stack)
    problems = backend.validate(Resources(workers=2, memory="lots"), None)
    text = " | ".join(problems)
    assert "has no image to run in on Kubernetes; set kubernetes.image" in text
    assert "asks for 2 workers, but a Kubernetes Job runs one" in text
    assert "Resources(memory='lots') is not a Kubernetes quantity" in text
    assert "the artifact store file://" in text and "is a folder on this host" in text
    assert "the tracking store sqlite:///" in text
    missing = StackConfig(base_dir=project, kubernetes={"config_file": str(project / "nope")})
    with pytest.raises(ComputeError, match="cannot load the Kubernetes credentials"):
        KubernetesBackend(missing).open()
