"""Failure paths a demanding user hits: secrets that travel through step inputs, steps that
swallow their timeout, bad metric names, parameters read behind the cache's back, racing
cache writes, and stack settings that must fail before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient
from tests.conftest import free_port

from stackwise.authoring.loader import load_pipeline
from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator, StateStore

SECRET = "S3cretValue-4242"


def _children(stack: StackConfig, experiment: str) -> dict[str, object]:
    client = MlflowClient(stack.tracking_uri_resolved)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    return {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}


def test_secret_parameter_is_masked_wherever_it_travels(
    stack: StackConfig, write_pipeline: Callable[[str], str]
) -> None:
    ref = write_pipeline(
        """
        import stackwise as sw

        @sw.step
        def connect(conn: str) -> None:
            sw.log_dataset(b"rows", name="users", source=f"postgresql://app:{conn}@db/prod")
            raise RuntimeError(f"login refused for password {conn}")

        @sw.pipeline
        def pipe(db_password: str = "unset") -> None:
            connect(db_password)
        """
    )
    record = LocalOrchestrator(stack).run(load_pipeline(ref), {"db_password": SECRET})
    assert record.status == "FAILED"
    run = _children(stack, "pipe")["connect"]
    dumped = json.dumps(
        [run.data.params, run.data.tags, [d.dataset.source for d in run.inputs.dataset_inputs]]  # type: ignore[attr-defined]
    )
    assert SECRET not in dumped
    assert "REDACTED" in run.data.params["conn"]  # type: ignore[attr-defined]
    assert "REDACTED" in run.data.tags["stackwise.error"]  # type: ignore[attr-defined]


def test_a_step_that_swallows_its_timeout_still_ends_failed(
    stack: StackConfig, write_pipeline: Callable[[str], str]
) -> None:
    ref = write_pipeline(
        """
        import time
        import stackwise as sw

        @sw.step(timeout=1)
        def stubborn() -> int:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                try:
                    time.sleep(0.05)
                except Exception:  # a broad handler must not hide the timeout
                    pass
            return 1

        @sw.pipeline
        def pipe() -> None:
            stubborn()
        """
    )
    started = time.monotonic()
    record = LocalOrchestrator(stack).run(load_pipeline(ref))
    assert time.monotonic() - started < 4  # stopped, not run to its end
    step = record.steps["stubborn"]
    assert step.status == "FAILED" and "timed out" in (step.error or "")
    time.sleep(4)  # long after: the attempt must not have rewritten its MLflow run
    run = _children(stack, "pipe")["stubborn"]
    assert run.info.status == "FAILED"  # type: ignore[attr-defined]


def test_bad_metric_name_fails_the_step_with_a_clear_error(
    stack: StackConfig, write_pipeline: Callable[[str], str]
) -> None:
    ref = write_pipeline(
        """
        import stackwise as sw

        @sw.step(retries=1)
        def score() -> int:
            sw.log_metric("acc@top5", 0.9)
            return 1

        @sw.pipeline
        def pipe() -> None:
            score()
        """
    )
    record = LocalOrchestrator(stack).run(load_pipeline(ref))
    step = record.steps["score"]
    assert step.status == "FAILED"
    assert "metric name 'acc@top5' is not valid in MLflow" in (step.error or "")
    runs = [r for n, r in _children(stack, "pipe").items() if n.startswith("score")]
    assert runs and all(r.info.status == "FAILED" for r in runs)  # type: ignore[attr-defined]


def test_reading_params_without_declaring_the_context_is_refused(
    stack: StackConfig, write_pipeline: Callable[[str], str]
) -> None:
    ref = write_pipeline(
        """
        import stackwise as sw

        @sw.step
        def scaled() -> float:
            return 10.0 * sw.current_context().params["factor"]

        @sw.pipeline
        def pipe(factor: float = 1.0) -> None:
            scaled()
        """
    )
    record = LocalOrchestrator(stack).run(load_pipeline(ref), {"factor": "2"})
    step = record.steps["scaled"]
    assert step.status == "FAILED"
    assert "does not declare a StepContext parameter" in (step.error or "")


def test_two_processes_caching_the_same_step_both_succeed(stack: StackConfig) -> None:
    from stackwise.caching import CacheEntry

    state = StateStore(stack.state_store_resolved)
    for run_id in ("run-a", "run-b"):  # the second write hits the existing cache key
        state.cache_record(
            CacheEntry(key="k" * 64, pipeline="pipe", step="s", outputs={}, run_id=run_id)
        )
    entry = state.cache_lookup("k" * 64)
    assert entry is not None and entry.run_id == "run-b"


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stackwise", *args], cwd=project,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


SCHEDULED = """
import stackwise as sw

@sw.step
def touch(ctx: sw.StepContext) -> str:
    return str(ctx.logical_date)

@sw.pipeline(schedule=sw.Schedule("@daily", start="2026-01-01"))
def pipe() -> None:
    touch()
"""


def test_backfill_json_with_unreachable_tracking_fails_before_claiming(
    project: Path, write_pipeline: Callable[[str], str]
) -> None:
    ref = write_pipeline(SCHEDULED)
    (project / "stackwise.yaml").write_text(f"tracking_uri: http://127.0.0.1:{free_port()}\n")
    result = _cli(project, "backfill", ref, "--start", "2026-01-01", "--end", "2026-01-03",
                  "--json")  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cannot reach the MLflow tracking server" in result.stderr
    from stackwise.scheduling.ledger import IntervalLedger

    state = StateStore(StackConfig(base_dir=project).state_store_resolved)
    assert IntervalLedger(state).rows("pipe") == {}  # nothing claimed, nothing marked FAILED


def test_unwritable_artifact_store_fails_before_any_step(
    project: Path, write_pipeline: Callable[[str], str]
) -> None:
    ref = write_pipeline(SCHEDULED.replace("@daily", "@hourly"))
    blocker = project / "a-file"
    blocker.write_text("not a folder")
    (project / "stackwise.yaml").write_text(f"artifact_store: {blocker}/artifacts\n")
    result = _cli(project, "run", ref)
    assert result.returncode == 2, result.stderr
    assert "is not writable" in result.stderr
    assert StateStore(StackConfig(base_dir=project).state_store_resolved).list_runs() == []
