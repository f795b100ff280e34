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


def test_a_project_installed_in_the_airflow_environment_needs_no_bundle(
    airflow_sqlite: Airflow, tmp_path: Path, mlflow_db_template: Path
) -> None:
    site = tmp_path / "site-packages"  # stands for the Airflow image's installed packages
    (site / "teamflows").mkdir(parents=True)
    (site / "teamflows" / "__init__.py").write_text("")
    (site / "teamflows" / "nightly.py").write_text(
        "import stackwise as sw\n\n@sw.step\ndef one(api_token: str) -> int:\n"
        "    sw.log_metric('token_length', len(api_token))\n    return 1\n\n"
        "@sw.pipeline\ndef installed(api_token: str = 'default-token') -> None:\n"
        "    one(api_token)\n"
    )
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(mlflow_db_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stack_file(project, "airflow.yaml", dags=airflow_sqlite.dags, tracking=uri,
               artifacts=str(tmp_path / "artifacts"),
               mlflow_artifacts=str(tmp_path / "mlartifacts"))  # fmt: skip
    env = {**airflow_sqlite.env, "STACKWISE_PARAM_API_TOKEN": "token-from-the-workers-env",
           "PYTHONPATH": airflow_sqlite.env["PYTHONPATH"] + ":" + str(site)}  # fmt: skip
    exported = stackwise(project, env, "export", "airflow", "teamflows.nightly:installed",
                         "--out", str(airflow_sqlite.dags), "--stack", "airflow.yaml")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    spec = (airflow_sqlite.dags / "installed.stackwise.json").read_text()
    assert '"target": "teamflows.nightly"' in spec and '"bundle": null' in spec
    assert "default-token" not in spec  # a secret parameter: read from the workers' env
    ran = dags_test(Airflow(airflow_sqlite.home, airflow_sqlite.dags, env), "installed",
                    "2026-01-01", tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    [parent] = parents(uri, "installed")
    assert parent.info.status == "FINISHED"
    [one] = step_runs(uri, parent)
    assert one.data.metrics["token_length"] == len("token-from-the-workers-env")
    assert "token-from-the-workers-env" not in str(parent.data.params) + str(one.data.params)


def test_a_failed_step_fails_the_dag_run_and_closes_the_mlflow_parent_as_failed(
    airflow_sqlite: Airflow, tmp_path: Path, mlflow_db_template: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "broken.py").write_text(
        "import stackwise as sw\n\n@sw.step\ndef ok() -> int:\n    return 1\n\n"
        "@sw.step\ndef boom(n: int) -> int:\n    raise ValueError('no good')\n\n"
        "@sw.step\ndef after(n: int) -> int:\n    return n\n\n"
        "@sw.pipeline\ndef broken() -> None:\n    after(boom(ok()))\n"
    )
    shutil.copyfile(mlflow_db_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stack_file(project, "airflow.yaml", dags=airflow_sqlite.dags, tracking=uri,
               artifacts=str(tmp_path / "artifacts"),
               mlflow_artifacts=str(tmp_path / "mlartifacts"))  # fmt: skip
    exported = stackwise(project, airflow_sqlite.env, "export", "airflow", "broken.py:broken",
                         "--out", str(airflow_sqlite.dags), "--stack", "airflow.yaml")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    ran = dags_test(airflow_sqlite, "broken", "2026-01-01", project)
    assert ran.returncode != 0 and "DagRun failed" in ran.stderr + ran.stdout
    [parent] = parents(uri, "broken")
    assert parent.info.status == "FAILED" and parent.data.tags[T.STATUS] == "FAILED"
    steps = {r.data.tags[T.STEP]: r for r in step_runs(uri, parent)}
    assert set(steps) == {"ok", "boom"}  # `after` never ran (upstream failed)
    assert steps["ok"].info.status == "FINISHED" and steps["boom"].info.status == "FAILED"
    assert "no good" in steps["boom"].data.tags[T.ERROR]
