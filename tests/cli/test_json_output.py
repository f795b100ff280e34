"""Every `--json` output is JSON a strict parser accepts: a NaN or infinite metric is printed
as `null` (JSON has no such numbers), in `run`, `resume`, `runs show`, `runs list` and
`backfill`, as the README's `--json` section says."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands
from stackwise.config import StackConfig

load_commands()

PIPE = """
import pathlib

import stackwise as sw

HERE = pathlib.Path(__file__).parent


@sw.step
def measure() -> float:
    sw.log_metrics({"nan": float("nan"), "inf": float("inf"), "neg_inf": float("-inf")})
    sw.log_metric("fine", 0.5)
    return 1.0


@sw.step
def gate(x: float) -> float:
    if (HERE / "fail").exists():
        raise RuntimeError("asked to fail")
    sw.log_metric("gate_inf", float("inf"))
    return x


@sw.pipeline(schedule=sw.Schedule("@daily", start="2026-01-01"))
def pipe() -> None:
    gate(measure())
"""

MEASURED = {"nan": None, "inf": None, "neg_inf": None, "fine": 0.5}


def strict_json(text: str) -> Any:
    """json.loads, refusing the NaN/Infinity tokens Python's json module accepts by default."""

    def refuse(token: str) -> Any:
        raise AssertionError(f"not JSON: {token} in the --json output")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def cli(stack: StackConfig, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.delenv("STACKWISE_DEBUG", raising=False)

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(app, list(args), catch_exceptions=False)

    return invoke


def _steps(data: dict[str, Any]) -> dict[str, Any]:
    return {s["name"]: s for s in data["steps"]}


def test_run_resume_and_runs_print_non_finite_metrics_as_null(
    project: Path, stack: StackConfig, write_pipeline: Callable[[str], str], cli: Any
) -> None:
    ref = write_pipeline(PIPE)
    (project / "fail").write_text("")
    failed = cli("run", ref, "--json")
    assert failed.exit_code == 1, failed.output
    data = strict_json(failed.stdout)
    assert _steps(data)["measure"]["metrics"] == MEASURED

    (project / "fail").unlink()
    resumed = cli("resume", data["run_id"], "--json")
    assert resumed.exit_code == 0, resumed.output
    after = strict_json(resumed.stdout)
    assert after["status"] == "SUCCEEDED"
    assert _steps(after)["measure"]["metrics"] == MEASURED
    assert _steps(after)["gate"]["metrics"] == {"gate_inf": None}

    shown = strict_json(cli("runs", "show", data["run_id"], "--json").stdout)
    assert shown == after
    listed = strict_json(cli("runs", "list", "--json").stdout)
    assert [r["run_id"] for r in listed] == [data["run_id"]]

    # MLflow keeps what it can (NaN; inf clamped to the largest float): only the JSON says null.
    client = MlflowClient(stack.tracking_uri_resolved)
    kept = client.get_run(_steps(after)["measure"]["mlflow_run_id"]).data.metrics
    assert kept["inf"] >= sys.float_info.max and math.isnan(kept["nan"])


def test_backfill_json_prints_non_finite_metrics_as_null(
    project: Path, write_pipeline: Callable[[str], str], cli: Any
) -> None:
    ref = write_pipeline(PIPE)
    result = cli("backfill", ref, "--start", "2026-01-01", "--end", "2026-01-02", "--json")
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert [i["status"] for i in data["intervals"]] == ["SUCCEEDED", "SUCCEEDED"]
    for interval in data["intervals"]:
        assert interval["metrics"]["measure.inf"] is None
        assert interval["metrics"]["measure.fine"] == 0.5
        assert interval["metrics"]["gate.gate_inf"] is None


def test_advise_refuses_an_infinite_build_time_and_its_json_is_strict(
    project: Path, cli: Any
) -> None:
    (project / "team.yaml").write_text("image_build_minutes: .inf\ncode_changes_per_day: 3\n")
    refused = cli("advise", "--profile", "team.yaml", "--json", "--no-input")
    assert refused.exit_code == 2
    assert "image_build_minutes" in refused.stderr and refused.stdout == ""

    (project / "team.yaml").write_text("image_build_minutes: 12.5\ncode_changes_per_day: 6\n")
    result = cli("advise", "--profile", "team.yaml", "--json", "--no-input")
    assert result.exit_code == 0, result.output
    assert strict_json(result.stdout)["iteration_cost"]["minutes_per_day"] == 75.0
