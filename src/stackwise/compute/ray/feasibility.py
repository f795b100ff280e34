"""Can a Ray cluster ever run a step? Ray leaves a task or placement group that no node can
hold pending forever, without a word; stackwise refuses it before anything runs, naming what
the step asks for and what the cluster has.

Pure functions over the cluster's nodes as Ray reports them (`ray.nodes()`: each alive node's
`Resources`, totals such as `{"CPU": 8.0, "GPU": 1.0, "memory": 3.2e10,
"accelerator_type:T4": 1.0}`), so they are tested without a cluster. The rule: one worker
fits a node when the node's totals cover every amount it asks for; N workers fit when the
nodes can hold N such workers at once (per the placement strategy: PACK and SPREAD may put
several on one node, STRICT_SPREAD one per node, STRICT_PACK all on one node).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from stackwise.compute.quantities import human_bytes, memory_bytes

if TYPE_CHECKING:
    from stackwise.authoring.step import Resources

#: Ray's resource name of an accelerator type (`accelerator_type:T4`, `accelerator_type:A100`).
ACCELERATOR = "accelerator_type:{}"


@dataclasses.dataclass(frozen=True)
class Demand:
    """What one worker of a step asks Ray for, and how many workers."""

    cpu: float = 1.0
    gpu: float = 0.0
    memory: int = 0  # bytes
    accelerator: str | None = None
    workers: int = 1

    @classmethod
    def of(cls, resources: Resources) -> Demand:
        """Ray's reading of `Resources`: one CPU when none is declared (Ray's own default
        for a task). Raises ComputeError for a memory that is not a Kubernetes quantity."""
        return cls(
            cpu=float(resources.cpu) if resources.cpu is not None else 1.0,
            gpu=float(resources.gpu or 0),
            memory=memory_bytes(resources.memory) if resources.memory else 0,
            accelerator=resources.gpu_type,
            workers=resources.workers or 1,
        )

    def ray_options(self) -> dict[str, object]:
        """Options of `ray.remote(...).options(...)` for one worker."""
        options: dict[str, object] = {"num_cpus": self.cpu, "num_gpus": self.gpu}
        if self.memory:
            options["memory"] = self.memory
        if self.accelerator:
            options["accelerator_type"] = self.accelerator
        return options

    def bundle(self) -> dict[str, float]:
        """One placement-group bundle (a worker's share)."""
        bundle = {"CPU": self.cpu}
        if self.gpu:
            bundle["GPU"] = self.gpu
        if self.memory:
            bundle["memory"] = float(self.memory)
        if self.accelerator:
            bundle[ACCELERATOR.format(self.accelerator)] = 0.001
        return bundle

    def describe(self) -> str:
        parts = [f"{self.cpu:g} CPU"]
        if self.gpu:
            typed = f" ({self.accelerator})" if self.accelerator else ""
            parts.append(f"{self.gpu:g} GPU{typed}")
        if self.memory:
            parts.append(human_bytes(self.memory))
        return ", ".join(parts)


def workers_per_node(demand: Demand, node: Mapping[str, float]) -> int:
    """How many workers of `demand` one node can hold at once."""
    need = {"CPU": demand.cpu, "GPU": demand.gpu, "memory": float(demand.memory)}
    if demand.accelerator and node.get(ACCELERATOR.format(demand.accelerator), 0) <= 0:
        return 0
    counts = [math.floor(node.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v > 0]
    return min(counts) if counts else demand.workers


def problems(demand: Demand, nodes: Sequence[Mapping[str, float]], strategy: str) -> list[str]:
    """Why the cluster with these nodes can never run the step (empty: it can)."""
    what = describe_cluster(nodes)
    if demand.gpu and not any(n.get("GPU", 0) for n in nodes):
        return [
            f"asks for {demand.gpu:g} GPU(s) per worker but the Ray cluster has none ({what}); "
            "add GPU nodes, run it with compute='kubernetes', or drop resources.gpu."
        ]
    if demand.accelerator and not any(
        n.get(ACCELERATOR.format(demand.accelerator), 0) for n in nodes
    ):
        types = sorted({k.split(":", 1)[1] for n in nodes for k in n if k.startswith("accel")})
        return [
            f"asks for GPU type {demand.accelerator!r} but the Ray cluster has "
            f"{', '.join(types) or 'no typed accelerators'} ({what}); change resources.gpu_type."
        ]
    fits = [workers_per_node(demand, n) for n in nodes]
    if not any(fits):
        return [
            f"asks for {demand.describe()} per worker but no node of the Ray cluster has that "
            f"much ({what}); lower resources or add bigger nodes."
        ]
    if strategy == "STRICT_SPREAD":
        room = sum(min(f, 1) for f in fits)
    elif strategy == "STRICT_PACK":
        room = max(fits)
    else:
        room = sum(fits)
    if room < demand.workers:
        return [
            f"asks for {demand.workers} workers of {demand.describe()} but the Ray cluster can "
            f"place at most {room} at once ({what}, strategy {strategy}); lower workers or add "
            "nodes."
        ]
    return []


def describe_cluster(nodes: Sequence[Mapping[str, float]]) -> str:
    """`1 node: 2 CPUs, no GPU, 11.2 GiB memory`."""
    cpus = sum(n.get("CPU", 0.0) for n in nodes)
    gpus = sum(n.get("GPU", 0.0) for n in nodes)
    memory = sum(n.get("memory", 0.0) for n in nodes)
    gpu_text = f"{gpus:g} GPUs" if gpus else "no GPU"
    count = f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}"
    return f"{count}: {cpus:g} CPUs, {gpu_text}, {human_bytes(memory)} memory"
