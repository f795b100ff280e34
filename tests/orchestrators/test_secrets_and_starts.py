"""Secrets stay masked in everything a step prints (echo, MLflow log, run index, a step
process's kept log); `run` takes secrets from STACKWISE_PARAM_<NAME>; a step that cannot be
started fails cleanly; `resume` refuses non-secret parameters even for a finished run; a run id
prefix that fits several runs says so."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from orch_support import run_cli
from tests.support import path_of, stackwise_cmd

from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator

WritePipeline = Callable[..., str]
SECRET = "sk-live-PRINTED-4242"

TALKATIVE = """
    from stackwise import pipeline, step

    @step(compute=__COMPUTE__)
    def call(api_key: str) -> int:
        print("connecting with", api_key)
        return len(api_key)

    @pipeline
    def pipe(api_key: str, max_tokens: int = 256):
        call(api_key)
"""


@pytest.mark.parametrize("compute", [None, "subprocess"])
def test_what_a_step_prints_never_shows_a_secret(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, compute: str | None
) -> None:
    target = write_pipeline(TALKATIVE.replace("__COMPUTE__", repr(compute)))
    env = {**os.environ, "STACKWISE_PARAM_API_KEY": SECRET}  # not on the command line
    proc = subprocess.run(stackwise_cmd("run", target, "--json"), cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["params"] == {"api_key": "***REDACTED***", "max_tokens": 256}
    everything = proc.stdout + proc.stderr
    for path in project.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".txt"):
            everything += path.read_text(errors="replace")
    assert SECRET not in everything
    run = LocalOrchestrator(stack).get_run(record["run_id"])
    index = path_of(run.artifact_root) / "runs" / run.run_id / "call.json"
    assert "connecting with ***REDACTED***" in index.read_text()
    if compute == "subprocess":
        log = project / ".stackwise" / "logs" / run.run_id / "call-attempt1.log"
        assert "connecting with ***REDACTED***" in log.read_text()
        assert log.stat().st_mode & 0o077 == 0
    from mlflow import MlflowClient

    text = Path(
        MlflowClient(run.tracking_uri).download_artifacts(
            run.steps["call"].mlflow_run_id or "", "stackwise/logs/call-attempt1.txt",
            str(project / "dl"),
        )
    ).read_text()  # fmt: skip
    assert text.strip() == "connecting with ***REDACTED***"


def test_a_step_that_cannot_be_started_fails_and_is_not_left_running(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    target = write_pipeline(TALKATIVE.replace("__COMPUTE__", "'subprocess'"))
    (project / ".stackwise").mkdir(exist_ok=True)
    (project / ".stackwise" / "logs").write_text("a file where the log folder goes")
    proc = run_cli(project, "run", target, "-p", "api_key=abcdefgh", "--json")
    assert proc.returncode == 1, proc.stderr
    record = json.loads(proc.stdout)
    (step,) = record["steps"]
    assert step["status"] == "FAILED" and "could not start the step" in step["error"]
    assert LocalOrchestrator(stack).get_run(record["run_id"]).steps["call"].status == "FAILED"


def test_resume_refuses_a_non_secret_parameter_even_for_a_finished_run(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    target = write_pipeline(TALKATIVE.replace("__COMPUTE__", "None"))
    done = json.loads(run_cli(project, "run", target, "-p", "api_key=abcdefgh", "--json").stdout)
    proc = run_cli(project, "resume", done["run_id"], "-p", "max_tokens=3")
    assert proc.returncode == 2 and "can only give again a secret parameter" in proc.stderr
    again = run_cli(project, "resume", done["run_id"])
    assert again.returncode == 0 and "taken from" not in again.stderr


def test_a_run_id_prefix_that_fits_several_runs_says_so(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    target = write_pipeline(TALKATIVE.replace("__COMPUTE__", "None"))
    for _ in range(2):
        assert run_cli(project, "run", target, "-p", "api_key=abcdefgh").returncode == 0
    day = LocalOrchestrator(stack).list_runs()[0].run_id[:8]
    proc = run_cli(project, "runs", "show", day)
    assert proc.returncode == 2 and "several run ids" in proc.stderr
    wildcard = run_cli(project, "runs", "show", "%")
    assert wildcard.returncode == 2 and "no run '%'" in wildcard.stderr
