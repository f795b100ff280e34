"""Side by side, in one run: the example pipeline on `airflow dags test` and on `stackwise run`,
and a 30-interval daily backfill of a 3-step pipeline through Airflow (its scheduler, via
`stackwise backfill --stack airflow.yaml`) and through stackwise's own backfill.

    python benchmarks/airflow_vs_local.py [--days 30]

Starts a real Airflow 3 (api-server, scheduler, dag-processor; LocalExecutor, parallelism 4)
on a fresh PostgreSQL database at 127.0.0.1:5432 and stops it at the end. Wall times are of
the whole commands, as a user sees them (process start, imports and MLflow included). Both
backfills run at most 4 intervals at once; the last line is the backfill speed-up measured in
this one run, against issue 19's target of >= 40x.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAILY = textwrap.dedent(
    """
    import stackwise as sw

    @sw.step
    def extract(ctx: sw.StepContext) -> dict:
        return {"day": ctx.interval.start.isoformat(), "rows": 100}

    @sw.step
    def transform(batch: dict) -> dict:
        return {**batch, "rows": batch["rows"] * 2}

    @sw.step
    def load(batch: dict) -> int:
        return batch["rows"]

    @sw.pipeline(schedule=sw.Schedule("@daily", start="2025-01-01", max_active_runs=4))
    def daily() -> None:
        load(transform(extract()))
    """
)


def _timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stdout[-3000:] + proc.stderr[-3000:]
        raise SystemExit(f"{' '.join(args[:4])} failed:\n{tail}")
    return elapsed


@contextlib.contextmanager
def airflow_stack(tmp: Path) -> Iterator[tuple[dict[str, str], str, Path]]:
    """A running Airflow 3 (the tests' own deployment, `af_stack.running_airflow`, with 4 task
    slots); yields (environment for the commands, api url, dags folder)."""
    sys.path.insert(0, str(ROOT / "tests" / "orchestrators" / "airflow"))
    from af_stack import running_airflow
    from af_support import base_env

    with running_airflow(tmp, base_env(tmp), parallelism=4) as airflow:
        env = {**airflow.env, "AIRFLOW_USERNAME": "admin", "AIRFLOW_PASSWORD": airflow.password}
        yield env, airflow.api_url, airflow.dags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="sw-airflow-bench-"))
    try:
        project = tmp / "project"
        shutil.copytree(ROOT / "examples", project / "examples")
        (project / "daily.py").write_text(DAILY)
        with airflow_stack(tmp) as (env, api_url, dags):
            for name, orchestrator in (("local", "local"), ("airflow", "airflow")):
                stack = {"tracking_uri": f"sqlite:///{project / (name + '.db')}",
                         "artifact_store": str(project / f"{name}-artifacts"),
                         "cache": "artifacts", "orchestrator": orchestrator}  # fmt: skip
                if orchestrator == "airflow":
                    stack["airflow"] = {"dags_folder": str(dags), "api_url": api_url,
                                        "poll_s": 1.0}  # fmt: skip
                (project / f"{name}.yaml").write_text(yaml.safe_dump(stack))
            sw = [sys.executable, "-m", "stackwise"]
            example = "examples/breast_cancer/pipeline.py:training"
            # `dags test` on its own SQLite home: the running dag-processor would race it
            # writing the same DAG into the shared database.
            quick = {
                **env,
                "AIRFLOW_HOME": str(tmp / "quick"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "quick-dags"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp / 'quick.db'}",
            }
            quick.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC")
            subprocess.run([AIRFLOW, "db", "migrate"], env=quick, check=True, capture_output=True)
            _timed([*sw, "export", "airflow", example, "--out", str(tmp / "quick-dags"),
                    "--stack", "airflow.yaml"], project, quick)  # fmt: skip
            dags_test = _timed([AIRFLOW, "dags", "test", "training", "2026-06-14"], project, quick)
            local_run = _timed([*sw, "run", example, "--stack", "local.yaml", "--no-cache"],
                               project, env)  # fmt: skip
            end = f"2025-01-{args.days:02d}" if args.days <= 31 else None
            if end is None:
                import datetime as dt

                end = (dt.date(2025, 1, 1) + dt.timedelta(days=args.days - 1)).isoformat()
            window = ["--start", "2025-01-01", "--end", end]
            af_backfill = _timed([*sw, "backfill", "daily.py:daily", *window, "--stack",
                                  "airflow.yaml", "--json"], project, env)  # fmt: skip
            sw_backfill = _timed([*sw, "backfill", "daily.py:daily", *window, "--parallel", "4",
                                  "--stack", "local.yaml", "--json"], project, env)  # fmt: skip
        print(f"{'what':44} {'Airflow 3':>11} {'stackwise':>11}")
        print(
            f"{'example, one run (dags test / stackwise run)':44} {dags_test:10.1f}s "
            f"{local_run:10.1f}s"
        )
        print(
            f"{f'{args.days}-interval daily backfill, 4 at once':44} {af_backfill:10.1f}s "
            f"{sw_backfill:10.1f}s"
        )
        print(
            f"{'  per interval':44} {af_backfill / args.days:10.2f}s "
            f"{sw_backfill / args.days:10.2f}s"
        )
        faster = af_backfill / sw_backfill
        verdict = "ok" if faster >= 40 else "short"
        print(f"backfill: stackwise {faster:.1f}x faster than Airflow, measured in this run "
              f"(issue 19 target >= 40: {verdict})")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
