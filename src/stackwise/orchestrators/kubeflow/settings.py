"""The stack file's `kubeflow:` section (validated by `stackwise.config.section`).

::

    orchestrator: kubeflow
    artifact_store: s3://ml-artifacts/stackwise
    tracking_uri: http://mlflow.mlflow.svc:5000
    kubeflow:
      host: https://kfp.example.com/pipeline      # the KFP API endpoint (run, not export)
      namespace: team-a                           # runs and experiment live here
      experiment: fraud                           # KFP experiment (default: pipeline name)
      service_account: pipeline-runner
      image: registry.example.com/ml/base:3f2a... # `stackwise image dockerfile` builds it
      node_selector: {cloud.google.com/gke-nodepool: gpu-pool}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      secrets:                                    # env var -> Kubernetes secret key
        AWS_SECRET_ACCESS_KEY: {secret: s3-creds, key: secret_key}
        STACKWISE_PARAM_DB_PASSWORD: {secret: db, key: password}
      token_env: KFP_TOKEN                        # the NAME of a variable holding a token

Credentials are never stored here: `token_env` names an environment variable, `secrets` name
Kubernetes secrets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The extended resource a GPU count asks for when the step names a GPU model (or nothing).
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"


class SecretRef(BaseModel):
    """One key of a Kubernetes secret in the run's namespace."""

    model_config = ConfigDict(extra="forbid")

    secret: str
    key: str


class Toleration(BaseModel):
    """A Kubernetes toleration (core/v1 Toleration fields)."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)


class KubeflowSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str | None = Field(None, description="KFP API endpoint; needed to run, not to export")
    namespace: str | None = Field(None, description="Kubernetes namespace of runs (multi-user)")
    experiment: str | None = Field(None, description="KFP experiment (default: pipeline name)")
    service_account: str | None = Field(None, description="Kubernetes service account of runs")
    image: str | None = Field(None, description="base image with stackwise and dependencies")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    secrets: dict[str, SecretRef] = Field(
        default_factory=dict, description="environment variable -> Kubernetes secret key"
    )
    token_env: str | None = Field(None, description="name of the variable holding a token")
    caching: bool = Field(True, description="reuse earlier step results (the stackwise cache)")
    pipeline_root: str | None = Field(None, description="KFP pipeline root (its own outputs)")
    gpu_resource: str = Field(
        DEFAULT_GPU_RESOURCE, description="extended resource of a GPU count (nvidia.com/gpu)"
    )
    gpu_label: str = Field(
        "nvidia.com/gpu.product",
        description="node label a GPU model (Resources.gpu_type without '/') selects on",
    )
    host_local_stores: bool = Field(
        False,
        description="allow an artifact store and tracking store on this host (kfp.local only)",
    )
