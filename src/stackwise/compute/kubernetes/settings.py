"""The `kubernetes:` section of `stackwise.yaml` (validated here, read through
`config.section`)::

    compute: kubernetes
    kubernetes:
      namespace: ml
      image: registry.example/ml/stackwise:1.4     # unless the step names its own image
      service_account: trainer
      node_selector: {pool: batch}
      tolerations: [{key: spot, operator: Exists, effect: NoSchedule}]
      secrets: {AWS_ACCESS_KEY_ID: {secret: s3, key: access-key}}   # env var -> Secret key
      ttl_seconds_after_finished: 3600
      context: prod                                 # kubeconfig context (or config_file)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The Kubernetes version whose OpenAPI schema the generated manifests are checked against.
SCHEMA_VERSION = "1.30"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Toleration(_Model):
    """A pod toleration (Kubernetes `core/v1 Toleration`)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)


class SecretKey(_Model):
    """One key of a Kubernetes Secret, given to the step as an environment variable."""

    secret: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$")


class KubernetesSettings(_Model):
    namespace: str = Field("default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    image: str | None = Field(None, description="image of steps that name none")
    service_account: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    secrets: dict[str, SecretKey] = Field(
        default_factory=dict, description="environment variable -> Secret name and key"
    )
    ttl_seconds_after_finished: int = Field(3600, ge=0)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    gpu_resource: str = Field("nvidia.com/gpu", description="extended resource of a GPU")
    gpu_type_label: str = Field(
        "nvidia.com/gpu.product", description="node label that a step's gpu_type selects"
    )
    gpu_tolerations: list[Toleration] = Field(
        default_factory=lambda: [
            Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
        ],
        description="tolerations added to steps that ask for GPUs",
    )
    python: str = Field("python", description="the image's Python executable")
    config_file: str | None = Field(None, description="kubeconfig (default: ~/.kube/config)")
    context: str | None = Field(None, description="kubeconfig context")
    in_cluster: bool = Field(False, description="use the pod's service account")
    api_url: str | None = Field(
        None, description="API server URL without credentials (e.g. `kubectl proxy`)"
    )
    poll_interval_s: float = Field(2.0, gt=0)
