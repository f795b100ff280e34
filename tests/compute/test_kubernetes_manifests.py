"""The Job of a step attempt, field by field, for CPU-only, one-GPU and multi-GPU steps, and
validated against the official Kubernetes OpenAPI schema (kubernetes-validate, strict)."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest

from stackwise import Resources
from stackwise.compute.kubernetes import manifests
from stackwise.compute.kubernetes.settings import SCHEMA_VERSION, KubernetesSettings
from stackwise.contract import PipelineRef, StepInvocation

SETTINGS = KubernetesSettings(
    namespace="ml", image="registry.example/ml/stackwise:1.4", service_account="trainer",
    node_selector={"pool": "batch"},
    tolerations=[{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
    secrets={"DB_PASSWORD": {"secret": "db-creds", "key": "password"}},
    ttl_seconds_after_finished=600,
)  # fmt: skip


def _inv(resources: Resources, timeout_s: float | None = None, step: str = "train") -> Any:
    return StepInvocation(
        pipeline=PipelineRef(target="flows.daily", name="training"), step=step,
        run_id="20261130-024842-0c7e41ed", attempt=2, params={"token": "s3cr3t"},
        artifact_root="s3://bucket/artifacts", resources=resources, timeout_s=timeout_s,
    )  # fmt: skip


def _job(inv: StepInvocation, backoff_limit: int = 0) -> dict[str, Any]:
    name = manifests.job_name(inv)
    job = manifests.to_dict(
        manifests.job(inv, name=name, image=SETTINGS.image or "", settings=SETTINGS,
                      backoff_limit=backoff_limit)
    )  # fmt: skip
    assert kubernetes_validate.validate(job, SCHEMA_VERSION, strict=True) == SCHEMA_VERSION
    return job


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_a_cpu_only_job() -> None:
    inv = _inv(Resources(cpu=2, memory="4Gi"), timeout_s=599.5)
    job = _job(inv, backoff_limit=3)
    name = manifests.job_name(inv)
    assert name.startswith("sw-train-") and name.endswith("-2") and len(name) <= 63
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["namespace"] == "ml"
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "stackwise", "stackwise.dev/run-id": inv.run_id,
        "stackwise.dev/step": "train", "stackwise.dev/attempt": "2",
    }  # fmt: skip
    spec = job["spec"]
    assert spec["backoffLimit"] == 3
    assert spec["activeDeadlineSeconds"] == 600  # the timeout, rounded up
    assert spec["ttlSecondsAfterFinished"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "trainer"
    assert pod["nodeSelector"] == {"pool": "batch"}
    assert pod["tolerations"] == [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]
    container = _container(job)
    assert container["image"] == "registry.example/ml/stackwise:1.4"
    assert container["command"] == [
        "python", "-m", "stackwise.runner", "--invocation", "/var/run/stackwise/invocation.json"
    ]  # fmt: skip
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}
    }  # fmt: skip
    assert {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds",
            "key": "password"}}} in container["env"]  # fmt: skip
    assert pod["volumes"] == [
        {"name": "invocation", "secret": {"secretName": name, "defaultMode": 0o400}}
    ]
    # the invocation (its parameters may be secret) travels in a Secret, not in the Job
    assert "s3cr3t" not in json.dumps(job)
    secret = manifests.to_dict(manifests.invocation_secret(inv, name, SETTINGS))
    kubernetes_validate.validate(secret, SCHEMA_VERSION, strict=True)
    assert StepInvocation.model_validate_json(secret["stringData"]["invocation.json"]) == inv


def test_one_gpu_job_gets_the_gpu_limit_type_selector_and_toleration() -> None:
    job = _job(_inv(Resources(cpu=4, memory="16Gi", gpu=1, gpu_type="nvidia-tesla-t4")))
    assert _container(job)["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
    }
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "batch", "nvidia.com/gpu.product": "nvidia-tesla-t4"}
    assert pod["tolerations"] == [
        {"key": "spot", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert "activeDeadlineSeconds" not in job["spec"]  # no timeout, no deadline


def test_a_multi_gpu_job_and_a_bare_one() -> None:
    job = _job(_inv(Resources(gpu=8, gpu_type="A100"), step="Fine:Tune@big"))
    assert _container(job)["resources"] == {"limits": {"nvidia.com/gpu": "8"}}
    assert job["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == "A100"
    assert job["metadata"]["labels"]["stackwise.dev/step"] == "Fine-Tune-big"  # a label value
    assert job["metadata"]["annotations"]["stackwise.dev/step"] == "Fine:Tune@big"
    bare = _job(_inv(Resources()))
    assert not _container(bare).get("resources")  # nothing asked, nothing set


def test_the_schema_check_is_not_vacuous() -> None:
    job = _job(_inv(Resources(cpu=1)))
    broken = copy.deepcopy(job)
    broken["spec"]["backoffLimit"] = "3"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSION, strict=True)
    broken = copy.deepcopy(job)
    broken["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1  # no such field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSION, strict=True)
