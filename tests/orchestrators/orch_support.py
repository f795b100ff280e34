"""Helpers shared by the tests in this folder (imported by module name; not a test file)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import free_port as free_port
from tests.support import WAIT_S as WAIT_S
from tests.support import children_of as children_of
from tests.support import pid_alive as pid_alive
from tests.support import stackwise_cmd
from tests.support import wait_until as wait_until


def all_runs(uri: str, experiment_id: str) -> list[Any]:
    """Every MLflow run of the experiment, whatever its status."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    return list(
        MlflowClient(uri).search_runs([experiment_id], run_view_type=ViewType.ALL, max_results=1000)
    )


def by_name(runs: list[Any]) -> dict[str, Any]:
    named = {r.info.run_name: r for r in runs}
    assert len(named) == len(runs), f"duplicate run names: {[r.info.run_name for r in runs]}"
    return named


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def run_cli(cwd: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`python -m stackwise ARGS` in `cwd`, as a user would run it."""
    return subprocess.run(
        stackwise_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def parse_json(stdout: str) -> Any:
    """The whole of stdout must be one JSON document (`--json` output)."""
    return json.loads(stdout)


def get_run(uri: str | None, run_id: str | None) -> Any:
    """An MLflow run by id (both must be known: a None here is itself a failure)."""
    from mlflow import MlflowClient

    assert uri, "no tracking URI"
    assert run_id, "no MLflow run id"
    return MlflowClient(uri).get_run(run_id)


def download(uri: str | None, run_id: str | None, path: str, dst: Path) -> Path:
    from mlflow import MlflowClient

    assert uri and run_id
    dst.mkdir(parents=True, exist_ok=True)
    return Path(MlflowClient(uri).download_artifacts(run_id, path, str(dst)))
