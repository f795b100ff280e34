"""`stackwise reproduce` on the shipped example: the registered version's lineage leads back to
its raw partitions and code, a rerun with the recorded parameters reproduces every metric
exactly (deterministic training) and registers an unpromoted version tagged as a
reproduction; an altered or deleted raw partition is reported by name and digest (exit 1)
before anything runs; a bad reference is one line, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from stackwise.tracking import tags as T

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "examples/breast_cancer/pipeline.py:training"
MODEL = "breast_cancer_classifier"

pytestmark = pytest.mark.slow


def _stackwise(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return subprocess.run([sys.executable, "-m", "stackwise", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the example, run once: version 1 of the model, promoted to staging."""
    folder = tmp_path_factory.mktemp("reproduce")
    shutil.copytree(ROOT / "examples", folder / "examples")
    (folder / "stackwise.yaml").write_text("tracking_uri: sqlite:///.stackwise/mlflow.db\n")
    ran = _stackwise(folder, "run", EXAMPLE, "--json")
    assert ran.returncode == 0, ran.stderr
    return folder


def _client(folder: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{folder / '.stackwise/mlflow.db'}")


def test_the_registered_version_reproduces_its_metrics_exactly(example: Path) -> None:
    done = _stackwise(example, "reproduce", f"models:/{MODEL}/1", "--compare", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["reproduced"] is True and report["metric_differences"] == []
    checks = {c["what"]: c for c in report["checks"]}
    raw = [c for w, c in checks.items() if w.startswith("raw dataset raw/dt=")]
    assert len(raw) == 30 and all(c["ok"] and "matches" in c["detail"] for c in raw)
    assert checks[f"code {EXAMPLE}"]["ok"]

    client = _client(example)
    original = client.get_run(report["pipeline_run_id"])
    again = client.get_run(report["mlflow_run_id"])
    assert again.data.params == original.data.params
    assert again.data.tags[T.REPRODUCES] == f"models:/{MODEL}/1"
    assert again.data.tags[T.PIPELINE_VERSION] == original.data.tags[T.PIPELINE_VERSION]
    # not vacuous: the evaluate step's metrics are the model's, recomputed from scratch
    steps = {r.data.tags[T.STEP]: r for r in client.search_runs(
        [again.info.experiment_id], f"tags.`{T.MLFLOW_PARENT_RUN_ID}` = '{again.info.run_id}'")}
    assert steps["evaluate"].data.tags.get(T.CACHED) != "true"
    assert steps["evaluate"].data.metrics["roc_auc"] > 0.9
    # the rerun registered version 2, tagged as a reproduction and never auto-promoted
    v2 = client.get_model_version(MODEL, "2")
    assert v2.tags[T.REPRODUCES] == f"models:/{MODEL}/1"
    assert str(client.get_model_version_by_alias(MODEL, "staging").version) == "1"


def test_an_altered_raw_partition_is_reported_and_nothing_reruns(example: Path) -> None:
    client = _client(example)
    before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    raw = example / ".stackwise/data/raw"
    altered = raw / "dt=2026-10-15" / "part-0.csv"
    text = altered.read_text()
    altered.write_text(text.replace("2026-10-15", "2026-10-16", 1))  # one row's event date
    assert altered.read_text() != text
    missing = raw / "dt=2026-10-20" / "part-0.csv"
    missing.unlink()
    done = _stackwise(example, "reproduce", f"models:/{MODEL}/1", "--compare")
    assert done.returncode == 1, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert "raw dataset raw/dt=2026-10-15: digest mismatch" in out
    assert "raw dataset raw/dt=2026-10-20: missing" in out
    assert "2 of its inputs are missing or changed" in out
    assert "raw/dt=2026-10-14: digest" in out  # the others are still checked and fine
    after = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    assert after == before


@pytest.mark.parametrize(
    ("ref", "message"),
    [("models:/breast_cancer_classifier@staging", "give models:/NAME/VERSION"),
     ("models:/no_such_model/1", "models:/no_such_model/1"),
     ("runs:/abc/model", "give models:/NAME/VERSION")],
)  # fmt: skip
def test_a_bad_reference_is_one_line_exit_2(example: Path, ref: str, message: str) -> None:
    done = _stackwise(example, "reproduce", ref)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
