"""Kill -9 soak: SIGKILL a backfill at random moments until it completes, then check that the
records agree; and start two backfills at once in fresh projects.

    python benchmarks/soak.py [--kills 100] [--intervals 365] [--parallel 2]
                              [--store sqlite|postgres|both] [--races 10] [--compute local]

Prints, per store: kills, intervals done and missing, MLflow runs left RUNNING, intervals with
more than one MLflow parent run, overlapping executions of one step of one interval, and
unusable stores (a later `stackwise runs list` fails). The CI runs a short form
(tests/soak/test_soak.py) and requires every problem count to be 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

PG = "postgresql://postgres@127.0.0.1:5432"
START = dt.date(2025, 1, 1)

PIPELINE = """
import os
import pathlib
import time

import stackwise as sw

LOG = pathlib.Path(__file__).parent / "executions.log"


def _mark(ctx, what):
    with LOG.open("a") as fh:
        fh.write(f"{ctx.logical_date.isoformat()} {ctx.step} {os.getpid()} {what} {time.time()}\\n")


@sw.step(compute=COMPUTE)
def extract(ctx: sw.StepContext) -> int:
    _mark(ctx, "start")
    time.sleep(0.02)
    _mark(ctx, "end")
    return ctx.logical_date.day


@sw.step(compute=COMPUTE)
def transform(x: int, ctx: sw.StepContext) -> int:
    _mark(ctx, "start")
    time.sleep(0.02)
    _mark(ctx, "end")
    return x * 2


@sw.step(compute=COMPUTE)
def load(y: int, ctx: sw.StepContext) -> dict:
    _mark(ctx, "start")
    sw.log_metric("value", y)
    _mark(ctx, "end")
    return {"value": y}


@sw.pipeline(schedule=sw.Schedule("@daily", start="2025-01-01", max_active_runs=16))
def soak():
    load(transform(extract()))
"""


@dataclasses.dataclass
class Report:
    store: str
    kills: int = 0
    intervals: int = 0
    done: int = 0
    missing: int = 0
    running_left: int = 0
    duplicate_parents: int = 0
    overlaps: int = 0
    unusable: int = 0
    race_rounds: int = 0
    race_failures: int = 0
    seconds: float = 0.0

    @property
    def problems(self) -> int:
        return (self.missing + self.running_left + self.duplicate_parents + self.overlaps
                + self.unusable + self.race_failures)  # fmt: skip

    def line(self) -> str:
        return (
            f"{self.store:8s} kills {self.kills:4d}  intervals {self.done}/{self.intervals} "
            f"done, {self.missing} missing  RUNNING left {self.running_left}  duplicate parents "
            f"{self.duplicate_parents}  overlapping executions {self.overlaps}  unusable stores "
            f"{self.unusable}  first-start races {self.race_rounds - self.race_failures}/"
            f"{self.race_rounds} ok  ({self.seconds:.0f} s)"
        )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


_DATABASES: list[str] = []


def _project(root: Path, store: str, compute: str) -> Path:
    root.mkdir(parents=True)
    source = PIPELINE.replace("COMPUTE", repr(None if compute == "local" else compute))
    (root / "soak_pipe.py").write_text(textwrap.dedent(source))
    if store == "postgres":
        name = "soak_" + uuid.uuid4().hex[:10]
        for db in (name, name + "_mlflow"):
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
            _DATABASES.append(db)
        (root / "stackwise.yaml").write_text(
            f"state_store: {PG}/{name}\ntracking_uri: {PG}/{name}_mlflow\n"
        )
    return root


def _backfill(root: Path, end: dt.date, parallel: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "stackwise", "backfill", "soak_pipe.py:soak", "--start",
           START.isoformat(), "--end", end.isoformat(), "--parallel", str(parallel),
           "--json"]  # fmt: skip
    log = (root / "backfill.log").open("ab")
    return subprocess.Popen(cmd, cwd=root, env=_env(), stdout=log, stderr=log,
                            start_new_session=True)  # fmt: skip


def soak(
    workdir: Path, store: str, kills: int, intervals: int, parallel: int, compute: str,
    rng: random.Random,
) -> Report:  # fmt: skip
    """SIGKILL the backfill (its whole process group) `kills` times, then let it finish. A
    backfill that completes before its kill was due gets `intervals // 2` more intervals (at
    least one) to be killed in, so every kill lands; the report counts them all."""
    report = Report(store, intervals=intervals)
    root = _project(workdir / f"soak-{store}", store, compute)
    end = START + dt.timedelta(days=intervals - 1)
    started = time.monotonic()
    finishes = 0
    while True:
        proc = _backfill(root, end, parallel)
        if report.kills < kills:
            time.sleep(rng.uniform(0.2, 4.0))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                report.kills += 1
                continue
            if proc.returncode == 0:  # done before the kill: more intervals to kill it in
                more = max(1, intervals // 2)
                end += dt.timedelta(days=more)
                report.intervals += more
                continue
        finishes += 1  # no more kills: it must complete (rerun once if an interval failed)
        if proc.wait(3600) == 0 or finishes >= 3:
            break
    report.seconds = time.monotonic() - started
    _check(root, report, report.intervals)
    return report


def _check(root: Path, report: Report, intervals: int) -> None:
    from stackwise.config import load_stack
    from stackwise.orchestrators.local.state import StateStore
    from stackwise.scheduling.ledger import IntervalLedger

    stack = load_stack(root / "stackwise.yaml") if (root / "stackwise.yaml").exists() else None
    if stack is None:
        from stackwise.config import StackConfig

        stack = StackConfig(base_dir=root)
    listed = subprocess.run([sys.executable, "-m", "stackwise", "runs", "list", "--json"],
                            cwd=root, env=_env(), capture_output=True, timeout=300)  # fmt: skip
    report.unusable += int(listed.returncode != 0)
    rows = IntervalLedger(StateStore(stack.state_store_resolved, root)).rows("soak")
    report.done = sum(1 for r in rows.values() if r.status == "SUCCEEDED")
    report.missing = intervals - report.done
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(stack.tracking_uri_resolved)
    experiment = client.get_experiment_by_name("soak")
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ACTIVE_ONLY,
                              max_results=50000) if experiment else []  # fmt: skip
    report.running_left = sum(1 for r in runs if r.info.status == "RUNNING")
    per_interval: dict[str, int] = {}
    for run in runs:
        if run.data.tags.get("stackwise.run_kind") == "pipeline":
            key = run.data.tags.get("stackwise.logical_date", "")
            per_interval[key] = per_interval.get(key, 0) + 1
    report.duplicate_parents = sum(1 for n in per_interval.values() if n > 1)
    report.overlaps = _overlaps(root / "executions.log")


def _overlaps(log: Path) -> int:
    """Executions of one step of one interval whose [start, end] overlap in time."""
    spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
    open_: dict[tuple[str, str, str], float] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split()
        if len(parts) != 5:
            continue  # a line cut by a kill
        date, step, pid, what, at = parts
        if what == "start":
            open_[(date, step, pid)] = float(at)
        elif (date, step, pid) in open_:
            spans.setdefault((date, step), []).append((open_.pop((date, step, pid)), float(at)))
    for (date, step, _pid), began in open_.items():  # killed mid-step: ran until the kill
        spans.setdefault((date, step), []).append((began, began + 0.02))
    count = 0
    for runs in spans.values():
        runs.sort()
        count += sum(1 for a, b in zip(runs, runs[1:], strict=False) if b[0] < a[1])
    return count


def races(workdir: Path, store: str, rounds: int, compute: str) -> tuple[int, int]:
    """Two backfills started at the same moment in a fresh project, `rounds` times."""
    failures = 0
    for i in range(rounds):
        root = _project(workdir / f"race-{store}-{i}", store, compute)
        end = START + dt.timedelta(days=2)
        procs = [_backfill(root, end, 1) for _ in range(2)]
        codes = [p.wait(600) for p in procs]
        listed = subprocess.run([sys.executable, "-m", "stackwise", "runs", "list"], cwd=root,
                                env=_env(), capture_output=True, timeout=300)  # fmt: skip
        usable = listed.returncode == 0
        failures += int(any(codes) or not usable)
    return rounds, failures


def main(argv: list[str] | None = None) -> list[Report]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--intervals", type=int, default=365)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--races", type=int, default=10)
    parser.add_argument("--compute", choices=("local", "subprocess"), default="local")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    rng = random.Random(args.seed)
    reports = []
    with tempfile.TemporaryDirectory(prefix="stackwise-soak-") as tmp:
        workdir = args.workdir or Path(tmp)
        try:
            for store in stores:
                report = soak(workdir, store, args.kills, args.intervals, args.parallel,
                              args.compute, rng)  # fmt: skip
                report.race_rounds, report.race_failures = races(
                    workdir, store, args.races, args.compute
                )
                print(report.line(), flush=True)
                reports.append(report)
        finally:
            for db in _DATABASES:
                subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", db],
                               capture_output=True)  # fmt: skip
            _DATABASES.clear()
    return reports


if __name__ == "__main__":
    sys.exit(1 if any(r.problems for r in main()) else 0)
