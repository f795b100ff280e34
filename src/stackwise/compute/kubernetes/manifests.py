"""The Kubernetes objects of one step attempt, built from data with the official client's
models (`kubernetes.client.V1Job`, ...) and serialized by its `ApiClient`, never by pasting
strings into YAML. Every manifest validates against the OpenAPI schema of Kubernetes
`SCHEMA_VERSION` (the tests check it with `kubernetes-validate`).

- A `Secret` holds the invocation (`invocation.json`): its parameters may be secret, and a
  Job's spec is readable by anyone who may list Jobs.
- A `Job` runs one pod, `python -m stackwise.runner --invocation <the mounted Secret>`, which
  prints the `StepResult` as the last line of its output. Requests and limits come from the
  step's `Resources` (cpu and memory both, GPUs as limits of `gpu_resource`, a `gpu_type` as
  a node selector on `gpu_type_label`); `backoffLimit` from the retries given (0 when the
  stackwise orchestrator retries, as each of its attempts is a Job of its own);
  `activeDeadlineSeconds` from the timeout (Kubernetes counts it from the Job's start,
  pulling the image included); `ttlSecondsAfterFinished`, namespace, service account, node
  selector, tolerations and secrets as environment variables from the settings.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import TYPE_CHECKING, Any

from stackwise.compute.kubernetes.settings import KubernetesSettings, Toleration
from stackwise.contract import StepInvocation

if TYPE_CHECKING:
    from stackwise.authoring.step import Resources

MOUNT = "/var/run/stackwise"
INVOCATION_FILE = "invocation.json"
CONTAINER = "step"
MANAGED_BY = "stackwise"
LABEL_RUN = "stackwise.dev/run-id"
LABEL_STEP = "stackwise.dev/step"
LABEL_ATTEMPT = "stackwise.dev/attempt"


def job_name(inv: StepInvocation) -> str:
    """A DNS-1123 name unique per run, step and attempt (at most 63 characters)."""
    digest = hashlib.sha256(f"{inv.run_id}\0{inv.step}".encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", inv.step.lower()).strip("-")[:30].strip("-") or "step"
    return f"sw-{slug}-{digest}-{inv.attempt}"


def label_value(text: str) -> str:
    """`text` as a label value (at most 63 characters of `[A-Za-z0-9-_.]`, alphanumeric ends)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


def labels(inv: StepInvocation) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_RUN: label_value(inv.run_id),
        LABEL_STEP: label_value(inv.step),
        LABEL_ATTEMPT: str(inv.attempt),
    }


def invocation_secret(inv: StepInvocation, name: str, settings: KubernetesSettings) -> Any:
    """The Secret that carries the invocation into the pod."""
    from kubernetes import client

    return client.V1Secret(
        api_version="v1", kind="Secret", type="Opaque",
        metadata=client.V1ObjectMeta(name=name, namespace=settings.namespace, labels=labels(inv)),
        string_data={INVOCATION_FILE: inv.model_dump_json()},
    )  # fmt: skip


def resource_requirements(resources: Resources, settings: KubernetesSettings) -> Any:
    """Requests and limits: cpu and memory both (the step gets what it asked for and no more),
    GPUs as limits (Kubernetes sets the request of an extended resource to its limit)."""
    from kubernetes import client

    amounts: dict[str, str] = {}
    if resources.cpu is not None:
        amounts["cpu"] = f"{resources.cpu:g}"
    if resources.memory is not None:
        amounts["memory"] = resources.memory
    limits = dict(amounts)
    if resources.gpu:
        limits[settings.gpu_resource] = str(resources.gpu)
    return client.V1ResourceRequirements(requests=amounts or None, limits=limits or None)


def job(
    inv: StepInvocation,
    *,
    name: str,
    image: str,
    settings: KubernetesSettings,
    backoff_limit: int = 0,
) -> Any:
    """The `V1Job` of one attempt; its pod mounts the Secret `name` (see `invocation_secret`)."""
    from kubernetes import client

    resources = inv.resources
    env = [client.V1EnvVar(name="PYTHONUNBUFFERED", value="1")] + [
        client.V1EnvVar(
            name=var,
            value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(name=ref.secret, key=ref.key)
            ),
        )
        for var, ref in sorted(settings.secrets.items())
    ]
    container = client.V1Container(
        name=CONTAINER, image=image, image_pull_policy=settings.image_pull_policy,
        command=[settings.python, "-m", "stackwise.runner", "--invocation",
                 f"{MOUNT}/{INVOCATION_FILE}"],
        env=env, resources=resource_requirements(resources, settings),
        volume_mounts=[client.V1VolumeMount(name="invocation", mount_path=MOUNT, read_only=True)],
    )  # fmt: skip
    selector = dict(settings.node_selector)
    tolerations = list(settings.tolerations)
    if resources.gpu:
        tolerations += settings.gpu_tolerations
        if resources.gpu_type:
            selector[settings.gpu_type_label] = resources.gpu_type
    pod = client.V1PodSpec(
        restart_policy="Never", containers=[container],
        service_account_name=settings.service_account, node_selector=selector or None,
        tolerations=[_toleration(t) for t in tolerations] or None,
        volumes=[client.V1Volume(name="invocation", secret=client.V1SecretVolumeSource(
            secret_name=name, default_mode=0o400))],
    )  # fmt: skip
    meta = client.V1ObjectMeta(
        name=name, namespace=settings.namespace, labels=labels(inv),
        annotations={"stackwise.dev/run-id": inv.run_id, "stackwise.dev/step": inv.step},
    )  # fmt: skip
    return client.V1Job(
        api_version="batch/v1", kind="Job", metadata=meta,
        spec=client.V1JobSpec(
            backoff_limit=backoff_limit,
            active_deadline_seconds=math.ceil(inv.timeout_s) if inv.timeout_s else None,
            ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels(inv)), spec=pod
            ),
        ),
    )  # fmt: skip


def _toleration(t: Toleration) -> Any:
    from kubernetes import client

    return client.V1Toleration(
        key=t.key, operator=t.operator, value=t.value, effect=t.effect,
        toleration_seconds=t.toleration_seconds,
    )  # fmt: skip


def to_dict(obj: Any) -> dict[str, Any]:
    """A client model as the plain JSON the API server receives."""
    from kubernetes.client import ApiClient

    data: dict[str, Any] = ApiClient().sanitize_for_serialization(obj)
    return data
