"""`stackwise conformance`: the example on local, Airflow (`airflow dags test`) and Kubeflow
(`kfp.local`) leaves the same MLflow records, policy verdicts and lineage raw digests; a
pipeline that behaves differently under Airflow prints the difference as a diff and exits 1;
bad input is one line, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "examples/breast_cancer/pipeline.py:training"

load_commands()


def _stackwise(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "stackwise", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip


@pytest.mark.slow
def test_the_example_conforms_on_local_airflow_and_kubeflow(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    done = _stackwise(tmp_path, "conformance", EXAMPLE, "--orchestrators",
                      "local,airflow,kubeflow", "--policies",
                      "examples/breast_cancer/policies.yaml", "--work", "work", "--json")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    report = json.loads(done.stdout)
    assert report["passed"] is True and report["unavailable"] == {}
    sides = {s["orchestrator"]: s for s in report["sides"]}
    assert set(sides) == {"airflow", "kubeflow"}
    assert sides["airflow"]["reference"].startswith("local backfill of [2026-06-07T00:00:00")
    for side in sides.values():
        assert side["differences"] == [] and side["error"] is None
        verdict = side["verdicts"]["breast_cancer_classifier"]
        # not vacuous: every rule of both aliases was evaluated (production waits for approval)
        assert "staging: " in verdict and "metric accuracy=ok" in verdict
        assert "production: fail" in verdict and "approval=FAIL" in verdict
    # a week of raw partitions under Airflow's interval; 30 days unscheduled (kfp.local)
    assert len(sides["airflow"]["raw_digests"]["breast_cancer_classifier"]) == 7
    assert len(sides["kubeflow"]["raw_digests"]["breast_cancer_classifier"]) == 30
    work = tmp_path / "work"
    assert {p.name for p in work.iterdir()} >= {"local", "local-interval", "airflow", "kubeflow"}


TINY = """
import os

import stackwise as sw


@sw.step
def count(n: int) -> int:
    sw.log_metric("rows", n)
    if "AIRFLOW_HOME" in os.environ:  # behaves differently on Airflow: must be caught
        sw.log_metric("airflow_only", 1.0)
    return n


@sw.pipeline(schedule=sw.Schedule("@daily", start="2026-03-01"))
def tiny(n: int = 3) -> None:
    count(n)
"""


@pytest.mark.slow
def test_a_difference_prints_as_a_diff_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "tiny.py").write_text(TINY)
    done = _stackwise(tmp_path, "conformance", "flows/tiny.py:tiny", "--orchestrators",
                      "local,airflow", "--date", "2026-03-02")
    assert done.returncode == 1, done.stdout[-5000:] + done.stderr[-5000:]
    out = done.stdout
    assert "airflow vs local backfill of [2026-03-02T00:00:00+00:00" in out
    assert "1 differences" in out
    assert "+ step 'count' metric keys unexpected: airflow_only" in out


@pytest.mark.parametrize(
    ("value", "message"),
    [("local,airflw", "unknown orchestrator 'airflw' in --orchestrators"),
     ("airflow,kubeflow", "needs local (the reference)"),
     ("local", "needs local (the reference) and at least one other")],
)  # fmt: skip
def test_bad_orchestrators_are_one_line_exit_2(project: Path, value: str, message: str) -> None:
    result = CliRunner().invoke(app, ["conformance", "x.py:p", "--orchestrators", value])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
