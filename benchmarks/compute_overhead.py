"""Per-step overhead of the compute backends `local`, `subprocess` and `ray`, side by side in
one run, and the speed-up of a 2-worker Ray step over a 1-worker one on a CPU-bound workload.

    python benchmarks/compute_overhead.py [--steps 8] [--repeat 2] [--work 6]

Overhead: a chain of `--steps` no-op steps (each passes an int to the next), run by the local
orchestrator with every step on one backend, tracking off (so the figure is the backend's)
and on (MLflow on SQLite, as users run it); wall time of a whole run (cache off, after a
warm-up run) / steps, best of `--repeat`. Ray runs on a local Ray started once here (its
start-up is printed apart). Speed-up: one step hashing `--work` million blocks, split by rank
(`ctx.shard`), with workers=1 (a Ray task) and workers=2 (two actors in a placement group):
the run's wall time (actor start-up included) and the step's own duration (rank 0's, from
loading its inputs to its result, waiting for rank 1 included).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

PIPELINES = textwrap.dedent(
    """
    import hashlib
    import stackwise as sw

    @sw.step
    def source() -> int:
        return 0

    @sw.step
    def inc(x: int) -> int:
        return x + 1

    def chain(n: int) -> sw.Pipeline:
        @sw.pipeline(name=f"chain{n}")
        def build() -> None:
            value = source()
            for i in range(n - 1):
                value = inc.alias(f"inc_{i}")(value)
        return build

    def hashing(workers: int) -> sw.Pipeline:
        @sw.step(compute="ray", workers=workers, resources=sw.Resources(cpu=1))
        def crunch(blocks: int, ctx: sw.StepContext) -> int:
            digest = b""
            for i in ctx.shard(range(blocks)):
                digest = hashlib.sha256(digest + i.to_bytes(8, "little")).digest()
            return len(digest)

        @sw.pipeline(name=f"hash{workers}")
        def build(blocks: int = 1000) -> None:
            crunch(blocks)
        return build
    """
)


def _setup(folder: Path, steps: int) -> None:
    text = PIPELINES + f"\nCHAIN = chain({steps})\nHASH1 = hashing(1)\nHASH2 = hashing(2)\n"
    (folder / "bench_pipes.py").write_text(text)


def _run(folder: Path, name: str, compute: str, tracking: bool, **params: int) -> float:
    return _run_record(folder, name, compute, tracking, **params)[0]


def _run_record(
    folder: Path, name: str, compute: str, tracking: bool, **params: int
) -> tuple[float, Any]:
    import stackwise
    from stackwise.config import StackConfig
    from stackwise.orchestrators.local import LocalOrchestrator

    stack = StackConfig(base_dir=folder, compute=compute, tracking=tracking, max_parallel=1)
    pipeline = stackwise.load_pipeline(f"{folder / 'bench_pipes.py'}:{name}")
    started = time.perf_counter()
    run = LocalOrchestrator(stack).run(pipeline, params or None, use_cache=False)
    elapsed = time.perf_counter() - started
    if run.status != "SUCCEEDED":
        sys.exit(f"{name} on {compute} failed: {run.error}")
    return elapsed, run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", type=float, default=20.0, help="million sha256 blocks")
    args = parser.parse_args()

    import ray

    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        os.environ["STACKWISE_CACHE_DIR"] = str(folder / "cache")
        _setup(folder, args.steps)
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"local Ray start-up: {time.perf_counter() - started:.1f} s (once per process)")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")

        print(f"\nper-step overhead, chain of {args.steps} no-op steps (ms/step, best of "
              f"{args.repeat}, after a warm-up run):")  # fmt: skip
        print(f"{'compute':<12}{'tracking off':>14}{'tracking on':>14}")
        figures: dict[tuple[str, bool], float] = {}
        for compute in ("local", "subprocess", "ray"):
            for tracking in (False, True):
                _run(folder, "CHAIN", compute, tracking)  # warm-up
                best = min(_run(folder, "CHAIN", compute, tracking) for _ in range(args.repeat))
                figures[compute, tracking] = best / args.steps * 1000
            print(f"{compute:<12}{figures[compute, False]:>14.0f}{figures[compute, True]:>14.0f}")
        base = figures["local", False]
        sub, on_ray = figures["subprocess", False] / base, figures["ray", False] / base
        print(f"ratios to local (tracking off): subprocess x{sub:.1f}, ray x{on_ray:.1f}")

        blocks = int(args.work * 1_000_000)
        print(f"\nCPU-bound step on Ray ({blocks:,} sha256 blocks, split by rank):")
        _run(folder, "HASH1", "local", False, blocks=10_000)  # warm-up: workers and imports
        one, run1 = _run_record(folder, "HASH1", "local", False, blocks=blocks)
        two, run2 = _run_record(folder, "HASH2", "local", False, blocks=blocks)
        step1, step2 = run1.steps["crunch"].duration_s, run2.steps["crunch"].duration_s
        print(f"{'':<12}{'run wall':>10}{'in the step':>13}")
        print(f"{'workers=1':<12}{one:>9.1f}s{step1:>12.1f}s")
        print(f"{'workers=2':<12}{two:>9.1f}s{step2:>12.1f}s")
        print(f"speed-up x{one / two:.2f} (run wall, actor start-up included), "
              f"x{step1 / step2:.2f} (in the step)")  # fmt: skip
        print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share the CPUs)")
        ray.shutdown()


if __name__ == "__main__":
    main()
