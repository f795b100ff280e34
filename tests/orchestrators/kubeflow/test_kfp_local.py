"""The compiled spec runs end to end in `kfp.local` (subprocess runner, offline, nothing
installed at run time), from a folder where the project is not importable: every step
fetches the project as the code bundle. MLflow then holds what a local run records, plus
`orchestrator=kubeflow` and the KFP run id; a failing step still leaves the parent closed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kfp_support import write_project
from mlflow import MlflowClient

from stackwise.conformance import compare, snapshot
from stackwise.tracking import tags as T

ROOT = Path(__file__).resolve().parents[3]
TARGET = "examples/breast_cancer/pipeline.py:training"

pytestmark = pytest.mark.slow


def _stack(foreign: Path) -> str:
    """The stack of the Kubeflow side: its own stores, absolute (tasks run in other folders)."""
    return (
        f"tracking_uri: sqlite:///{foreign / 'mlflow.db'}\n"
        f"artifact_store: {foreign / 'artifacts'}\n"
        f"mlflow_artifacts: {foreign / 'mlartifacts'}\n"
        "orchestrator: kubeflow\n"
        "kubeflow:\n  image: python:3.11-slim\n  host_local_stores: true\n"
    )


def _run_in_kfp_local(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the compiled YAML with kfp.local from an empty folder."""
    from kfp import components, local

    worker = tmp_path / "kfp-worker"
    worker.mkdir()
    monkeypatch.chdir(worker)  # nothing of the project here: only the bundle has it
    monkeypatch.setenv("STACKWISE_CACHE_DIR", str(tmp_path / "host-cache"))
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(tmp_path / "kfp-root"), raise_on_error=True)  # fmt: skip
    components.load_component_from_file(str(spec))()


def _parent(uri: str, experiment: str) -> tuple[MlflowClient, object]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    parents = client.search_runs(
        [exp.experiment_id], f"tags.`{T.RUN_KIND}` = '{T.RUN_KIND_PIPELINE}'"
    )
    assert len(parents) == 1
    return client, parents[0]


def test_the_example_runs_in_kfp_local_and_records_what_a_local_run_records(
    tmp_path: Path, mlflow_db_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, foreign = tmp_path / "project", tmp_path / "foreign"
    shutil.copytree(ROOT / "examples", project / "examples")
    (project / ".stackwise").mkdir()
    foreign.mkdir()
    shutil.copyfile(mlflow_db_template, project / ".stackwise" / "mlflow.db")
    shutil.copyfile(mlflow_db_template, foreign / "mlflow.db")
    (project / "kfp.yaml").write_text(_stack(foreign))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["STACKWISE_CACHE_DIR"] = str(tmp_path / "host-cache")

    local = subprocess.run([sys.executable, "-m", "stackwise", "run", TARGET, "--json"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr
    record = json.loads(local.stdout)
    exported = subprocess.run(
        [sys.executable, "-m", "stackwise", "export", "kubeflow", TARGET, "--out",
         "kfp/training.yaml", "--stack", "kfp.yaml"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert (project / "kfp" / "training.recurring.yaml").is_file()

    _run_in_kfp_local(project / "kfp" / "training.yaml", tmp_path, monkeypatch)

    uri = f"sqlite:///{foreign / 'mlflow.db'}"
    client, parent = _parent(uri, "training")
    tags = parent.data.tags  # type: ignore[attr-defined]
    assert parent.info.status == "FINISHED"  # type: ignore[attr-defined]
    assert tags[T.ORCHESTRATOR] == "kubeflow" and tags[T.STATUS] == "SUCCEEDED"
    kfp_run = tags[T.KUBEFLOW_RUN_ID]
    assert tags[T.RUN_ID] == f"kfp-{kfp_run}"
    expected = snapshot(record["tracking_uri"], record["mlflow_run_id"])
    actual = snapshot(uri, parent.info.run_id)  # type: ignore[attr-defined]
    # not a vacuous comparison: every step, its params, metrics, datasets and the model
    assert set(expected.steps) == {"ingest", "validate", "features", "train", "evaluate",
                                   "register"}  # fmt: skip
    assert expected.steps["evaluate"].metric_keys >= {"accuracy", "roc_auc"}
    assert expected.steps["ingest"].datasets and expected.steps["train"].params
    assert "breast_cancer_classifier" in expected.model_versions
    differences = compare(expected, actual)
    assert differences == [], "\n".join(differences)
    for step in actual.steps.values():
        assert step.status == "SUCCEEDED" and not step.cached
    children = client.search_runs([parent.info.experiment_id],  # type: ignore[attr-defined]
                                  f"tags.`{T.MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'")
    assert {c.data.tags[T.KUBEFLOW_RUN_ID] for c in children} == {kfp_run}
    assert {c.data.tags[T.ORCHESTRATOR] for c in children} == {"kubeflow"}


FAILING = """
import os

import stackwise as sw


@sw.step
def use_secret(db_password: str, rows: int) -> int:
    assert db_password == os.environ["EXPECTED_SECRET"], "the secret did not arrive"
    sw.log_metric("rows", rows)
    return rows


@sw.step
def explode(n: int, label: str) -> int:
    raise RuntimeError(f"boom after {n} rows, label {label!r}")


@sw.pipeline
def quoted(rows: int = 3, label: str = "it's \\"q\\"\\n'''x'''", db_password: str = "x") -> None:
    explode(use_secret(db_password, rows), label)
"""


def test_a_failing_step_fails_the_run_and_the_exit_handler_closes_the_parent(
    tmp_path: Path, mlflow_db_template: Path, monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copyfile(mlflow_db_template, foreign / "mlflow.db")
    write_project(project, FAILING, _stack(foreign))
    secret = "kube-secret-value-123"
    monkeypatch.setenv("STACKWISE_PARAM_DB_PASSWORD", secret)  # as use_secret_as_env sets it
    monkeypatch.setenv("EXPECTED_SECRET", secret)
    from typer.testing import CliRunner

    from stackwise.cli.main import app, load_commands

    load_commands()
    result = CliRunner().invoke(app, ["export", "kubeflow", "flows/quoted.py:quoted", "--out",
                                      "q.yaml", "--stack", "kfp.yaml"])  # fmt: skip
    assert result.exit_code == 0, result.output
    spec = project / "q.yaml"
    assert secret not in spec.read_text()

    with pytest.raises(RuntimeError, match="finished with status .*FAILURE"):
        _run_in_kfp_local(spec, tmp_path, monkeypatch)

    client, parent = _parent(f"sqlite:///{foreign / 'mlflow.db'}", "quoted")
    assert parent.info.status == "FAILED"  # type: ignore[attr-defined]
    assert parent.data.params["label"] == "it's \"q\"\n'''x'''"  # type: ignore[attr-defined]
    assert parent.data.params["rows"] == "3"  # type: ignore[attr-defined]
    assert secret not in json.dumps(parent.data.params)  # type: ignore[attr-defined]
    children = {c.data.tags[T.STEP]: c for c in client.search_runs(
        [parent.info.experiment_id],  # type: ignore[attr-defined]
        f"tags.`{T.MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'")}  # type: ignore[attr-defined]
    assert children["use_secret"].info.status == "FINISHED"
    assert children["explode"].info.status == "FAILED"
    assert "boom after 3 rows" in children["explode"].data.tags[T.ERROR]
    assert all(c.info.status != "RUNNING" for c in children.values())
