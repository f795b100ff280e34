"""The stack's `airflow:` section, validated with `stackwise.config.section`.

Credentials never live in the stack file: `username_env` and `password_env` name the
environment variables that hold them (read when the API is called). Example::

    orchestrator: airflow
    artifact_store: /shared/stackwise/artifacts
    tracking_uri: postgresql://mlflow@db:5432/mlflow
    airflow:
      dags_folder: /opt/airflow/dags
      api_url: http://airflow:8080
      executor: kubernetes          # local | celery | kubernetes
      bundle: true                  # ship the project as a code bundle (no image rebuild)
      kubernetes:
        namespace: airflow
        node_selector: {pool: ml}
        tolerations: [{key: dedicated, operator: Equal, value: ml, effect: NoSchedule}]
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Toleration(BaseModel):
    """One Kubernetes toleration (the fields of `V1Toleration`)."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class PodSettings(BaseModel):
    """What the `pod_override` of every task gets under the KubernetesExecutor."""

    model_config = ConfigDict(extra="forbid")

    namespace: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    #: Node label that `Resources(gpu_type=...)` selects on.
    gpu_node_label: str = "nvidia.com/gpu.product"


class AirflowSettings(BaseModel):
    """`airflow:` in stackwise.yaml. Times are seconds."""

    model_config = ConfigDict(extra="forbid")

    dags_folder: str | None = Field(None, description="the deployment's DAGs folder")
    api_url: str = Field("http://127.0.0.1:8080", description="Airflow API server URL")
    username_env: str = Field("AIRFLOW_USERNAME", description="env var holding the user name")
    password_env: str = Field("AIRFLOW_PASSWORD", description="env var holding the password")
    executor: Literal["local", "celery", "kubernetes"] = "local"
    pool: str | None = Field(None, description="pool of every step task (default_pool if unset)")
    queue: str | None = Field(None, description="queue of steps that ask for no GPU")
    gpu_queue: str | None = Field(None, description="queue of steps that ask for a GPU")
    kubernetes: PodSettings = Field(default_factory=PodSettings)
    bundle: bool = Field(False, description="ship the project as a code bundle")
    tags: list[str] = Field(default_factory=list, description="extra DAG tags")
    parse_timeout_s: float = Field(180.0, gt=0, description="wait for the DAG to be parsed")
    run_timeout_s: float | None = Field(None, gt=0, description="stop following a run after")
    poll_s: float = Field(2.0, gt=0)
    request_timeout_s: float = Field(30.0, gt=0)
