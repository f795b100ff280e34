"""The `ray:` section of `stackwise.yaml` (validated here, read through `config.section`)::

    compute: ray
    ray:
      address: ray://head.example:10001   # or auto; absent: start a local Ray in this process
      num_cpus: 8                         # a local start only
      runtime_env: {pip: [xgboost]}       # Ray's runtime environment for every step
      placement_timeout_s: 30             # how long N workers may wait to be placed together
      autoscaling: false                  # true: a request larger than the cluster is not refused
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None, description="auto, ray://HOST:PORT or HOST:PORT; absent: start a local Ray"
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (default: all)")
    num_gpus: int | None = Field(None, ge=0, description="GPUs of a local Ray (default: found)")
    namespace: str | None = Field(None, description="Ray namespace of the job")
    runtime_env: dict[str, Any] | None = Field(
        None, description="Ray runtime environment (pip, env_vars, ...) of every step"
    )
    placement_timeout_s: float = Field(
        30.0, gt=0, description="seconds N workers of a distributed step may wait to be placed"
    )
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="Ray placement strategy of a distributed step's workers"
    )
    autoscaling: bool = Field(
        False, description="the cluster grows on demand: do not refuse what it lacks today"
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value == "auto" or value.startswith("ray://"):
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("give auto, ray://HOST:PORT or HOST:PORT (or drop it for a local Ray)")
        return value
