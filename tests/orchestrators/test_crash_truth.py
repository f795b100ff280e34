"""Issue 21's faults after kills, each a test that failed before: an MLflow parent left
RUNNING and a second parent on rerun, a second Ctrl-C leaving a step RUNNING, an orphaned
step process running again beside its resume, a reused pid taken for a live owner, and a
moved project losing its runs."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from orch_support import WAIT_S, all_runs, get_run, wait_until
from tests.support import stackwise_cmd

import stackwise
from stackwise.config import StackConfig
from stackwise.orchestrators.base import RunRecord
from stackwise.orchestrators.local import LocalOrchestrator
from stackwise.processes import ProcessIdentity, current_identity, pid_alive
from stackwise.scheduling.ledger import IntervalRow, decide

WritePipeline = Callable[..., str]

FLAKY = """
    import pathlib

    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent

    @step
    def first() -> int:
        return 1

    @step
    def second(x: int) -> int:
        if (HERE / "fail").exists():
            raise RuntimeError("told to fail")
        return x + 1

    @pipeline
    def pipe():
        second(first())
"""


def test_a_run_whose_parent_id_never_reached_the_state_store_resumes_into_the_same_parent(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    """A kill between creating the MLflow parent and recording its id in the state store."""
    (project / "fail").touch()
    pipeline = stackwise.load_pipeline(write_pipeline(FLAKY))
    failed = LocalOrchestrator(stack).run(pipeline)
    assert failed.status == "FAILED"
    db = Path(stack.state_store_resolved.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE stackwise_runs SET mlflow_run_id = NULL, experiment_id = NULL")
    (project / "fail").unlink()

    resumed = LocalOrchestrator(stack).resume(failed.run_id)

    assert resumed.status == "SUCCEEDED"
    assert resumed.mlflow_run_id == failed.mlflow_run_id
    runs = all_runs(resumed.tracking_uri or "", resumed.experiment_id or "")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_id for p in parents] == [failed.mlflow_run_id]
    assert parents[0].info.status == "FINISHED"


SLEEPY = """
    import os
    import pathlib
    import time

    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent

    @step(compute=__COMPUTE__)
    def sleepy() -> int:
        (HERE / f"sleepy.{os.getpid()}.started").write_text(str(time.time()))
        deadline = time.monotonic() + (0.5 if (HERE / "quick").exists() else 60)
        while time.monotonic() < deadline:
            with (HERE / "heartbeat.log").open("a") as fh:
                fh.write(f"{os.getpid()} {time.time()}\\n")
            time.sleep(0.05)
        return 1

    @pipeline
    def pipe():
        sleepy()
"""


def _start(project: Path, target: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(stackwise_cmd("run", target), cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _started(project: Path) -> list[Path]:
    return sorted(project.glob("sleepy.*.started"))


def test_runs_of_a_killed_process_are_closed_by_the_next_run(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    target = write_pipeline(SLEEPY.replace("__COMPUTE__", "None"))
    proc = _start(project, target)
    wait_until(lambda: bool(_started(project)), WAIT_S, "the step to start")
    proc.kill()
    proc.wait()
    killed = LocalOrchestrator(stack).list_runs()[0]
    assert killed.stale and killed.mlflow_run_id
    assert get_run(killed.tracking_uri, killed.mlflow_run_id).info.status == "RUNNING"

    (project / "quick").touch()
    later = LocalOrchestrator(stack).run(stackwise.load_pipeline(target))

    assert later.status == "SUCCEEDED"
    parent = get_run(killed.tracking_uri, killed.mlflow_run_id)
    assert parent.info.status == "KILLED"
    runs = all_runs(later.tracking_uri or "", later.experiment_id or "")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]


def test_a_step_process_dies_with_its_orchestrator_and_resume_never_overlaps_it(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    target = write_pipeline(SLEEPY.replace("__COMPUTE__", "'subprocess'"))
    proc = _start(project, target)
    wait_until(lambda: bool(_started(project)), WAIT_S, "the step process to start")
    step_pid = int(_started(project)[0].name.split(".")[1])
    proc.kill()  # the orchestrator only: the step runs in its own session
    proc.wait()
    wait_until(lambda: not pid_alive(step_pid), 10, "the orphaned step process to stop")
    orchestrator = LocalOrchestrator(stack)
    killed = orchestrator.get_run(orchestrator.list_runs()[0].run_id)
    child = get_run(killed.tracking_uri, killed.steps["sleepy"].mlflow_run_id or _child(killed))
    assert child.info.status == "KILLED"

    (project / "quick").touch()
    resumed = subprocess.run(stackwise_cmd("resume", killed.run_id), cwd=project,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    beats: dict[int, list[float]] = {}
    for line in (project / "heartbeat.log").read_text().splitlines():
        pid, at = line.split()
        beats.setdefault(int(pid), []).append(float(at))
    assert len(beats) == 2
    (first, second) = sorted(beats.values(), key=min)
    assert max(first) < min(second), "the resumed attempt ran while the orphan still ran"


def _child(run: RunRecord) -> str:
    runs = all_runs(run.tracking_uri or "", run.experiment_id or "")
    (child,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run.mlflow_run_id]
    return str(child.info.run_id)


SHUTDOWN = """
    import pathlib
    import time

    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent

    @step
    def stubborn() -> int:
        (HERE / "stubborn.started").touch()
        time.sleep(30)  # one call into C: the stop request waits for its end, or the grace
        return 1

    @step
    def other() -> int:
        time.sleep(30)
        return 2

    @pipeline
    def pipe():
        stubborn()
        other()
"""


def test_more_ctrl_c_during_shutdown_still_close_every_record(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    target = write_pipeline(SHUTDOWN)
    proc = _start(project, target)
    wait_until((project / "stubborn.started").exists, WAIT_S, "the steps to start")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGINT)  # the impatient user, during the 5 s of shutdown
        time.sleep(0.2)
    assert proc.wait(30) == 130
    run = LocalOrchestrator(stack).list_runs()[0]
    assert run.status == "KILLED"
    assert {s.status for s in run.steps.values()} <= {"KILLED", "FAILED"}
    runs = all_runs(run.tracking_uri or "", run.experiment_id or "")
    assert get_run(run.tracking_uri, run.mlflow_run_id).info.status == "KILLED"
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    # abandoned attempts too: the stackwise.status tag says what MLflow's status says
    assert {r.info.run_name: r.data.tags.get("stackwise.status") for r in runs} == {
        r.info.run_name: r.info.status for r in runs
    }


def test_a_reused_pid_is_not_taken_for_the_owner() -> None:
    me = current_identity()
    stranger = ProcessIdentity(me.host, me.pid, "boot:1")  # this pid, another start time
    assert me.alive() and not stranger.alive()
    run = RunRecord("r", "p", "x:p", "v", {}, "RUNNING", 0.0,
                    host=me.host, pid=me.pid, pid_start="boot:1")  # fmt: skip
    assert run.stale
    row = IntervalRow("p", "2026-01-01T00:00:00+00:00", "a", "b", "RUNNING", "run-1", None,
                      me.host, me.pid, 1, pid_start="boot:1")  # fmt: skip
    assert not row.owner_alive
    assert decide(row, "none").action == "resume"


def test_a_moved_project_resumes_its_runs(
    tmp_path: Path, mlflow_db_template: Path, monkeypatch: object
) -> None:
    old = tmp_path / "old-name"
    (old / ".stackwise").mkdir(parents=True)
    shutil.copyfile(mlflow_db_template, old / ".stackwise" / "mlflow.db")
    (old / "pipe.py").write_text(FLAKY.replace("\n    ", "\n"))
    (old / "fail").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    first = subprocess.run(stackwise_cmd("run", "pipe.py:pipe"), cwd=old, env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == 1, first.stderr
    new = tmp_path / "new-name"
    old.rename(new)
    (new / "fail").unlink()
    run_id = LocalOrchestrator(StackConfig(base_dir=new)).list_runs()[0].run_id
    resumed = subprocess.run(stackwise_cmd("resume", run_id), cwd=new, env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    record = LocalOrchestrator(StackConfig(base_dir=new)).get_run(run_id)
    assert record.status == "SUCCEEDED"
    assert record.steps["first"].attempt == 1  # its output was found in the moved store
    assert str(new) in (record.tracking_uri or "")
