"""Wall time and intervals per second of a backfill of 365 daily intervals of a small 3-step
pipeline, tracking on (MLflow on SQLite), for --parallel 1 and --parallel 2, next to the raw
MLflow floor measured in the same process.

    python benchmarks/backfill.py [--days 365]

Each interval is one MLflow parent run plus one child run per step (3 tracked calls each), and
its own state-store record and ledger row. The floor is what MLflow alone costs for the same
records; what is left is stackwise. Airflow 3 took ~2.2 s per daily interval for a three-task
no-op DAG on this kind of machine (shared/design/environment.md).

Targets (issue "Faster than hand-written MLflow logging"): per interval <= 1.0 x the MLflow
floor (measured on MLflow's default SQLite settings) and >= 40 x faster than Airflow;
--parallel 2 >= 1.3 x faster than --parallel 1 on the embedded stores. Each printed with
ok/short, plus the count of intervals that succeeded (nothing skipped).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PIPELINE = textwrap.dedent(
    """
    import stackwise as sw

    @sw.step
    def extract(ctx: sw.StepContext) -> dict:
        return {"day": ctx.data_interval_start.isoformat(), "rows": 100}

    @sw.step
    def transform(batch: dict) -> dict:
        return {**batch, "rows": batch["rows"] * 2}

    @sw.step
    def load(batch: dict) -> int:
        return batch["rows"]

    @sw.pipeline(schedule=sw.Schedule("@daily", start="2025-01-01"))
    def daily() -> None:
        load(transform(extract()))
    """
)
AIRFLOW_S_PER_INTERVAL = 2.2


def mlflow_floor_s(folder: Path, intervals: int) -> float:
    """What MLflow alone costs for one interval's records: four runs (one parent, three
    children), each create_run + log_batch + set_terminated, timed over a sample."""
    from mlflow import MlflowClient
    from mlflow.entities import Param, RunTag

    client = MlflowClient(f"sqlite:///{folder / 'floor.db'}")
    exp = client.create_experiment("floor", artifact_location=(folder / "floor").as_uri())
    sample = min(intervals, 40)
    t0 = time.perf_counter()
    for _ in range(sample):
        parent = client.create_run(exp, tags={"k": "v"})
        for parent_of in (None, parent.info.run_id, parent.info.run_id, parent.info.run_id):
            run = (
                parent
                if parent_of is None
                else client.create_run(exp, tags={"mlflow.parentRunId": parent_of})
            )
            client.log_batch(run.info.run_id, params=[Param("p", "1")], tags=[RunTag("t", "v")])
            client.set_terminated(run.info.run_id)
    return (time.perf_counter() - t0) / sample


def backfill_s(folder: Path, parallel: int, days: int) -> tuple[float, int]:
    from stackwise.authoring.loader import load_pipeline
    from stackwise.config import StackConfig
    from stackwise.orchestrators.local import LocalOrchestrator
    from stackwise.scheduling.backfill import Backfill, intervals_in_range

    sub = folder / f"parallel{parallel}"
    sub.mkdir()
    orchestrator = LocalOrchestrator(StackConfig(base_dir=sub))
    pipeline = load_pipeline(f"{folder / 'bench_daily.py'}:daily")
    assert pipeline.schedule is not None
    orchestrator.preflight(pipeline)  # open the stores first, as the CLI does
    end = pipeline.schedule.start_at.date().toordinal() + days - 1
    import datetime as dt

    last = dt.date.fromordinal(end).isoformat()
    intervals = intervals_in_range(pipeline.schedule, "2025-01-01", last)
    job = Backfill(orchestrator, pipeline, {}, intervals, parallel=parallel)
    t0 = time.perf_counter()
    outcomes = job.run()
    elapsed = time.perf_counter() - t0
    ok = sum(1 for o in outcomes if o.status == "SUCCEEDED")
    for o in outcomes:
        if o.status != "SUCCEEDED":  # nothing may be skipped: say what went wrong
            print(f"parallel {parallel}: {o.interval.logical_date:%Y-%m-%d} {o.status} "
                  f"{o.reason}: {o.error}", file=sys.stderr)  # fmt: skip
    return elapsed, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="stackwise-backfill-") as tmp:
        folder = Path(tmp)
        (folder / "bench_daily.py").write_text(PIPELINE)
        floor = mlflow_floor_s(folder, args.days)
        rows = [(p, *backfill_s(folder, p, args.days)) for p in (1, 2)]
    print(f"MLflow floor per interval (1 parent + 3 child runs): {floor * 1000:.0f} ms")
    print(f"{'parallel':>8} {'wall':>9} {'ok':>5} {'intervals/s':>12} {'per interval':>13} "
          f"{'vs floor':>9} {'<= 1.0':>7} {'vs Airflow':>11} {'>= 40':>6}")  # fmt: skip
    for parallel, wall, ok in rows:
        per = wall / args.days
        rate = args.days / wall
        faster = AIRFLOW_S_PER_INTERVAL / per
        print(f"{parallel:>8} {wall:>8.1f}s {ok:>5} {rate:>12.2f} {per * 1000:>10.0f} ms "
              f"{per / floor:>8.2f}x {_verdict(per / floor <= 1.0):>7} {faster:>10.1f}x "
              f"{_verdict(faster >= 40):>6}")  # fmt: skip
    speedup = rows[0][1] / rows[1][1]
    print(f"--parallel 2 vs 1: {speedup:.2f}x faster (target >= 1.3: {_verdict(speedup >= 1.3)})")
    return 0 if all(ok == args.days for _, _, ok in rows) else 1


def _verdict(ok: bool) -> str:
    return "ok" if ok else "short"


if __name__ == "__main__":
    sys.exit(main())
