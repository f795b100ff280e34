"""Helpers for the Airflow tests (imported by module name; not a test file)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = "examples/breast_cancer/pipeline.py:training"


@dataclasses.dataclass
class Airflow:
    home: Path
    dags: Path
    env: dict[str, str]
    api_url: str = ""
    password: str = ""


def base_env(tmp: Path) -> dict[str, str]:
    """This environment without MLflow settings or the caller's PYTHONPATH: stackwise's own
    sources only (the project under test is never importable from them)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "PYTHONPATH", "AIRFLOW"))}  # fmt: skip
    env.update(PYTHONPATH=str(ROOT / "src"), MLFLOW_DISABLE_TELEMETRY="true",
               STACKWISE_CACHE_DIR=str(tmp / "stackwise-cache"), DO_NOT_TRACK="true")  # fmt: skip
    return env


def stackwise(
    cwd: Path, env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stackwise", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def dags_test(
    airflow: Airflow, dag_id: str, date: str, cwd: Path, conf: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [str(Path(sys.executable).with_name("airflow")), "dags", "test", dag_id, date]
    if conf is not None:
        args += ["--conf", json.dumps(conf)]
    return subprocess.run(args, cwd=cwd, env=airflow.env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def stack_file(
    folder: Path, name: str, *, dags: Path | None, tracking: str, artifacts: str,
    mlflow_artifacts: str | None = None, **airflow: Any,
) -> Path:
    import yaml

    data: dict[str, Any] = {"tracking_uri": tracking, "artifact_store": artifacts,
                            "cache": "artifacts"}  # fmt: skip
    if mlflow_artifacts:
        data["mlflow_artifacts"] = mlflow_artifacts
    if dags is not None:
        data["orchestrator"] = "airflow"
        data["airflow"] = {"dags_folder": str(dags), **airflow}
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def parents(uri: str, experiment: str) -> list[Any]:
    """Pipeline (parent) runs of the experiment, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], "tags.`stackwise.run_kind` = 'pipeline'",
                              max_results=1000)  # fmt: skip
    return sorted(runs, key=lambda r: r.info.start_time)


def step_runs(uri: str, parent: Any) -> list[Any]:
    from mlflow import MlflowClient

    return list(MlflowClient(uri).search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        max_results=1000,
    ))  # fmt: skip
