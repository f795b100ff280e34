"""compute: ray on a real local Ray (two CPUs): steps run as Ray tasks in Ray's worker
processes, from a code bundle, with their resources; failures bring their traceback back,
retries are the orchestrator's, impossible requests are refused before anything runs, and a
timeout or Ctrl-C stops the Ray task."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ray_support import log_text, step_runs

import stackwise
from stackwise.config import StackConfig
from stackwise.errors import PipelineValidationError
from stackwise.orchestrators.local import LocalOrchestrator

WritePipeline = Callable[..., str]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


def test_a_step_runs_as_a_ray_task_from_the_code_bundle(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(
        """
        import os
        import ray
        import stackwise as sw

        @sw.step(compute="ray", resources=sw.Resources(cpu=2, memory="64Mi"))
        def remote() -> dict:
            print("hello from the cluster")
            assigned = ray.get_runtime_context().get_assigned_resources()
            return {"pid": os.getpid(), "file": __file__, "cpu": assigned.get("CPU"),
                    "memory": assigned.get("memory")}

        @sw.step
        def here(info: dict) -> dict:
            return {**info, "here": os.getpid()}

        @sw.pipeline
        def pipe() -> None:
            here(remote())
        """
    )
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "SUCCEEDED", run.error
    from stackwise.artifacts.store import ArtifactStore

    info = ArtifactStore(run.artifact_root).get(run.steps["here"].outputs["output"])
    assert info["pid"] != os.getpid() and info["here"] == os.getpid()
    # the code came as a bundle into the workers' cache, not from the project folder
    assert info["file"].startswith(os.environ["STACKWISE_CACHE_DIR"])
    assert not info["file"].startswith(str(project))
    assert info["cpu"] == 2.0 and info["memory"] == 64 * 2**20
    runs = step_runs(run)
    assert runs["remote"].data.tags["stackwise.compute"] == "ray"
    assert runs["here"].data.tags["stackwise.compute"] == "local"
    logs = log_text(run, runs["remote"], "stackwise/logs/remote-attempt1.txt")
    assert "hello from the cluster" in logs


def test_a_failing_remote_step_brings_its_traceback_and_retries(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    marker = project / "attempts.txt"
    ref = write_pipeline(
        f"""
        import pathlib
        import stackwise as sw

        MARKER = pathlib.Path({str(marker)!r})

        def parse(row: int) -> int:
            raise ValueError(f"bad row {{row}}")

        @sw.step(compute="ray", retries=1)
        def flaky() -> int:
            with MARKER.open("a") as fh:
                fh.write("x")
            if len(MARKER.read_text()) == 1:
                return parse(7)
            return 1

        @sw.step(compute="ray")
        def broken(x: int) -> int:
            return parse(x + 41)

        @sw.pipeline
        def pipe() -> None:
            broken(flaky())
        """
    )
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "FAILED"
    assert run.steps["flaky"].status == "SUCCEEDED" and run.steps["flaky"].attempt == 2
    assert marker.read_text() == "xx"
    error = run.steps["broken"].error or ""
    assert "ValueError: bad row 42" in error
    assert "in parse" in error and "in broken" in error  # the remote frames of the user's code
    runs = step_runs(run)
    assert runs["broken"].info.status == "FAILED"
    assert "bad row 42" in runs["broken"].data.tags["stackwise.error"]
    assert runs["flaky (attempt 2)"].info.status == "FINISHED"
    assert runs["flaky"].info.status == "FAILED"


def test_impossible_requests_fail_before_anything_runs(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(
        """
        import stackwise as sw

        @sw.step(compute="ray", resources=sw.Resources(gpu=4))
        def gpus() -> int:
            return 1

        @sw.step(compute="ray", workers=3)
        def wide() -> int:
            return 1

        @sw.step(compute="ray", resources=sw.Resources(cpu=1, memory="4Ti"))
        def huge() -> int:
            return 1

        @sw.pipeline
        def pipe() -> None:
            gpus()
            wide()
            huge()
        """
    )
    started = time.monotonic()
    with pytest.raises(PipelineValidationError) as caught:
        LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))
    assert time.monotonic() - started < 30  # refused, not left pending
    message = caught.value.message
    assert "step 'gpus' asks for 4 GPU(s) per worker but the Ray cluster has none" in message
    assert "1 node: 2 CPUs, no GPU" in message
    assert "step 'wide' asks for 3 workers of 1 CPU but the Ray cluster can place at most 2" in (
        message
    )
    assert "step 'huge' asks for 1 CPU, 4.0 TiB per worker but no node" in message
    assert not (project / ".stackwise" / "state.db").exists()  # nothing was recorded


def test_a_timeout_and_ctrl_c_stop_the_ray_task(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    beats = project / "beats.txt"
    ref = write_pipeline(
        f"""
        import pathlib
        import time
        import stackwise as sw

        BEATS = pathlib.Path({str(beats)!r})

        def beat(seconds: float) -> int:
            for _ in range(int(seconds * 10)):
                with BEATS.open("a") as fh:
                    fh.write("x")
                time.sleep(0.1)
            return 1

        @sw.step(compute="ray", timeout=1.5)
        def slow() -> int:
            return beat(60)

        @sw.step(compute="ray")
        def endless() -> int:
            return beat(60)

        @sw.pipeline
        def timed() -> None:
            slow()

        @sw.pipeline
        def interrupted() -> None:
            endless()
        """
    )
    started = time.monotonic()
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref.replace(":pipe", ":timed")))
    assert time.monotonic() - started < 40
    assert run.steps["slow"].status == "FAILED"
    assert "timed out" in (run.steps["slow"].error or "")
    assert step_runs(run)["slow"].info.status == "FAILED"
    _assert_stopped(beats)

    beats.unlink()
    cancel = threading.Event()
    threading.Timer(3.0, cancel.set).start()
    with pytest.raises(stackwise.errors.StepCancelledError):
        LocalOrchestrator(stack).run(
            stackwise.load_pipeline(ref.replace(":pipe", ":interrupted")), cancel=cancel
        )
    _assert_stopped(beats)
    orchestrator = LocalOrchestrator(stack)
    last = orchestrator.get_run(orchestrator.list_runs(limit=1)[0].run_id)
    assert last.status == "KILLED" and last.steps["endless"].status == "KILLED"
    assert step_runs(last)["endless"].info.status == "KILLED"


def _assert_stopped(beats: Path) -> None:
    """The step's code no longer runs anywhere: its heartbeat file stops growing."""
    assert beats.exists() and beats.stat().st_size > 0
    time.sleep(1.0)
    size = beats.stat().st_size
    time.sleep(1.0)
    assert beats.stat().st_size == size


def test_a_ray_worker_that_dies_fails_the_step(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(
        """
        import os
        import stackwise as sw

        @sw.step(compute="ray")
        def dies() -> int:
            os._exit(3)

        @sw.pipeline
        def pipe() -> None:
            dies()
        """
    )
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "FAILED" and run.steps["dies"].status == "FAILED"
    assert "the Ray worker running it died" in (run.steps["dies"].error or "")
