"""`stackwise ui` serves MLflow's UI on the configured store, with runs recorded there."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import free_port, wait_http

PIPELINE = """
import stackwise as sw

@sw.step
def hello() -> str:
    return "hi"

@sw.pipeline
def pipe() -> None:
    hello()
"""


@pytest.mark.slow
def test_ui_serves_the_configured_store(
    project: Path, write_pipeline: Callable[[str], str]
) -> None:
    ref = write_pipeline(PIPELINE)
    done = subprocess.run([sys.executable, "-m", "stackwise", "run", ref, "--json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    mlflow_run_id = json.loads(done.stdout)["mlflow_run_id"]
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "stackwise", "ui", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get?run_id={mlflow_run_id}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            run = json.loads(resp.read())["run"]
        assert run["info"]["status"] == "FINISHED"
        assert run["info"]["run_id"] == mlflow_run_id
    finally:
        import os

        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(20)
