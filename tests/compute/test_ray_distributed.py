"""A step with workers=2 on a real local Ray: two gang-scheduled workers that really split the
data, every rank's metrics in the step's one MLflow run, rank 0's output as the step's; one
rank failing fails the step at once and stops the other."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient
from ray_support import log_text, step_runs

import stackwise
from stackwise.artifacts.store import ArtifactStore
from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator

WritePipeline = Callable[..., str]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


def test_two_workers_split_the_data_and_record_in_one_run(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(
        """
        import os
        import stackwise as sw

        @sw.step
        def rows() -> list:
            return list(range(20))

        @sw.step(compute="ray", workers=2)
        def train(data: list, ctx: sw.StepContext) -> dict:
            mine = ctx.shard(data)
            for row in mine:
                ctx.log_metric("seen", row, step=row)
            ctx.log_metric("rows", len(mine))
            print(f"rank {ctx.rank}/{ctx.world_size} pid {os.getpid()} via {ctx.rendezvous}")
            return {"rank": ctx.rank, "world": ctx.world_size, "rendezvous": ctx.rendezvous}

        @sw.pipeline
        def pipe() -> None:
            train(rows())
        """
    )
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))

    assert run.status == "SUCCEEDED", run.error
    output = ArtifactStore(run.artifact_root).get(run.steps["train"].outputs["output"])
    assert output["rank"] == 0 and output["world"] == 2  # rank 0's result is the step's
    host, _, port = output["rendezvous"].rpartition(":")
    assert host and port.isdigit()
    runs = step_runs(run)
    assert set(runs) == {"rows", "train"}  # one MLflow run for the two workers
    train = runs["train"]
    assert train.data.tags["stackwise.world_size"] == "2"
    client = MlflowClient(run.tracking_uri or "")
    seen0 = [int(m.value) for m in client.get_metric_history(train.info.run_id, "seen")]
    seen1 = [int(m.value) for m in client.get_metric_history(train.info.run_id, "rank1/seen")]
    assert seen0 and seen1 and not set(seen0) & set(seen1)  # each row seen by one rank...
    assert sorted(seen0 + seen1) == list(range(20))  # ...and every row seen once
    assert train.data.metrics["rows"] == 10 and train.data.metrics["rank1/rows"] == 10
    logs = log_text(run, train, "stackwise/logs/train-attempt1.txt")
    assert "rank 0/2 pid" in logs and "rank 1/2 pid" in logs
    assert logs.count(f"via {output['rendezvous']}") == 2  # both ranks got the same address
    pids = {line.split(" pid ")[1].split()[0] for line in logs.splitlines() if " pid " in line}
    assert len(pids) == 2  # two processes


def test_one_failing_worker_fails_the_step_and_stops_the_other(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    beats = project / "rank0-beats.txt"
    ref = write_pipeline(
        f"""
        import pathlib
        import time
        import stackwise as sw

        BEATS = pathlib.Path({str(beats)!r})

        def check(rank: int) -> None:
            raise RuntimeError(f"rank {{rank}} found a corrupt shard")

        @sw.step(compute="ray", workers=2)
        def train(ctx: sw.StepContext) -> int:
            if ctx.rank == 1:
                for _ in range(300):  # fail once rank 0 is busy
                    if BEATS.exists():
                        break
                    time.sleep(0.1)
                check(ctx.rank)
            for _ in range(600):  # rank 0 would run for a minute
                with BEATS.open("a") as fh:
                    fh.write("x")
                time.sleep(0.1)
            return 0

        @sw.pipeline
        def pipe() -> None:
            train()
        """
    )
    started = time.monotonic()
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))
    assert time.monotonic() - started < 45  # not the minute rank 0 would have taken

    record = run.steps["train"]
    assert run.status == "FAILED" and record.status == "FAILED"
    error = record.error or ""
    assert "rank 1 of 2" in error and "RuntimeError: rank 1 found a corrupt shard" in error
    assert "in check" in error  # the failing rank's traceback
    assert not record.outputs
    train = step_runs(run)["train"]
    assert train.info.status == "FAILED"
    assert "rank 1 found a corrupt shard" in train.data.tags["stackwise.error"]
    size = beats.stat().st_size
    time.sleep(1.0)
    assert beats.stat().st_size == size  # rank 0 was stopped too


def test_a_gang_that_cannot_be_placed_in_time_fails_instead_of_waiting() -> None:
    import queue

    from stackwise import Resources
    from stackwise.compute.ray.backend import RayBackend
    from stackwise.contract import PipelineRef, StepInvocation

    # autoscaling: the up-front check lets it through, as for a cluster expected to grow
    backend = RayBackend(StackConfig(ray={"autoscaling": True, "placement_timeout_s": 1}))
    backend.open()
    resources = Resources(cpu=1, workers=3)
    assert backend.validate(resources, None) == []
    inv = StepInvocation(
        pipeline=PipelineRef(target="flows", name="pipe"), step="wide", run_id="r1",
        artifact_root="memory://a", resources=resources,
    )  # fmt: skip
    done: queue.Queue[object] = queue.Queue()
    started = time.monotonic()
    handle = backend.submit(inv, resources=resources, image=None, on_done=done.put)
    assert done.get(timeout=60) is handle
    assert time.monotonic() - started < 30
    result = handle.result()
    assert result.status == "FAILED" and not result.retryable
    assert "its 3 workers of 1 CPU could not be placed together" in (result.error or "")
    assert "within 1s (1 node: 2 CPUs" in (result.error or "")
    backend.close()  # it did not start this Ray: the session's stays up
    import ray

    assert ray.is_initialized()
