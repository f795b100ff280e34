"""History continuity across `stackwise migrate`: daily intervals on the local orchestrator,
migrate to Airflow (refused while a run is in progress, then with --wait), the following
intervals through `airflow dags test` (a real Airflow 3 on SQLite; the REST stack is not
needed for this), then migrate back to local. The interval ledger, MLflow's interval tags,
model versions and aliases stay continuous: every interval ran exactly once, none skipped;
`lineage` and `policy check` work on versions trained on either side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from stackwise.tracking import tags as T

ROOT = Path(__file__).resolve().parents[1]
TARGET = "flows/daily.py:daily"
MODEL = "daily_model"

pytestmark = pytest.mark.slow

PIPELINE = '''
from pathlib import Path
from typing import Any

import stackwise as sw


@sw.step
def ingest(raw_dir: str, ctx: sw.StepContext) -> list[float]:
    """One raw partition per day, landed once, read back and logged as a dataset."""
    day = ctx.interval.start.date()
    path = Path(raw_dir).resolve() / f"dt={day.isoformat()}" / "part-0.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\\n".join(str((day.toordinal() * 7 + i) % 13) for i in range(20)))
    sw.log_dataset(path, name=f"raw/{path.parent.name}", source=path.as_uri())
    return [float(v) for v in path.read_text().split()]


@sw.step
def train(values: list[float]) -> Any:
    from sklearn.linear_model import LinearRegression

    xs = [[float(i)] for i in range(len(values))]
    model = LinearRegression().fit(xs, values)
    sw.log_metric("r2", float(model.score(xs, values)))
    return model


@sw.step
def register(model: Any) -> str:
    registered = sw.register_model(model, "daily_model", pip_requirements=["scikit-learn"],
                                   policies=Path(__file__).with_name("policies.yaml"))
    return registered.version


@sw.pipeline(schedule=sw.Schedule("@daily", start="2026-03-01", catchup=True))
def daily(raw_dir: str = "raw") -> None:
    register(train(ingest(raw_dir)))
'''

POLICIES = """
aliases: [staging, production]
models:
  daily_model:
    staging:
      auto_promote: true
      rules:
        - {kind: lineage_complete}
    production:
      rules:
        - {kind: approval}
"""


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONPATH=str(ROOT / "src"),
               STACKWISE_CACHE_DIR=str(project / "cache"))  # fmt: skip
    return env


def _run(project: Path, *args: str, env: dict[str, str] | None = None,
         program: list[str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    cmd = [*(program or [sys.executable, "-m", "stackwise"]), *args]
    return subprocess.run(cmd, cwd=project, env=env or _env(project), capture_output=True,
                          text=True, timeout=900)  # fmt: skip


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def _parents(uri: str) -> list[Any]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("daily")
    runs = client.search_runs([exp.experiment_id], f"tags.`{T.RUN_KIND}` = 'pipeline'",
                              max_results=1000)  # fmt: skip
    return sorted(runs, key=lambda r: r.data.tags.get(T.DATA_INTERVAL_START, ""))


def test_history_stays_continuous_from_local_to_airflow_and_back(
    tmp_path: Path, mlflow_db_template: Path
) -> None:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "daily.py").write_text(PIPELINE)
    (project / "flows" / "policies.yaml").write_text(POLICIES)
    (project / ".stackwise").mkdir()
    shutil.copyfile(mlflow_db_template, project / ".stackwise" / "mlflow.db")
    (project / "stackwise.yaml").write_text(yaml.safe_dump({
        "tracking_uri": "sqlite:///.stackwise/mlflow.db", "artifact_store": ".stackwise/art",
        "cache": "artifacts", "pipelines": [TARGET]}))  # fmt: skip
    uri = f"sqlite:///{project / '.stackwise' / 'mlflow.db'}"

    # 1. three daily intervals on the local orchestrator (its ledger)
    _ok(_run(project, "backfill", TARGET, "--start", "2026-03-01", "--end", "2026-03-03"))

    # 2. refused while a pipeline run is in progress; --wait waits for it
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("daily").experiment_id
    busy = client.create_run(exp, tags={T.RUN_KIND: "pipeline", T.PIPELINE: "daily",
                                        T.ORCHESTRATOR: "local", T.RUN_ID: "busy-run"})  # fmt: skip
    refused = _run(project, "migrate", "--to", "airflow")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "runs are in progress on the old orchestrator" in refused.stderr
    assert "busy-run on local" in refused.stderr
    assert not (project / "stackwise.airflow.yaml").exists()
    dry = " ".join(_ok(_run(project, "migrate", "--to", "airflow", "--dry-run")).stdout.split())
    assert "first interval on airflow starts 2026-03-04T00:00:00+00:00" in dry
    assert not (project / "dags").exists()
    stopper = threading.Timer(4.0, lambda: client.set_terminated(busy.info.run_id, "FAILED"))
    stopper.start()
    moved = _ok(_run(project, "migrate", "--to", "airflow", "--wait", "--json"))
    stopper.join()
    report = json.loads(moved.stdout)
    assert report["changed"] == []
    assert report["before"]["last_completed"] == {"daily": "2026-03-04T00:00:00+00:00"}
    assert report["before"]["ledger_last"] == {"daily": "2026-03-04T00:00:00+00:00"}
    assert report["before"]["models"][MODEL] == {"versions": [1, 2, 3],
                                                  "aliases": {"staging": "3"}}  # fmt: skip
    new_stack = yaml.safe_load((project / "stackwise.airflow.yaml").read_text())
    assert new_stack["orchestrator"] == "airflow"
    assert new_stack["tracking_uri"] == "sqlite:///.stackwise/mlflow.db"  # kept as it was
    spec = json.loads((project / "dags" / "daily.stackwise.json").read_text())
    assert spec["schedule"]["start"] == "2026-03-04T00:00:00+00:00"
    assert spec["schedule"]["catchup"] is True

    # 3. the next two intervals on a real Airflow (airflow dags test)
    env = _env(project)
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=str(project / "dags"),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'airflow.db'}",
               AIRFLOW__CORE__UNIT_TEST_MODE="False")  # fmt: skip
    airflow = [str(Path(sys.executable).with_name("airflow"))]
    _ok(_run(project, "db", "migrate", env=env, program=airflow))
    first = _ok(_run(project, "-c", _FIRST_INTERVAL, env=env, program=[sys.executable]))
    assert first.stdout.strip().splitlines()[-1] == "2026-03-04T00:00:00+00:00"
    for day in ("2026-03-05", "2026-03-06"):
        _ok(_run(project, "dags", "test", "daily", day, env=env, program=airflow))

    # lineage and policy check across the boundary, on the stack now in use
    on_airflow = ["--stack", "stackwise.airflow.yaml"]
    graph = json.loads(_ok(_run(project, "lineage", f"models:/{MODEL}/4", "--format", "json",
                                *on_airflow)).stdout)  # fmt: skip
    raw = [n for n in graph["nodes"] if n["kind"] == "raw_data"]
    assert [n["attrs"]["name"] for n in raw] == ["raw/dt=2026-03-04"]
    _ok(_run(project, "policy", "check", MODEL, "4", "--to", "staging", "--policies",
             "flows/policies.yaml", *on_airflow))  # fmt: skip

    # 4. back to local: the ledger learns the Airflow intervals, the next one runs once
    back = json.loads(_ok(_run(project, "migrate", "--to", "local", *on_airflow,
                               "--json")).stdout)  # fmt: skip
    assert back["changed"] == []
    assert back["before"]["last_completed"] == {"daily": "2026-03-06T00:00:00+00:00"}
    assert back["pipelines"][0]["ledger_imported"] == ["2026-03-04T00:00:00+00:00",
                                                       "2026-03-05T00:00:00+00:00"]  # fmt: skip
    local = ["--stack", "stackwise.local.yaml"]
    _ok(_run(project, "backfill", TARGET, "--start", "2026-03-01", "--end", "2026-03-06",
             "--reprocess", "none", *local))  # fmt: skip

    parents = [p for p in _parents(uri) if p.data.tags.get(T.DATA_INTERVAL_START)]
    starts = [p.data.tags[T.DATA_INTERVAL_START][:10] for p in parents]
    assert starts == [f"2026-03-0{d}" for d in range(1, 7)]  # each once, none skipped
    assert [p.data.tags[T.ORCHESTRATOR] for p in parents] == ["local"] * 3 + ["airflow"] * 2 + [
        "local"]  # fmt: skip
    assert all(p.info.status == "FINISHED" for p in parents)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4, 5, 6]
    assert str(client.get_model_version_by_alias(MODEL, "staging").version) == "6"
    ledger = _ok(_run(project, "backfill", TARGET, "--start", "2026-03-01", "--end",
                      "2026-03-06", "--dry-run", "--json", *local)).stdout  # fmt: skip
    assert ledger.count("already succeeded") == 6


#: The start of the first data interval Airflow's scheduler would create for the DAG, as the
#: scheduler computes it: the serialized DAG's `next_dagrun_info` with no earlier run.
_FIRST_INTERVAL = """
import os
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("daily")
scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
print(scheduled.next_dagrun_info(last_automated_run_info=None).data_interval.start.isoformat())
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--to", "airflw", "--pipeline", "x.py:p"], "--to 'airflw': use one of local, "),
     (["--to", "local", "--pipeline", "x.py:p"], "the stack already runs on local"),
     (["--to", "airflow"], "name the pipelines to migrate with --pipeline TARGET"),
     (["--to", "kubeflow", "--pipeline", "nope.py:p"], "nope.py")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    project: Path, args: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    from stackwise.cli.main import app, load_commands

    load_commands()
    (project / "stackwise.yaml").write_text("tracking_uri: sqlite:///.stackwise/mlflow.db\n")
    result = CliRunner().invoke(app, ["migrate", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert sorted(p.name for p in project.iterdir()) == ["stackwise.yaml"]
