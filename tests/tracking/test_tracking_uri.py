"""One process, two stacks (a notebook, a test session): each run tracks to its own store."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient

from stackwise.authoring.loader import load_pipeline
from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator

PIPELINE = """
import mlflow
import stackwise as sw

@sw.step
def work() -> int:
    mlflow.log_metric("plain", 1.0)
    return 1

@sw.pipeline
def pipe() -> None:
    work()
"""


def test_two_stacks_in_one_process_track_to_their_own_stores(
    project: Path, write_pipeline: Callable[[str], str]
) -> None:
    pipeline = load_pipeline(write_pipeline(PIPELINE))
    first, second = StackConfig(base_dir=project / "a"), StackConfig(base_dir=project / "b")
    for stack in (first, second):
        (project / stack.base_dir).mkdir(exist_ok=True)
        record = LocalOrchestrator(stack).run(pipeline, use_cache=False)
        assert record.status == "SUCCEEDED"
        assert record.tracking_uri == stack.tracking_uri_resolved
        # MLflow exports the URI it is given; stackwise must not leave it behind, or it would
        # override the next stack's tracking_uri.
        assert "MLFLOW_TRACKING_URI" not in os.environ
    for stack in (first, second):
        client = MlflowClient(stack.tracking_uri_resolved)
        runs = client.search_runs([client.get_experiment_by_name("pipe").experiment_id])
        assert len(runs) == 2  # its own parent and child only
        child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
        assert child.data.metrics["plain"] == 1.0  # plain mlflow calls followed the stack
