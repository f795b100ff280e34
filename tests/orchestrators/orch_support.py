"""Helpers shared by the tests in this folder (imported by module name; not a test file)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Generous bound for anything that waits on a subprocess or a run.
WAIT_S = 60.0


def all_runs(uri: str, experiment_id: str) -> list[Any]:
    """Every MLflow run of the experiment, whatever its status."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    return list(
        MlflowClient(uri).search_runs(
            [experiment_id], run_view_type=ViewType.ALL, max_results=1000
        )
    )


def children_of(runs: list[Any], parent_run_id: str) -> list[Any]:
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_run_id]


def by_name(runs: list[Any]) -> dict[str, Any]:
    named = {r.info.run_name: r for r in runs}
    assert len(named) == len(runs), f"duplicate run names: {[r.info.run_name for r in runs]}"
    return named


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stackwise_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "stackwise", *args]


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
