"""`stackwise run --json` on the local orchestrator, and `runs list/show --json` agreeing with
it. In process through Typer's CliRunner, plus one real `python -m stackwise` process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from orch_support import parse_json, run_cli
from typer.testing import CliRunner

import stackwise.cli.commands  # noqa: F401  (registers the commands on the app)
from stackwise.cli.main import app
from stackwise.config import StackConfig

WritePipeline = Callable[..., str]

PIPE = """
    import stackwise
    from stackwise import pipeline, step


    @step
    def make(n: int) -> list:
        return list(range(n))


    @step
    def score(xs: list, lr: float) -> float:
        stackwise.log_metric("score", sum(xs) * lr)
        if lr < 0:
            raise ValueError("negative learning rate")
        return sum(xs) * lr


    @step
    def publish(value: float) -> dict:
        return {"value": value}


    @pipeline
    def pipe(n: int = 4, lr: float = 1.0):
        publish(score(make(n), lr))
"""

STEP_KEYS = {"name", "status", "cached", "mlflow_run_id", "duration_s"}


@pytest.fixture
def cli() -> Callable[..., Any]:
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def _json(result: Any) -> Any:
    return json.loads(result.stdout)


def test_run_json_reports_the_run_and_runs_commands_agree(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, cli: Callable[..., Any]
) -> None:
    ref = write_pipeline(PIPE)

    result = cli("run", ref, "--json", "-p", "lr=0.5")

    assert result.exit_code == 0, result.output
    data = _json(result)
    assert data["status"] == "SUCCEEDED"
    assert data["run_id"] and data["mlflow_run_id"]
    assert data["params"] == {"n": 4, "lr": 0.5}
    assert [s["name"] for s in data["steps"]] == ["make", "score", "publish"]
    client = MlflowClient(stack.tracking_uri_resolved)
    parent = client.get_run(data["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["stackwise.run_id"] == data["run_id"]
    for s in data["steps"]:
        assert set(s) >= STEP_KEYS
        assert s["status"] == "SUCCEEDED"
        assert s["cached"] is False
        assert isinstance(s["duration_s"], float) and s["duration_s"] > 0
        child = client.get_run(s["mlflow_run_id"])
        assert child.info.run_name == s["name"]
        assert child.data.tags["mlflow.parentRunId"] == data["mlflow_run_id"]
    assert client.get_run(data["steps"][1]["mlflow_run_id"]).data.metrics == {"score": 3.0}

    listed = cli("runs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    entries = _json(listed)
    assert len(entries) == 1
    assert "steps" not in entries[0]
    assert {k: entries[0][k] for k in ("run_id", "status", "mlflow_run_id", "pipeline")} == {
        k: data[k] for k in ("run_id", "status", "mlflow_run_id", "pipeline")
    }

    shown = cli("runs", "show", data["run_id"], "--json")
    assert shown.exit_code == 0, shown.output
    assert _json(shown) == data
    by_prefix = cli("runs", "show", data["run_id"][:-3], "--json")
    assert _json(by_prefix) == data

    cached = _json(cli("run", ref, "--json", "-p", "lr=0.5"))
    assert cached["status"] == "SUCCEEDED"
    assert cached["run_id"] != data["run_id"]
    assert [s["cached"] for s in cached["steps"]] == [True, True, True]
    fresh = _json(cli("run", ref, "--json", "-p", "lr=0.5", "--no-cache"))
    assert [s["cached"] for s in fresh["steps"]] == [False, False, False]
    assert [e["run_id"] for e in _json(cli("runs", "list", "--json"))] == [
        fresh["run_id"],
        cached["run_id"],
        data["run_id"],
    ]


def test_run_json_exits_1_when_a_step_fails(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, cli: Callable[..., Any]
) -> None:
    ref = write_pipeline(PIPE)

    result = cli("run", ref, "--json", "-p", "lr=-1")

    assert result.exit_code == 1, result.output
    data = _json(result)
    assert data["status"] == "FAILED"
    steps = {s["name"]: s for s in data["steps"]}
    assert {n: s["status"] for n, s in steps.items()} == {
        "make": "SUCCEEDED",
        "score": "FAILED",
        "publish": "SKIPPED",
    }
    assert "negative learning rate" in steps["score"]["error"]
    assert steps["publish"]["mlflow_run_id"] is None
    client = MlflowClient(stack.tracking_uri_resolved)
    assert client.get_run(data["mlflow_run_id"]).info.status == "FAILED"
    assert client.get_run(steps["score"]["mlflow_run_id"]).info.status == "FAILED"

    shown = cli("runs", "show", data["run_id"], "--json")
    assert shown.exit_code == 0
    assert _json(shown) == data
    listed = _json(cli("runs", "list", "--json"))
    assert [(e["run_id"], e["status"]) for e in listed] == [(data["run_id"], "FAILED")]


def test_cli_process_prints_only_json_on_stdout(
    project: Path, write_pipeline: WritePipeline
) -> None:
    """A real process, with MLflow creating its store from scratch (and logging about it):
    stdout must still be exactly one JSON document."""
    ref = write_pipeline(PIPE)

    result = run_cli(project, "run", ref, "--json", "-p", "n=3")

    assert result.returncode == 0, result.stderr
    data = parse_json(result.stdout)
    assert data["status"] == "SUCCEEDED"
    assert data["params"] == {"n": 3, "lr": 1.0}
    assert (project / ".stackwise" / "mlflow.db").exists()
    shown = run_cli(project, "runs", "show", data["run_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert parse_json(shown.stdout) == data
