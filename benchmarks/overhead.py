"""Per-step orchestration overhead of the embedded orchestrator, tracking on and off, next to
the raw cost of recording one MLflow run in the same process.

    python benchmarks/overhead.py [--repeat 5]

Pipelines: a 20-step chain of no-op steps (each passes an int to the next) and a 50-wide
fan-out (one source, 50 no-op steps reading it). Overhead per step = wall time of a whole
run (cache off, after a warm-up run) / number of steps; the steps themselves do nothing, so
everything measured is stackwise plus MLflow. Raw MLflow = create_run + log_batch +
set_terminated on a SQLite store with MLflow's default settings, the three calls stackwise
makes per tracked step, written by hand.

Targets (issue "Faster than hand-written MLflow logging"): tracked overhead per step <= 0.8 x
raw MLflow on the embedded default (`durability: normal`: WAL, synchronous=NORMAL on the store
stackwise owns); untracked overhead <= 1 ms per step. `durability: full` (MLflow's own full
sync) is printed beside it for the trade-off. Profile finding (pyinstrument, 2026-11-30): with
full sync ~80% of a tracked step is SQLite's fsync inside MLflow's three commits.

Profile finding (py-spy, 100-150 untracked chain20 runs, warm-up frames excluded,
2026-11-30). Before: the state store's three SQLAlchemy transactions per step (RUNNING,
outcome, cache entry; ~30% with their row encoding, plus SQLite busy-handler sleeps when the
worker's cache write met the orchestrator's on a second connection), the run index write
(~13%, a mkdir and pathlib per step), load_pipeline_ref (~11%, pathlib per attempt),
step_version (~11%, StepOptions.to_dict's dataclasses.asdict), secrets_for_run (~4%, the
environment scanned 2-3 times per attempt). After: one transaction per turn of the
executor's loop (the outcomes of the steps that finished with the RUNNING of the steps they
release), run on one held connection with statements compiled once (hotwrite.py), and the
runner's cache entry on that same connection; versions, options, refs and the environment's
secrets computed once. What is left per untracked step: ~25% SQLite's own work (two commits),
~15% the hand-offs between the executor thread and the worker thread, the rest pydantic
(invocation, result), the output and run-index files, and JSON. Tracked, ~90% of a step is
MLflow's create_run / log_batch / set_terminated (its create_run alone reads the experiment
and the new run's inputs back); a tracked chain step took the same CPU (26 ms on the loaded
machine) as those three calls made by hand on a WAL store, so what is left there is MLflow's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PIPELINES = textwrap.dedent(
    """
    import stackwise as sw

    @sw.step
    def source() -> int:
        return 0

    @sw.step
    def inc(x: int) -> int:
        return x + 1

    @sw.step
    def leaf(x: int, i: int) -> int:
        return x + i

    @sw.pipeline
    def chain20() -> None:
        value = source()
        for i in range(19):
            value = inc.alias(f"inc_{i}")(value)

    @sw.pipeline
    def fanout50() -> None:
        value = source()
        for i in range(49):
            leaf.alias(f"leaf_{i}")(value, i)
    """
)


def raw_mlflow_ms(folder: Path, runs: int) -> float:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(f"sqlite:///{folder / 'raw.db'}")
    exp = client.create_experiment("raw", artifact_location=(folder / "raw").as_uri())
    samples = []
    for i in range(runs + 5):
        t0 = time.perf_counter()
        run = client.create_run(exp, tags={"mlflow.parentRunId": "x", "k": "v"})
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("m", 1.0, int(time.time() * 1000), 0)],
            params=[Param("p", "1")],
            tags=[RunTag("t", "v")],
        )
        client.set_terminated(run.info.run_id)
        if i >= 5:  # warm-up excluded
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def stackwise_ms(
    folder: Path, name: str, tracking: bool, repeat: int, parallel: int, durability: str = "normal"
) -> float:
    from stackwise.authoring.loader import load_pipeline
    from stackwise.config import StackConfig
    from stackwise.orchestrators.local import LocalOrchestrator

    sub = folder / f"{name}-{'on' if tracking else 'off'}-{durability}"
    sub.mkdir()
    stack = StackConfig(
        base_dir=sub, tracking=tracking, max_parallel=parallel, durability=durability
    )
    orchestrator = LocalOrchestrator(stack)
    pipeline = load_pipeline(f"{folder / 'bench_pipelines.py'}:{name}")
    orchestrator.run(pipeline, use_cache=False)  # warm-up: imports, DB schema, experiment
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        record = orchestrator.run(pipeline, use_cache=False)
        samples.append(time.perf_counter() - t0)
        assert record.status == "SUCCEEDED", record.error
    return statistics.median(samples) * 1000 / len(pipeline.order)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--max-parallel", type=int, default=4)
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="stackwise-bench-") as tmp:
        folder = Path(tmp)
        (folder / "bench_pipelines.py").write_text(PIPELINES)
        raw = raw_mlflow_ms(folder, runs=100)
        rows = []
        for name in ("chain20", "fanout50"):
            off = stackwise_ms(folder, name, False, args.repeat, args.max_parallel)
            on = stackwise_ms(folder, name, True, args.repeat, args.max_parallel)
            full = stackwise_ms(folder, name, True, args.repeat, args.max_parallel, "full")
            rows.append((name, off, on, full))
    print(f"raw MLflow run (create_run + log_batch + set_terminated, default SQLite): {raw:.1f} ms")
    print(f"{'pipeline':<10} {'untracked':>10} {'<= 1 ms':>8} {'tracked':>10} {'/ raw':>6} "
          f"{'<= 0.8':>7} {'full sync':>10} {'/ raw':>6}")  # fmt: skip
    for name, off, on, full in rows:
        print(f"{name:<10} {off:>7.2f} ms {_verdict(off <= 1.0):>8} {on:>7.2f} ms "
              f"{on / raw:>6.2f} {_verdict(on / raw <= 0.8):>7} {full:>7.2f} ms "
              f"{full / raw:>6.2f}")  # fmt: skip
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, max_parallel {args.max_parallel}"
    )
    return 0


def _verdict(ok: bool) -> str:
    return "ok" if ok else "short"


if __name__ == "__main__":
    sys.exit(main())
