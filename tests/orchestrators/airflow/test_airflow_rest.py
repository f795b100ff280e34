"""Through Airflow's REST API with a real api-server, scheduler and dag-processor (PostgreSQL):
`stackwise run` exports, waits for the parse, unpauses, triggers and follows a run (a step that
fails once is retried by Airflow); `stackwise backfill` creates an Airflow backfill whose data
intervals are the ones `stackwise backfill --dry-run` plans, across a DST change, and running it
again with `--reprocess none` creates nothing; an unreachable API, bad credentials and a DAG
Airflow refuses are clear errors (exit 2) that leave nothing behind."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from af_support import Airflow, parents, stack_file, stackwise, step_runs
from tests.conftest import free_port

from stackwise.tracking import tags as T

pytestmark = pytest.mark.slow

FLOWS = '''
from pathlib import Path
import stackwise as sw

@sw.step(retries=sw.Retries(count=1, backoff_s=0))
def flaky(marker: str, n: int) -> int:
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("first attempt fails")
    return n

@sw.step
def double(n: int, ctx: sw.StepContext) -> int:
    sw.log_metric("doubled", 2 * n)
    return 2 * n

@sw.pipeline
def rest_demo(marker: str = "unset", n: int = 1) -> None:
    double(flaky(marker, n))

@sw.step
def stamp(ctx: sw.StepContext) -> str:
    return ctx.interval.start.isoformat()

@sw.pipeline(schedule=sw.Schedule("30 2 * * *", start="2026-03-01",
                                  timezone="Europe/Amsterdam", max_active_runs=3))
def rest_daily() -> None:
    stamp()

@sw.pipeline
def refused_here() -> None:
    stamp()
'''


@pytest.fixture
def project(airflow_stack: Airflow, tmp_path: Path, mlflow_db_template: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text(FLOWS)
    shutil.copyfile(mlflow_db_template, project / "mlflow.db")
    stack_file(project, "airflow.yaml", dags=airflow_stack.dags,
               tracking=f"sqlite:///{project / 'mlflow.db'}",
               artifacts=str(project / "artifacts"), api_url=airflow_stack.api_url,
               poll_s=1.0, parse_timeout_s=120, run_timeout_s=300)  # fmt: skip
    stack_file(project, "local.yaml", dags=None, tracking=f"sqlite:///{project / 'local.db'}",
               artifacts=str(project / "local-artifacts"))  # fmt: skip
    return project


def _env(airflow: Airflow, password: str | None = None) -> dict[str, str]:
    return {**airflow.env, "AIRFLOW_USERNAME": "admin",
            "AIRFLOW_PASSWORD": airflow.password if password is None else password}  # fmt: skip


def test_a_triggered_run_with_an_overridden_parameter_is_retried_and_followed(
    airflow_stack: Airflow, project: Path
) -> None:
    marker = project / "marker"
    ran = stackwise(project, _env(airflow_stack), "run", "flows.py:rest_demo", "-p", "n=21",
                    "-p", f"marker={marker}", "--stack", "airflow.yaml", "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    record = json.loads(ran.stdout)
    assert record["status"] == "SUCCEEDED"
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["flaky"]["attempts"] == 2  # Airflow's retry, followed
    uri = f"sqlite:///{project / 'mlflow.db'}"
    [parent] = parents(uri, "rest_demo")
    assert parent.info.status == "FINISHED"
    assert parent.data.params["n"] == "21"
    assert parent.data.tags[T.AIRFLOW_RUN_ID] == record["run_id"]
    attempts = sorted((r.data.tags[T.STEP], r.data.tags[T.ATTEMPT], r.info.status)
                      for r in step_runs(uri, parent))  # fmt: skip
    assert attempts == [("double", "1", "FINISHED"), ("flaky", "1", "FAILED"),
                        ("flaky", "2", "FINISHED")]  # fmt: skip
    listed = stackwise(project, _env(airflow_stack), "runs", "list", "--stack", "airflow.yaml",
                       "--json")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert record["run_id"] in {r["run_id"] for r in json.loads(listed.stdout)}


def _instants(rows: list[dict[str, Any]]) -> list[tuple[dt.datetime, dt.datetime]]:
    return [(dt.datetime.fromisoformat(r["data_interval_start"]),
             dt.datetime.fromisoformat(r["data_interval_end"])) for r in rows]  # fmt: skip


def _in_window(runs: list[Any], planned: list[tuple[dt.datetime, dt.datetime]]) -> list[Any]:
    """Parents of the backfill's intervals (unpausing the DAG also lets Airflow's scheduler
    run the schedule's latest interval, as `catchup=False` says)."""
    lo, hi = planned[0][0], planned[-1][1]
    return [r for r in runs
            if lo <= dt.datetime.fromisoformat(r.data.tags[T.DATA_INTERVAL_START]) < hi]


def test_an_airflow_backfill_runs_the_intervals_stackwise_plans_across_dst(
    airflow_stack: Airflow, project: Path
) -> None:
    env = _env(airflow_stack)
    window = ("--start", "2026-03-28", "--end", "2026-03-30")  # Europe/Amsterdam: 29 March
    plan = stackwise(project, env, "backfill", "flows.py:rest_daily", *window, "--dry-run",
                     "--json", "--stack", "local.yaml")  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    planned = _instants(json.loads(plan.stdout)["intervals"])
    assert len(planned) == 3
    assert {end - start for start, end in planned} == {dt.timedelta(hours=24),
                                                       dt.timedelta(hours=23)}  # fmt: skip
    done = stackwise(project, env, "backfill", "flows.py:rest_daily", *window,
                     "--stack", "airflow.yaml", "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"] == {"SUCCEEDED": 3}
    uri = f"sqlite:///{project / 'mlflow.db'}"
    runs = _in_window(parents(uri, "rest_daily"), planned)
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    seen = sorted(_instants([{"data_interval_start": r.data.tags[T.DATA_INTERVAL_START],
                              "data_interval_end": r.data.tags[T.DATA_INTERVAL_END]}
                             for r in runs]))  # fmt: skip
    assert seen == planned  # the intervals Airflow handed the tasks
    assert {r.data.tags[T.AIRFLOW_RUN_ID].split("__")[0] for r in runs} == {"backfill"}
    again = stackwise(project, env, "backfill", "flows.py:rest_daily", *window,
                      "--reprocess", "none", "--stack", "airflow.yaml", "--json")  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["counts"] == {"SKIPPED": 3}
    assert len(_in_window(parents(uri, "rest_daily"), planned)) == 3  # nothing new


def test_unreachable_api_bad_credentials_and_a_refused_dag_leave_nothing_behind(
    airflow_stack: Airflow, project: Path
) -> None:
    dags = airflow_stack.dags
    stack_file(project, "nowhere.yaml", dags=dags, tracking="sqlite:///x.db",
               artifacts=str(project / "a"),
               api_url=f"http://127.0.0.1:{free_port()}")  # fmt: skip
    nowhere = stackwise(project, _env(airflow_stack), "run", "flows.py:refused_here",
                        "--stack", "nowhere.yaml")  # fmt: skip
    assert nowhere.returncode == 2 and "is unreachable" in nowhere.stderr, nowhere.stderr
    bad = stackwise(project, _env(airflow_stack, "wrong"), "run", "flows.py:refused_here",
                    "--stack", "airflow.yaml")  # fmt: skip
    assert bad.returncode == 2 and "refused the credentials" in bad.stderr, bad.stderr
    assert not list(dags.glob("refused_here*"))
    refused = stackwise(project, _env(airflow_stack), "run", "flows.py:refused_here",
                        "--stack", "airflow.yaml")  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "could not import refused_here.py" in refused.stderr
    assert "not allowed here" in refused.stderr  # Airflow's own import error
    assert not list(dags.glob("refused_here*"))
    assert parents(f"sqlite:///{project / 'mlflow.db'}", "refused_here") == []
