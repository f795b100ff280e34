"""What a Ray cluster can never run, decided from its nodes' resources (no cluster needed),
the `ray:` stack section, and the local backends refusing several workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackwise import Resources
from stackwise.compute.local import LocalBackend
from stackwise.compute.quantities import memory_bytes
from stackwise.compute.ray.feasibility import Demand, problems
from stackwise.config import StackConfig, load_stack
from stackwise.errors import ComputeError, ConfigError, PipelineValidationError

CPU_NODE = {"CPU": 8.0, "memory": 32 * 2**30}
T4_NODE = {"CPU": 8.0, "GPU": 2.0, "memory": 64 * 2**30, "accelerator_type:T4": 1.0}


def test_a_gpu_cluster_takes_what_fits_and_refuses_the_rest() -> None:
    nodes = [CPU_NODE, T4_NODE, T4_NODE]
    assert problems(Demand.of(Resources(gpu=2, gpu_type="T4")), nodes, "PACK") == []
    assert problems(Demand.of(Resources(gpu=1, workers=4)), nodes, "PACK") == []
    (wide,) = problems(Demand.of(Resources(gpu=1, workers=5)), nodes, "PACK")
    assert "asks for 5 workers of 1 CPU, 1 GPU but the Ray cluster can place at most 4" in wide
    assert "3 nodes: 24 CPUs, 4 GPUs, 160.0 GiB memory" in wide
    (typed,) = problems(Demand.of(Resources(gpu=1, gpu_type="A100")), nodes, "PACK")
    assert "GPU type 'A100' but the Ray cluster has T4" in typed
    (big,) = problems(Demand.of(Resources(gpu=3)), nodes, "PACK")
    assert "no node of the Ray cluster has that much" in big


def test_placement_strategies_count_differently() -> None:
    nodes = [CPU_NODE, CPU_NODE]
    demand = Demand.of(Resources(cpu=2, workers=3))
    assert problems(demand, nodes, "PACK") == []
    assert "at most 2" in problems(demand, nodes, "STRICT_SPREAD")[0]
    assert problems(Demand.of(Resources(cpu=2, workers=4)), nodes, "STRICT_PACK") == []
    assert "at most 4" in problems(Demand.of(Resources(cpu=2, workers=5)), nodes, "STRICT_PACK")[0]


def test_demand_becomes_ray_options_and_a_bundle() -> None:
    demand = Demand.of(Resources(cpu=2, memory="1Gi", gpu=1, gpu_type="T4", workers=2))
    assert demand.ray_options() == {
        "num_cpus": 2.0, "num_gpus": 1.0, "memory": 2**30, "accelerator_type": "T4"
    }  # fmt: skip
    assert demand.bundle() == {
        "CPU": 2.0, "GPU": 1.0, "memory": float(2**30), "accelerator_type:T4": 0.001
    }  # fmt: skip
    assert Demand.of(Resources()).ray_options() == {"num_cpus": 1.0, "num_gpus": 0.0}


def test_memory_quantities() -> None:
    assert memory_bytes("512Mi") == 512 * 2**20
    assert memory_bytes("2G") == 2 * 10**9
    assert memory_bytes("1.5Gi") == int(1.5 * 2**30)
    assert memory_bytes("1e3") == 1000
    with pytest.raises(ComputeError, match="not a Kubernetes quantity"):
        memory_bytes("2 GB")


def test_workers_are_declared_once_and_local_backends_refuse_them() -> None:
    with pytest.raises(PipelineValidationError, match="must be >= 1"):
        Resources(workers=0)
    with pytest.raises(PipelineValidationError, match="disagree"):
        import stackwise as sw

        sw.step(workers=2, resources=Resources(workers=3))(lambda: 1)
    (problem,) = LocalBackend().validate(Resources(workers=2), None)
    assert "asks for 2 workers" in problem and "compute='ray'" in problem
    assert LocalBackend().validate(Resources(workers=1), None) == []


def test_the_ray_section_of_the_stack_file_is_checked(project: Path) -> None:
    from stackwise.compute.ray.backend import RayBackend

    (project / "stackwise.yaml").write_text("compute: ray\nray:\n  address: somewhere\n")
    with pytest.raises(ConfigError) as caught:
        RayBackend(load_stack("stackwise.yaml"))
    assert "stackwise.yaml" in caught.value.message and "ray.address" in caught.value.message
    assert "auto, ray://HOST:PORT" in caught.value.message
    (project / "stackwise.yaml").write_text("compute: ray\nray:\n  adress: auto\n")
    with pytest.raises(ConfigError, match="unknown key 'ray.adress'. Did you mean 'address'"):
        RayBackend(load_stack("stackwise.yaml"))
    backend = RayBackend(StackConfig(ray={"address": "ray://head:10001", "autoscaling": True}))
    assert backend.settings.address == "ray://head:10001" and backend.settings.autoscaling
