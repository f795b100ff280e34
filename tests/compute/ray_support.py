"""Helpers of the Ray tests (imported by module name; not a test file)."""

from __future__ import annotations

from typing import Any

from stackwise.orchestrators.local import RunRecord


def step_runs(run: RunRecord) -> dict[str, Any]:
    """The step runs of a pipeline run by name; none may be left RUNNING."""
    from mlflow import MlflowClient

    client = MlflowClient(run.tracking_uri or "")
    runs = client.search_runs(
        [run.experiment_id or ""], f"tags.`mlflow.parentRunId` = '{run.mlflow_run_id}'"
    )
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    return {r.info.run_name: r for r in runs}


def log_text(run: RunRecord, mlflow_run: Any, path: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(run.tracking_uri or "")
    local = client.download_artifacts(mlflow_run.info.run_id, path)
    with open(local) as fh:
        return fh.read()
