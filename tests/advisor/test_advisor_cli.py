"""`stackwise advise` end to end: real processes (`python -m stackwise`), a real pseudo-terminal
for the questions, stack files that `load_stack` and `stackwise run` read back."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stackwise.config import load_stack

TINY = """
import stackwise

@stackwise.step
def add(x: int, n: int) -> int:
    return x + n

@stackwise.pipeline
def pipe(n: int = 1):
    add(1, n)
"""


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACKWISE_DEBUG", raising=False)


def _stackwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stackwise", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _one_red_line(stderr: str, headline: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith(f"{headline}: "), stderr
    return lines[0]


def test_json_on_the_example_without_a_terminal(project: Path, example_target: str) -> None:
    data = _json(_stackwise("advise", example_target, "--json", cwd=project))
    assert data["orchestrator"]["choice"] == "airflow"
    assert data["compute"]["choice"] == "local"
    assert data["tracker"] == "mlflow"
    assert data["warnings"] == []
    assert data["profile"] == "none"
    assert any("no team profile" in note for note in data["notes"])
    reasons = {r["criterion"]: r for r in data["orchestrator"]["reasons"]}
    assert reasons["airflow.diverse_workflows"]["weight"] == 3
    assert reasons["airflow.diverse_workflows"]["inputs"] == ["workflow_mix"]
    assert data["orchestrator"]["flip"]["to"] == "local"
    assert data["pipeline"]["step_count"] == 6
    assert data["inputs"]["workflow_mix"]["source"] == "pipeline"


def test_rich_report_explains_the_choice(project: Path, gpu_target: str) -> None:
    (project / "team.yaml").write_text("cost_sensitivity: high\nautoscaling: true\n")
    proc = _stackwise("advise", gpu_target, "--profile", "team.yaml", cwd=project)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "orchestrator: kubeflow" in out
    assert "kubeflow.distributed_gpus" in out and "+4" in out
    assert "runner-up:" in out and "Smallest change that makes it" in out
    assert "heavy multi-node GPU training (4 nodes x 8 GPUs)" in out
    assert "image build cost" in out
    assert "tracker: mlflow" in out
    assert "recommended: orchestrator kubeflow" in out
    assert "profile" in out and "pipeline" in out  # sources column
    assert "no team profile" not in out


def test_profile_alone_without_pipeline(project: Path) -> None:
    (project / "team.yaml").write_text("backfill_historical_ranges: true\n")
    data = _json(_stackwise("advise", "--profile", "team.yaml", "--json", cwd=project))
    assert data["pipeline"] is None
    assert data["orchestrator"]["choice"] == "airflow"
    assert data["inputs"]["backfill_historical_ranges"] == {
        "value": True,
        "source": "profile",
        "note": None,
    }
    assert data["profile_path"] == "team.yaml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kubernetes_frist: true\n", "unknown key 'kubernetes_frist'. Did you mean"),
        (
            "autoscaling: sometimes\n",
            "'autoscaling' = 'sometimes' is not allowed; allowed: true or false",
        ),
        ("cost_sensitivity: extreme\n", "allowed: one of low, medium, high"),
    ],
)
def test_bad_profile_exits_2_with_one_line(project: Path, text: str, expected: str) -> None:
    (project / "team.yaml").write_text(text)
    proc = _stackwise("advise", "--profile", "team.yaml", cwd=project)
    assert proc.returncode == 2
    assert expected in _one_red_line(proc.stderr, "invalid team profile")
    assert proc.stdout == ""


def test_missing_profile_file_exits_2(project: Path) -> None:
    proc = _stackwise("advise", "--profile", "nope.yaml", cwd=project)
    assert proc.returncode == 2
    assert "does not exist" in _one_red_line(proc.stderr, "invalid team profile")


def test_bad_pipeline_target_exits_2(project: Path) -> None:
    proc = _stackwise("advise", "nowhere.py:pipe", cwd=project)
    assert proc.returncode == 2
    _one_red_line(proc.stderr, "cannot load pipeline")


def test_write_stack_for_the_example_loads(project: Path, example_target: str) -> None:
    data = _json(
        _stackwise("advise", example_target, "--json", "--write-stack", "stackwise.yaml",
                   cwd=project)
    )  # fmt: skip
    stack_file = project / "stackwise.yaml"
    config = load_stack(stack_file)
    assert config.orchestrator == data["orchestrator"]["choice"] == "airflow"
    assert config.compute == data["compute"]["choice"] == "local"
    assert config.tracking is True
    text = stack_file.read_text()
    assert "#   +3 airflow (airflow.diverse_workflows): workflow_mix = [etl, features" in text
    assert "# airflow runs on your airflow deployment: add a `airflow:` section" in text
    assert "# tracker: mlflow, always" in text


def test_write_stack_refuses_to_overwrite_without_force(project: Path, tmp_path: Path) -> None:
    stack_file = project / "stackwise.yaml"
    stack_file.write_text("orchestrator: local\n")
    (project / "team.yaml").write_text("multi_tenancy_required: true\n")
    args = ["advise", "--profile", "team.yaml", "--write-stack", "stackwise.yaml"]
    proc = _stackwise(*args, cwd=project)
    assert proc.returncode == 2
    assert "pass --force" in _one_red_line(proc.stderr, "advisor error")
    assert stack_file.read_text() == "orchestrator: local\n"
    forced = _stackwise(*args, "--force", cwd=project)
    assert forced.returncode == 0, forced.stderr
    assert "wrote stackwise.yaml" in forced.stderr
    config = load_stack(stack_file)
    assert (config.orchestrator, config.compute) == ("kubeflow", "kubernetes")
    assert "#   - strict multi-tenancy is required" in stack_file.read_text()


def test_running_with_a_written_airflow_stack_asks_for_the_deployment(
    project: Path, write_pipeline: Callable[..., str]
) -> None:
    (project / "team.yaml").write_text("backfill_historical_ranges: true\n")
    proc = _stackwise("advise", "--profile", "team.yaml", "--write-stack", "s.yaml", cwd=project)
    assert proc.returncode == 0, proc.stderr
    run = _stackwise("run", write_pipeline(TINY), "--stack", "s.yaml", cwd=project)
    assert run.returncode == 2
    line = _one_red_line(run.stderr, "invalid stack config")
    assert "airflow.dags_folder is not set in the stack file" in line


def test_questions_in_a_real_terminal(project: Path, example_target: str) -> None:
    """stdin is a pseudo-terminal: the questions are asked (on stderr, so stdout stays JSON),
    a bad answer is asked again, Enter keeps the pipeline's value, Ctrl-D ends the questions."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackwise", "advise", example_target, "--json"],
        cwd=project,
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(secondary)
    try:
        # kubernetes_first, cluster_ops_expertise (bad, then yes), platform capacity,
        # containerized_codebase (Enter: keep the pipeline's), then end of input.
        os.write(main, b"yes\nmaybe\nyes\ndedicated\n\n\x04")
        out, err = proc.communicate(timeout=180)
    finally:
        os.close(main)
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["profile"] == "interactive"
    inputs = data["inputs"]
    assert inputs["kubernetes_first"] == {"value": True, "source": "interactive", "note": None}
    assert inputs["cluster_ops_expertise"]["source"] == "interactive"
    assert inputs["platform_engineering_capacity"]["value"] == "dedicated"
    assert inputs["containerized_codebase"]["source"] == "pipeline"
    assert inputs["autoscaling"]["source"] == "default"
    assert "kubernetes_first" in err and "Enter keeps" in err
    assert "'cluster_ops_expertise' = 'maybe' is not allowed" in err
    assert not any("no team profile" in note for note in data["notes"])


def test_no_input_never_asks(project: Path, example_target: str) -> None:
    main, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "stackwise", "advise", example_target, "--json", "--no-input"],
            cwd=project, stdin=secondary, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        os.close(secondary)
        os.close(main)
    data = _json(proc)
    assert data["profile"] == "none" and "Enter keeps" not in proc.stderr


def test_help_lists_advise_and_its_import_stays_light(project: Path) -> None:
    proc = _stackwise("--help", cwd=project)
    assert proc.returncode == 0 and "advise" in proc.stdout
    options = _stackwise("advise", "--help", cwd=project)
    for option in ("--profile", "--json", "--write-stack", "--force", "--no-input"):
        assert option in options.stdout
    code = (
        "import sys, stackwise.cli.advise; "
        "print(sorted(m for m in ('mlflow', 'pandas', 'stackwise.advisor', 'pydantic') "
        "if m in sys.modules))"
    )
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert light.returncode == 0, light.stderr
    assert light.stdout.strip() == "[]"
