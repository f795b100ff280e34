"""Side by side, in one run: the example pipeline on `airflow dags test` and on `stackwise run`,
and a 30-interval daily backfill of a 3-step pipeline through Airflow (its scheduler, via
`stackwise backfill --stack airflow.yaml`) and through stackwise's own backfill.

    python benchmarks/airflow_vs_local.py [--days 30]

Starts a real Airflow 3 (api-server, scheduler, dag-processor; LocalExecutor, parallelism 4)
on a fresh PostgreSQL database at 127.0.0.1:5432 and stops it at the end. Wall times are of
the whole commands, as a user sees them (process start, imports and MLflow included). Both
backfills run at most 4 intervals at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
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


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stdout[-3000:] + proc.stderr[-3000:]
        raise SystemExit(f"{' '.join(args[:4])} failed:\n{tail}")
    return elapsed


@contextlib.contextmanager
def airflow_stack(tmp: Path):  # type: ignore[no-untyped-def]
    """A running Airflow 3; yields (env, api_url, dags folder)."""
    db = f"airflow_bench_{uuid.uuid4().hex[:8]}"
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
    port, secret, dags = _port(), uuid.uuid4().hex, tmp / "dags"
    dags.mkdir()
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW"))}
    env.update({
        "PYTHONPATH": str(ROOT / "src"), "MLFLOW_DISABLE_TELEMETRY": "true",
        "AIRFLOW_HOME": str(tmp / "home"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": url.replace("+psycopg:", "+psycopg_async:"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret, "AIRFLOW__API__SECRET_KEY": secret,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
        "STACKWISE_CACHE_DIR": str(tmp / "cache"), "AIRFLOW_USERNAME": "admin",
    })  # fmt: skip
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    procs = []
    try:
        for command in ("api-server", "scheduler", "dag-processor"):
            log = open(tmp / f"{command}.log", "wb")  # noqa: SIM115 (open while it runs)
            procs.append(subprocess.Popen([AIRFLOW, command], env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        passwords = tmp / "home" / "simple_auth_manager_passwords.json.generated"
        while not passwords.exists():
            time.sleep(0.5)
        env["AIRFLOW_PASSWORD"] = json.loads(passwords.read_text())["admin"]
        yield env, f"http://127.0.0.1:{port}", dags
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", db])


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
            quick = {**env, "AIRFLOW_HOME": str(tmp / "quick"),
                     "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "quick-dags"),
                     "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp / 'quick.db'}"}
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
        print(f"{'example, one run (dags test / stackwise run)':44} {dags_test:10.1f}s "
              f"{local_run:10.1f}s")
        print(f"{f'{args.days}-interval daily backfill, 4 at once':44} {af_backfill:10.1f}s "
              f"{sw_backfill:10.1f}s")
        print(f"{'  per interval':44} {af_backfill / args.days:10.2f}s "
              f"{sw_backfill / args.days:10.2f}s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
