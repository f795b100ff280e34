"""Wall time and intervals per second of a backfill of 365 daily intervals of a small 3-step
pipeline, tracking on (MLflow on SQLite), for --parallel 1 and --parallel 2, next to the raw
MLflow floor measured in the same process.

    python benchmarks/backfill.py [--days 365] [--repeat 3] [--threads]
        [--server [--gunicorn] [--server-workers 4] [--synchronous-commit on|off]]

`--server` tracks to a real `mlflow server` whose backend store is a fresh PostgreSQL database
(127.0.0.1:5432, trust auth), with the state store in another fresh database; both are dropped
at the end (benchmarks/mlflow_server.py). The server runs `--server-workers` workers (4), its
job runners off, under uvicorn (MLflow's default) or, with `--gunicorn`, gunicorn's sync
workers; `--synchronous-commit off` sets PostgreSQL's on the server's own connections (the
state store keeps the default). It prints, per sample, the
busiest server worker's share of the server's CPU. Finding (2026-11-30): under uvicorn a
client's keep-alive connection stays with the worker that accepted it, and the backfill's two
processes often landed on one worker, which then served both intervals at once (`--parallel 2`
samples of 53.8, 38.4 and 57.2 s with shares 0.99, 0.53 and 0.99); gunicorn's sync workers
take one request per connection, so every request goes to an idle worker (33.3-35.8 s,
shares 0.27-0.28). Since then stackwise lets the connection go after each pipeline run
(stackwise.tracking.reconnect): under uvicorn the shares fell to 0.35-0.45 in every sample.
With `--server` each round also measures what MLflow alone gains from a second client of that
server (benchmarks/floor_pair.py: the floor's records written by two processes at once over
one), the bound for `--parallel 2` vs 1 there: on 2 cores that also run the server and
PostgreSQL its median was 1.38-1.56x on 2026-11-30 with 4 workers, 1.53x with 2 gunicorn
workers and 1.67-1.70x with 2 and synchronous_commit=off (floor_pair.py has why), and two
independent `--parallel 1` backfills at once gained 1.47-1.49x: the 1.7x target sits above
what this machine usually allows. stackwise's `--parallel 2` got 0.96-0.99 of the pair's gain
with durable commits, 0.83-0.85 with synchronous_commit=off.
`--threads` runs `--parallel 2` on threads of this process instead of worker processes (what
a pipeline without a loadable reference gets), for comparison.

Each interval is one MLflow parent run plus one child run per step (3 tracked calls each), and
its own state-store record and ledger row. The floor is what MLflow alone costs for the same
records; what is left is stackwise. Airflow 3 took ~2.2 s per daily interval for a three-task
no-op DAG on this kind of machine (shared/design/environment.md).

The machine this runs on can change speed from one minute to the next (seen here: the same
pure-Python loop took 0.17 s, then 0.38 s a few minutes later), so each figure is the median
of `--repeat` samples taken in turns (floor, --parallel 1, --parallel 2, floor, ...), and
every ratio compares medians of the same run.

Targets (issue "Faster than hand-written MLflow logging"): per interval <= 1.0 x the MLflow
floor (measured on MLflow's default SQLite settings) and >= 40 x faster than Airflow;
--parallel 2 >= 1.3 x faster than --parallel 1 on the embedded stores, >= 1.7 x with a tracking
server on PostgreSQL. Each printed with ok/short, plus the count of intervals that succeeded
(nothing skipped) and whether the intervals ran on worker processes or threads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from floor_pair import pair_speedup
from mlflow_server import ServerSetup, busiest_share, postgres_server

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


def mlflow_floor_s(
    uri: str, folder: Path, intervals: int, sample_no: int | str = 0, cap: int = 40
) -> float:
    """What MLflow alone costs for one interval's records: four runs (one parent, three
    children), each create_run + log_batch + set_terminated, timed over a sample of at most
    `cap` intervals; seconds per interval."""
    from mlflow import MlflowClient
    from mlflow.entities import Param, RunTag

    client = MlflowClient(uri)
    exp = client.create_experiment(
        f"floor-{sample_no}", artifact_location=(folder / f"floor-{sample_no}").as_uri()
    )
    sample = min(intervals, cap)
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


def backfill_s(
    folder: Path, parallel: int, days: int, config: dict[str, Any], processes: bool, sample: int
) -> tuple[float, int, str, float, int, int, float]:
    import datetime as dt

    from stackwise.authoring.loader import load_pipeline
    from stackwise.config import StackConfig
    from stackwise.orchestrators.local import LocalOrchestrator
    from stackwise.scheduling.backfill import Backfill, intervals_in_range

    sub = folder / f"parallel{parallel}-{sample}"
    sub.mkdir()
    orchestrator = LocalOrchestrator(StackConfig(**config, base_dir=sub))
    pipeline = load_pipeline(f"{folder / 'bench_daily.py'}:daily")
    assert pipeline.schedule is not None
    orchestrator.preflight(pipeline)  # open the stores first, as the CLI does
    end = pipeline.schedule.start_at.date().toordinal() + days - 1
    last = dt.date.fromordinal(end).isoformat()
    intervals = intervals_in_range(pipeline.schedule, "2025-01-01", last)
    job = Backfill(orchestrator, pipeline, {}, intervals, parallel=parallel)
    job.processes = None if processes else False
    busy0, cpu0, t0 = _machine_jiffies(), _cpu_s(), time.perf_counter()
    outcomes = job.run()
    elapsed = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    busy = _busy_cores(busy0, _machine_jiffies())
    ok = sum(1 for o in outcomes if o.status == "SUCCEEDED")
    for o in outcomes:
        if o.status != "SUCCEEDED":  # nothing may be skipped: say what went wrong
            print(f"parallel {parallel}: {o.interval.logical_date:%Y-%m-%d} {o.status} "
                  f"{o.reason}: {o.error}", file=sys.stderr)  # fmt: skip
    for warning in job.warnings:
        print(f"parallel {parallel}: warning: {warning}", file=sys.stderr)
    runs, ledger = _records(orchestrator, job)
    orchestrator.close()
    return elapsed, ok, job.mode, cpu, runs, ledger, busy


def _records(orchestrator: Any, job: Any) -> tuple[int, int]:
    """What was written, counted in the stores after the backfill: MLflow runs of the
    pipeline's experiment (parents and children) and the ledger's SUCCEEDED rows."""
    from mlflow import MlflowClient

    client = MlflowClient(orchestrator.stack.tracking_uri_resolved)
    experiment = client.get_experiment_by_name(orchestrator.stack.experiment or job.pipeline.name)
    runs, token = 0, None
    while experiment is not None:
        page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
        runs += len(page)
        token = page.token
        if not token:
            break
    return runs, len(job.ledger.rows(job.pipeline.name, status="SUCCEEDED"))


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (/proc/stat's first
    line; busy = all but idle and iowait): counts what an mlflow server and PostgreSQL use too."""
    with open("/proc/stat") as fh:
        ticks = [int(v) for v in fh.readline().split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return sum(ticks) - idle, sum(ticks)


def _busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How many of the machine's cores were busy on average between two readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total * (os.cpu_count() or 1) if total else 0.0


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that ended (the workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--server", action="store_true", help="mlflow server on PostgreSQL")
    parser.add_argument("--gunicorn", action="store_true",
                        help="with --server: serve with gunicorn's sync workers")  # fmt: skip
    parser.add_argument("--server-workers", type=int, default=4, help="with --server")
    parser.add_argument("--synchronous-commit", choices=("on", "off"), default="on",
                        help="with --server: on the server's connections")  # fmt: skip
    parser.add_argument("--threads", action="store_true", help="--parallel 2 on threads")
    parser.add_argument("--repeat", type=int, default=3, help="samples of each, alternated")
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run ..."
    setup = ServerSetup(args.gunicorn, args.server_workers, args.synchronous_commit)
    with tempfile.TemporaryDirectory(prefix="stackwise-backfill-") as tmp:
        folder = Path(tmp)
        (folder / "bench_daily.py").write_text(PIPELINE)
        with contextlib.ExitStack() as stack:
            if args.server:
                uri, state_db, workers_cpu = stack.enter_context(postgres_server(folder, setup))

                def floor_s(i: int) -> float:
                    return mlflow_floor_s(uri, folder, args.days, i)

                def config(p: int, i: int) -> dict[str, Any]:
                    return {"tracking_uri": uri, "experiment": f"daily-p{p}-{i}",
                            "state_store": state_db(f"{p}_{i}")}  # fmt: skip
            else:

                def floor_s(i: int) -> float:
                    uri = f"sqlite:///{folder / f'floor{i}.db'}"
                    return mlflow_floor_s(uri, folder, args.days, i)

                def config(p: int, i: int) -> dict[str, Any]:
                    return {}

                def workers_cpu() -> dict[int, float]:
                    return {}

            floors, samples, shares, pairs = [], [], [], []
            for i in range(args.repeat):  # alternated: a machine that slows down slows all
                floors.append(floor_s(i))
                if args.server:  # what MLflow alone gains from a second client here
                    pairs.append(pair_speedup(uri, folder, min(args.days, 40), f"pair{i}"))
                for p in (1, 2):
                    before = workers_cpu()
                    sample = backfill_s(folder, p, args.days, config(p, i), not args.threads, i)
                    samples.append((p, *sample))
                    shares.append((p, busiest_share(before, workers_cpu())))
    floor = statistics.median(floors)
    rows = [_median_row([s for s in samples if s[0] == p]) for p in (1, 2)]
    where = f"an mlflow server on PostgreSQL ({setup.describe()})"
    where = where if args.server else "the embedded stores"
    print(f"stores: {where}")
    print(f"MLflow floor per interval (1 parent + 3 child runs): {floor * 1000:.0f} ms")
    print(f"{'parallel':>8} {'wall':>9} {'ok':>5} {'intervals/s':>12} {'per interval':>13} "
          f"{'vs floor':>9} {'<= 1.0':>7} {'vs Airflow':>11} {'>= 40':>6} {'cpu':>7} "
          f"{'busy':>5} {'runs':>6} {'ledger':>6}  ran on")  # fmt: skip
    for parallel, wall, ok, mode, cpu, runs, ledger, busy in rows:
        per = wall / args.days
        rate = args.days / wall
        faster = AIRFLOW_S_PER_INTERVAL / per
        print(f"{parallel:>8} {wall:>8.1f}s {ok:>5} {rate:>12.2f} {per * 1000:>10.0f} ms "
              f"{per / floor:>8.2f}x {_verdict(per / floor <= 1.0):>7} {faster:>10.1f}x "
              f"{_verdict(faster >= 40):>6} {cpu:>6.1f}s {busy:>5.2f} {runs:>6} {ledger:>6}  "
              f"{mode}")  # fmt: skip
    speedup = rows[0][1] / rows[1][1]
    target = 1.7 if args.server else 1.3
    cores = os.cpu_count() or 1
    print(f"--parallel 2 vs 1: {speedup:.2f}x faster "
          f"(target >= {target}: {_verdict(speedup >= target)}); at most {cores / rows[0][7]:.2f}x "
          f"on this machine: --parallel 1 kept {rows[0][7]:.2f} of its {cores} cores "
          "busy")  # fmt: skip
    if pairs:
        pair = statistics.median(pairs)
        print(f"MLflow alone: the floor's records written by two processes at once went "
              f"{pair:.2f}x as fast as by one (samples "
              f"{' '.join(f'{x:.2f}' for x in pairs)}): the bound to read --parallel 2 vs 1 "
              f"against here (benchmarks/floor_pair.py); stackwise got {speedup / pair:.2f} "
              "of it")  # fmt: skip
    for p in (1, 2):
        walls = " ".join(f"{s[1]:.1f}" for s in samples if s[0] == p)
        print(f"--parallel {p} samples (wall s, in order): {walls}")
        if args.server:
            held = " ".join(f"{share:.2f}" for q, share in shares if q == p)
            print(f"  busiest server worker's share of the server's CPU, per sample: {held}")
    print("floor samples (ms): " + " ".join(f"{f * 1000:.0f}" for f in floors))
    print("(cpu: CPU time of the backfill and its worker processes. busy: cores of the machine "
          "busy on average, whoever used them (an mlflow server and PostgreSQL included). "
          "runs: MLflow runs recorded, 4 per interval; ledger: intervals the "
          "ledger holds SUCCEEDED: nothing skipped when they equal 4 x and 1 x the "
          "intervals)")  # fmt: skip
    complete = [(row[2], row[5], row[6]) == (args.days, 4 * args.days, args.days) for row in rows]
    return 0 if all(complete) else 1


def _median_row(samples: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The sample of median wall time (so its counts and mode are its own), with the fewest
    intervals that succeeded and records written of all samples: nothing may be skipped in
    any of them."""
    ordered = sorted(samples, key=lambda s: s[1])
    parallel, wall, _ok, mode, cpu, _runs, _ledger, busy = ordered[(len(ordered) - 1) // 2]
    worst = min(samples, key=lambda s: (s[2], s[5], s[6]))
    return parallel, wall, worst[2], mode, cpu, worst[5], worst[6], busy


def _verdict(ok: bool) -> str:
    return "ok" if ok else "short"


if __name__ == "__main__":
    sys.exit(main())
