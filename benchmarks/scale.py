"""How validation and planning scale with the number of steps: a pipeline of N steps (each
reads the previous step and the step at half its index, so edges grow with steps) is traced and
validated, checked by the local orchestrator, and planned (one `StepInvocation` built per step,
what an exported pipeline carries). Each size runs in two fresh processes: one timed, one
measuring the peak of Python allocations (tracemalloc, which slows everything down) during
the same phases.

    python benchmarks/scale.py [--sizes 1000,5000,10000]

Target (issue "Faster than hand-written MLflow logging"): 10,000 steps validate and plan in
< 1 s, memory linear in steps. Profile finding (cProfile, 2026-11-30): the topological sort
rescanned every step for every step (O(n^2), 409 s at 10k) and each `alias` re-analysed the
function's signature; both fixed (O(steps + edges), aliases share the analysis).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PIPELINE = textwrap.dedent(
    """
    import os
    import stackwise as sw

    N = int(os.environ["SCALE_STEPS"])

    @sw.step
    def source() -> int:
        return 0

    @sw.step
    def add(x: int, y: int) -> int:
        return x + y

    @sw.pipeline
    def big():
        values = [source()]
        for i in range(1, N):
            values.append(add.alias(f"add_{i}")(values[i - 1], values[i // 2]))
    """
)

MEASURE = textwrap.dedent(
    """
    import json, sys, time, tracemalloc
    from pathlib import Path
    import stackwise
    from stackwise.config import StackConfig
    from stackwise.contract import PipelineRef
    from stackwise.invocations import build_invocation
    from stackwise.orchestrators.local import LocalOrchestrator

    folder = Path(sys.argv[1])
    if sys.argv[2] == "memory":
        tracemalloc.start()
    t0 = time.perf_counter()
    pipeline = stackwise.load_pipeline(f"{folder / 'big.py'}:big")
    t1 = time.perf_counter()
    problems = LocalOrchestrator(StackConfig(base_dir=folder, tracking=False)).validate(pipeline)
    t2 = time.perf_counter()
    ref = PipelineRef(target="big.py", name="big")
    params = pipeline.resolve_params({})
    plan = [build_invocation(pipeline, s, ref=ref, run_id="r", params=params,
                             artifact_root=folder.as_uri()) for s in pipeline.order]
    t3 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"steps": len(pipeline.order), "trace": t1 - t0, "validate": t2 - t1,
                      "plan": t3 - t2, "peak": peak, "problems": len(problems),
                      "planned": len(plan)}))
    """
)


def measure(folder: Path, steps: int) -> dict[str, float]:
    env = {**os.environ, "SCALE_STEPS": str(steps)}

    def once(mode: str) -> dict[str, float]:
        out = subprocess.run([sys.executable, "-c", MEASURE, str(folder), mode], env=env,
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return result

    timed = once("time")
    timed["peak"] = once("memory")["peak"]
    return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="stackwise-scale-") as tmp:
        folder = Path(tmp)
        (folder / "big.py").write_text(PIPELINE)
        rows = [measure(folder, n) for n in sizes]
    print(f"{'steps':>6} {'trace+validate':>15} {'orchestrator':>13} {'plan':>8} {'total':>8} "
          f"{'< 1 s':>6} {'peak MiB':>9} {'KiB/step':>9}")  # fmt: skip
    for row in rows:
        total = row["trace"] + row["validate"] + row["plan"]
        ok = "ok" if total < 1.0 or row["steps"] < 10000 else "short"
        print(f"{row['steps']:>6.0f} {row['trace']:>13.3f} s {row['validate']:>11.3f} s "
              f"{row['plan']:>6.3f} s {total:>6.3f} s {ok:>6} {row['peak'] / 2**20:>9.1f} "
              f"{row['peak'] / 1024 / row['steps']:>9.2f}")  # fmt: skip
    first, last = rows[0], rows[-1]
    growth = (last["peak"] / last["steps"]) / (first["peak"] / first["steps"])
    print(f"memory per step at {last['steps']:.0f} / at {first['steps']:.0f} steps: {growth:.2f} "
          f"(1.0 = linear) {'ok' if growth < 1.5 else 'short'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
