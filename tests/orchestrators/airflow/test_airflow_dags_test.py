"""`airflow dags test` (a real Airflow 3, no server) runs exported DAGs end to end: the example
records in MLflow what a local run of the same interval records (conformance); a DAG whose
code comes as a code bundle runs from a folder where the project is not importable; a step
that fails once is retried by Airflow; a second run hits the artifact-store cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from af_support import EXAMPLE, ROOT, Airflow, dags_test, parents, stack_file, stackwise, step_runs

from stackwise.conformance import compare, snapshot
from stackwise.tracking import tags as T

pytestmark = pytest.mark.slow


def test_the_example_on_airflow_records_what_a_local_run_records(
    airflow_sqlite: Airflow, tmp_path: Path, mlflow_db_template: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples", project / "examples")
    for name in ("local.db", "airflow.db"):
        shutil.copyfile(mlflow_db_template, project / name)
    local_uri, af_uri = f"sqlite:///{project / 'local.db'}", f"sqlite:///{project / 'airflow.db'}"
    stack_file(project, "local.yaml", dags=None, tracking=local_uri,
               artifacts=str(project / "local-artifacts"))  # fmt: skip
    stack_file(project, "airflow.yaml", dags=airflow_sqlite.dags, tracking=af_uri,
               artifacts=str(project / "airflow-artifacts"))  # fmt: skip
    env = airflow_sqlite.env
    exported = stackwise(project, env, "export", "airflow", EXAMPLE, "--out",
                         str(airflow_sqlite.dags), "--stack", "airflow.yaml")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    ran = dags_test(airflow_sqlite, "training", "2026-06-14", project)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]

    [parent] = parents(af_uri, "training")
    tags = parent.data.tags
    assert parent.info.status == "FINISHED" and tags[T.STATUS] == "SUCCEEDED"
    assert tags[T.ORCHESTRATOR] == "airflow" and tags[T.AIRFLOW_DAG_ID] == "training"
    assert tags[T.AIRFLOW_RUN_ID].startswith("manual__")
    # the weekly timetable's interval that ends at the logical date, as stackwise's own
    assert tags[T.DATA_INTERVAL_START].startswith("2026-06-07T00:00:00")
    assert tags[T.DATA_INTERVAL_END].startswith("2026-06-14T00:00:00")
    assert tags[T.RUN_ID] == "airflow-training-20260607T000000Z"

    local = stackwise(project, env, "backfill", EXAMPLE, "--start", "2026-06-07", "--end",
                      "2026-06-07", "--stack", "local.yaml", "--json")  # fmt: skip
    assert local.returncode == 0, local.stderr
    [local_parent] = parents(local_uri, "training")
    expected, actual = snapshot(local_uri, local_parent.info.run_id), snapshot(
        af_uri, parent.info.run_id)  # fmt: skip
    assert set(expected.steps) == {"ingest", "validate", "features", "train", "evaluate",
                                   "register"}  # fmt: skip
    assert expected.steps["evaluate"].metric_keys >= {"accuracy", "roc_auc"}
    assert expected.steps["ingest"].datasets and "breast_cancer_classifier" in (
        expected.model_versions)  # fmt: skip
    differences = compare(expected, actual)
    assert differences == [], "\n".join(differences)


BUNDLED = '''
from pathlib import Path
import stackwise as sw

@sw.step(retries=sw.Retries(count=1, backoff_s=0))
def flaky(marker: str) -> int:
    """Fails on its first attempt only."""
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("first attempt fails")
    return 20

@sw.step
def double(n: int) -> int:
    sw.log_metric("doubled", 2 * n)
    return 2 * n

@sw.pipeline
def bundled(marker: str = "unset") -> None:
    double(flaky(marker))
'''


def test_a_bundled_dag_runs_where_the_project_is_not_importable_retries_and_caches(
    airflow_sqlite: Airflow, tmp_path: Path, mlflow_db_template: Path
) -> None:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "bundled.py").write_text(BUNDLED)
    shutil.copyfile(mlflow_db_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stack_file(project, "airflow.yaml", dags=airflow_sqlite.dags, tracking=uri,
               artifacts=str(tmp_path / "artifacts"),
               mlflow_artifacts=str(tmp_path / "mlartifacts"), bundle=True)  # fmt: skip
    exported = stackwise(project, airflow_sqlite.env, "export", "airflow",
                         "flows/bundled.py:bundled", "--out", str(airflow_sqlite.dags),
                         "--stack", "airflow.yaml")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    spec = (airflow_sqlite.dags / "bundled.stackwise.json").read_text()
    assert '"bundle": {' in spec and str(project) not in spec  # nothing of this host's folder
    shutil.rmtree(project)  # the workers have only the bundle in the artifact store
    elsewhere = tmp_path / "worker"
    elsewhere.mkdir()
    marker = tmp_path / "marker"
    first = dags_test(airflow_sqlite, "bundled", "2026-01-01", elsewhere,
                      conf={"marker": str(marker)})  # fmt: skip
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert marker.exists()
    second = dags_test(airflow_sqlite, "bundled", "2026-01-02", elsewhere,
                       conf={"marker": str(marker)})  # fmt: skip
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]

    one, two = parents(uri, "bundled")
    assert one.info.status == two.info.status == "FINISHED"
    assert one.data.params["marker"] == str(marker)
    runs = step_runs(uri, one)
    attempts = sorted((r.data.tags[T.STEP], r.data.tags[T.ATTEMPT], r.info.status) for r in runs)
    # retried by Airflow: the failed first attempt and one successful step run
    assert attempts == [("double", "1", "FINISHED"), ("flaky", "1", "FAILED"),
                        ("flaky", "2", "FINISHED")]  # fmt: skip
    cached = {r.data.tags[T.STEP]: r.data.tags.get(T.CACHED) for r in step_runs(uri, two)}
    assert cached == {"flaky": "true", "double": "true"}  # the artifact-store cache
    assert one.data.tags[T.RUN_ID] != two.data.tags[T.RUN_ID]  # unscheduled: keyed on the run
