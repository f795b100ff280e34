"""Helpers of the dashboard tests (imported by module name; not a test file).

One world for every dashboard test, built once per session the way users build it: the
example pipeline run once, a two-interval backfill of it, a refused and a forced promotion
(CLI, real MLflow and state store in a fresh project folder), plus a run recorded by "another
orchestrator" whose names and values are HTML and script (the injection case)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stackwise.config import StackConfig

REPO = Path(__file__).resolve().parents[2]
REF = f"{REPO / 'examples/breast_cancer/pipeline.py'}:training"
MODEL = "breast_cancer_classifier"
#: What the injection case names things: it must show as text and never run.
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
EVIL_PIPELINE = f"evil{SCRIPT}"
EVIL_STEP = f"step{IMG}"
ARTIFACTS = REPO / "test-artifacts" / "dashboard"


@dataclasses.dataclass
class World:
    folder: Path
    config: StackConfig
    first: dict[str, Any]
    backfill: dict[str, Any]
    evil_run_id: str
    env: dict[str, str]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["STACKWISE_USER"] = "carol"
    return env


def cli(folder: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "stackwise", *args], cwd=folder, env=_env(),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def _inject(config: StackConfig) -> str:
    """A finished run as an orchestrator that allows any name could record it."""
    from stackwise.orchestrators.base import RunRecord, StepRecord
    from stackwise.orchestrators.local.state import StateStore

    state = StateStore(config.state_store_resolved, config.base_dir)
    now = time.time()
    run = RunRecord(
        run_id="20260101-000000-0badc0de", pipeline=EVIL_PIPELINE, pipeline_ref="nowhere.py:x",
        pipeline_version="v", params={"note": SCRIPT, f"p{IMG}": 1}, status="FAILED",
        created_at=now - 5, ended_at=now, orchestrator="airflow", compute="local",
        error=f"boom {SCRIPT}",
        steps={EVIL_STEP: StepRecord(EVIL_STEP, status="FAILED", attempt=2,
                                     duration_s=1.5, error=IMG)},
    )  # fmt: skip
    state.create_run(run, [EVIL_STEP])
    state.finish_step(run.run_id, run.steps[EVIL_STEP])
    return run.run_id


@contextmanager
def serve(folder: Path, env: dict[str, str]) -> Iterator[str]:
    """`stackwise dashboard` itself in `folder`, a real uvicorn server on a free loopback port;
    yields its base URL and stops it on exit."""
    from tests.conftest import free_port, wait_http

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackwise", "dashboard", "--port", str(port)],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/runs", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
