"""`--parallel N` on worker processes: Ctrl-C, SIGTERM or SIGKILL of the backfill leaves the
intervals its workers ran KILLED (or RUNNING with a dead owner) and resumable, with no worker
left behind and no step executed twice; secret parameters reach the workers only over their
socket; a worker that cannot load the pipeline leaves its share to threads; and when processes
are not used (--parallel 1, a pipeline without a reference, one interval to run)."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sched_support import (
    WAIT_S,
    all_runs,
    day,
    days,
    executions,
    pid_alive,
    pipe_source,
    run_json,
    set_behaviour,
    stackwise_cmd,
    wait_until,
)

from stackwise import load_pipeline
from stackwise.authoring.pipeline import Pipeline
from stackwise.config import StackConfig, load_stack
from stackwise.interval import Interval
from stackwise.orchestrators.local import LocalOrchestrator, StateStore
from stackwise.scheduling.backfill import Backfill, intervals_in_range
from stackwise.scheduling.ledger import IntervalLedger
from stackwise.scheduling.workers import PROCESS_MIN_INTERVALS, usable_cores, worker_count

WritePipeline = Callable[..., str]
DAILY = 'Schedule("@daily", start="2026-01-01")'
STEPS = ("extract", "transform", "load")


LAST = "2026-03-01"  # enough intervals that the backfill's own thread is busy while workers start


def _stop_mid_run(project: Path, ref: str, how: str, name: str) -> tuple[int, set[int]]:
    """Start a --parallel 2 backfill (one worker process beside its own thread) whose step
    transform never ends in the worker; once every other interval succeeded (so the backfill
    itself runs none), stop it `how`; its exit code and the worker's pid."""
    set_behaviour(project, sleep={"transform": {"*": 120}}, outside_workers={"transform": 0.3})
    args = ("backfill", ref, "--start", "2026-01-01", "--end", LAST, "--parallel", "2")
    with (project / "first.out").open("wb") as out:
        proc = subprocess.Popen(stackwise_cmd(*args), cwd=project, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    ledger = IntervalLedger(StateStore(load_stack().state_store_resolved))
    try:

        def only_the_worker_runs() -> bool:
            if proc.poll() is not None:
                raise AssertionError((project / "first.out").read_text())
            statuses = Counter(r.status for r in ledger.rows(name).values())
            return statuses == {"SUCCEEDED": len(days("2026-01-01", LAST)) - 1, "RUNNING": 1}

        wait_until(only_the_worker_runs, WAIT_S * 3, "all but the worker's interval to succeed")
        pids = {e["pid"] for e in executions(project)} - {proc.pid}
        assert len(pids) == 1
        if how == "SIGINT":  # Ctrl-C in a terminal: the whole foreground process group
            os.killpg(proc.pid, signal.SIGINT)
        else:  # the backfill process alone
            proc.send_signal(getattr(signal, how))
        code = proc.wait(timeout=WAIT_S)
        wait_until(lambda: not any(pid_alive(p) for p in pids), WAIT_S, "the worker to exit")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return code, pids


def _check_stopped_then_resumed(
    project: Path, stack: StackConfig, ref: str, how: str, name: str = "pipe"
) -> None:
    code, pids = _stop_mid_run(project, ref, how, name)

    assert code == {"SIGINT": 130, "SIGTERM": 130, "SIGKILL": -9}[how], (
        project / "first.out"
    ).read_text()
    ledger = IntervalLedger(StateStore(load_stack().state_store_resolved))
    rows = {day(r.interval_start): r for r in ledger.rows(name).values()}
    in_workers = {d: r for d, r in rows.items() if r.pid in pids and r.status != "SUCCEEDED"}
    assert len(in_workers) == 1, rows
    # The workers recorded what they were running as KILLED before exiting.
    assert {r.status for r in in_workers.values()} == {"KILLED"}, in_workers
    state = StateStore(load_stack().state_store_resolved)
    assert {state.get_run(r.run_id or "").status for r in in_workers.values()} == {"KILLED"}
    assert not [r for r in all_runs(stack.tracking_uri_resolved, name)
                if r.info.status == "RUNNING"]  # fmt: skip

    set_behaviour(project)
    code, report = run_json(project, "backfill", ref, "--start", "2026-01-01", "--end", LAST,
                            "--parallel", "2")  # fmt: skip

    assert code == 0, report
    outcome = {day(i["logical_date"]): i for i in report["intervals"]}
    assert {d: o["status"] for d, o in outcome.items()} == dict.fromkeys(
        days("2026-01-01", LAST), "SUCCEEDED"
    ) | {d: "SKIPPED" for d, r in rows.items() if r.status == "SUCCEEDED"}
    for d, row in in_workers.items():  # resumed, same run: its extract is not run again
        assert (outcome[d]["action"], outcome[d]["run_id"]) == ("resume", row.run_id)
    counted = Counter((e["step"], day(e["logical_date"])) for e in executions(project))
    assert counted == Counter({(s, d): 1 for s in STEPS for d in days("2026-01-01", LAST)})
    assert {r.status for r in ledger.rows(name).values()} == {"SUCCEEDED"}


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_stopping_a_process_backfill_leaves_its_intervals_killed_and_resumable(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, how: str
) -> None:
    ref = write_pipeline(pipe_source(DAILY))

    _check_stopped_then_resumed(project, stack, ref, how)


@pytest.mark.slow
def test_ctrl_c_of_a_process_backfill_on_postgres_is_resumable(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, pg_url: str
) -> None:
    name = f"bfp_{uuid.uuid4().hex[:12]}"
    (project / "stackwise.yaml").write_text(f"state_store: {pg_url}\n")
    ref = write_pipeline(pipe_source(DAILY, name=name))

    _check_stopped_then_resumed(project, stack, ref, "SIGINT", name)


SECRET = "s3cr3t-" + uuid.uuid4().hex
SECRET_PIPE = """
    import os
    import pathlib
    import sys
    import time

    from stackwise import Schedule, StepContext, pipeline, step

    HERE = pathlib.Path(__file__).parent


    @step
    def use(api_token: str, ctx: StepContext) -> int:
        seen = HERE / f"seen-{os.getpid()}-{ctx.logical_date:%Y-%m-%d}"
        seen.write_text(str(api_token == os.environ.get("EXPECTED_API_TOKEN", "?")))
        while sys.argv[0] == "-c" and not (HERE / "go").exists():  # workers wait
            time.sleep(0.05)
        if sys.argv[0] != "-c":  # the backfill's own threads, while the workers start
            time.sleep(2)
        return len(api_token)


    @pipeline(schedule=Schedule("@daily", start="2026-01-01"))
    def pipe(api_token: str = "unset"):
        use(api_token)
"""


def test_secret_parameters_reach_the_workers_only_over_their_socket(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(SECRET_PIPE)
    cmd = stackwise_cmd("backfill", ref, "--start", "2026-01-01", "--end", LAST,
                        "--parallel", "2", "-p", f"api_token={SECRET}", "--json")  # fmt: skip
    # What the steps compare with, under a secret-looking name (environment manifests drop
    # it); the parameter itself must reach the workers only over their socket.
    env = {**os.environ, "EXPECTED_API_TOKEN": SECRET}
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:

        def worker_pids() -> set[int]:
            return {int(p.name.split("-")[1]) for p in project.glob("seen-*")} - {proc.pid}

        wait_until(lambda: len(worker_pids()) >= 1, WAIT_S * 2, "a worker to run the step")
        for pid in worker_pids():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert SECRET.encode() not in cmdline and b"-c\0" in cmdline
            assert SECRET.encode() not in environ.replace(
                f"EXPECTED_API_TOKEN={SECRET}".encode(), b""
            )
        (project / "go").touch()
        out, err = proc.communicate(timeout=WAIT_S * 2)
    finally:
        (project / "go").touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert SECRET not in out and SECRET not in err
    seen = {p.name: p.read_text() for p in project.glob("seen-*")}
    assert len(seen) == len(days("2026-01-01", LAST)) and set(seen.values()) == {"True"}, seen
    for path in (project / ".stackwise").rglob("*"):  # no file of the project holds it
        if path.is_file() and path.suffix not in (".db-wal", ".db-shm"):
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_worker_that_cannot_load_the_pipeline_leaves_its_share_to_threads(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    refuse = 'import sys\nif sys.argv[0] == "-c":\n    raise ImportError("not in workers")\n'
    pipeline = load_pipeline(write_pipeline(refuse + textwrap.dedent(pipe_source(DAILY))))
    assert pipeline.schedule is not None
    intervals = intervals_in_range(pipeline.schedule, "2026-01-01", "2026-01-04")
    job = Backfill(LocalOrchestrator(stack), pipeline, {}, intervals, parallel=2)
    job.processes = True

    outcomes = job.run()

    assert [o.status for o in outcomes] == ["SUCCEEDED"] * 4
    assert job.mode == "threads"
    assert len(job.warnings) == 2 and all("could not start" in w for w in job.warnings)
    assert "ImportError" in job.warnings[0] and "not in workers" in job.warnings[0]
    assert {e["pid"] for e in executions(project)} == {os.getpid()}


def test_cancel_stops_worker_processes_and_returns_what_they_recorded(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(pipe_source(DAILY))
    set_behaviour(project, sleep={"transform": {"*": 120}})
    pipeline = load_pipeline(ref)
    assert pipeline.schedule is not None
    intervals = intervals_in_range(pipeline.schedule, "2026-01-01", "2026-01-05")
    job = Backfill(LocalOrchestrator(stack), pipeline, {}, intervals, parallel=2)
    job.processes = True
    cancel = threading.Event()
    seen: list[str] = []
    result: list[list[str]] = []
    runner = threading.Thread(
        target=lambda: result.append(
            [o.status for o in job.run(on_outcome=lambda o: seen.append(o.status), cancel=cancel)]
        )
    )
    runner.start()
    try:
        wait_until(lambda: len(executions(project)) == 2, WAIT_S * 2, "two extracts to finish")
    finally:
        cancel.set()
        runner.join(timeout=WAIT_S * 2)
    assert not runner.is_alive()
    assert result == [["KILLED", "KILLED"]] and seen == ["KILLED", "KILLED"]
    assert job.mode == "processes"
    assert {e["pid"] for e in executions(project)} & {os.getpid()} == set()
    rows = IntervalLedger(StateStore(stack.state_store_resolved)).rows("pipe")
    assert sorted(day(r.interval_start) for r in rows.values()) == days("2026-01-01", "2026-01-02")
    assert {r.status for r in rows.values()} == {"KILLED"}
    assert not any(pid_alive(r.pid or 0) for r in rows.values())


def test_processes_are_used_only_where_they_can_help(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    pipeline = load_pipeline(write_pipeline(pipe_source(DAILY)))
    assert pipeline.schedule is not None
    orchestrator = LocalOrchestrator(stack)
    many = intervals_in_range(pipeline.schedule, "2026-01-01", LAST)  # 60
    assert len(many) >= PROCESS_MIN_INTERVALS

    def count(p: Pipeline, intervals: list[Interval], parallel: int, **kw: bool) -> int:
        job = Backfill(orchestrator, p, {}, intervals, parallel=parallel)
        job.processes = kw.get("processes")
        return worker_count(job)

    assert count(pipeline, many, 2) == 1  # beside this process
    # --parallel 3: two workers where there are 3 cores or more; never more workers than
    # cores beside this process's own (at least one).
    assert count(pipeline, many, 3) == min(2, max(1, usable_cores() - 1))
    assert count(pipeline, many, 64) == max(1, usable_cores() - 1)
    assert count(pipeline, many, 1) == 0  # --parallel 1
    assert count(pipeline.replace(ref=None), many, 2) == 0  # nothing a process could load
    few = many[: PROCESS_MIN_INTERVALS - 1]  # a worker's start would cost more than it brings
    assert count(pipeline, few, 2) == 0
    assert count(pipeline, few, 2, processes=True) == 2  # --workers processes: always
    assert count(pipeline, many, 2, processes=False) == 0  # --workers threads


def test_an_unknown_workers_mode_is_refused_before_anything_runs(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(pipe_source(DAILY))
    proc = subprocess.run(
        stackwise_cmd("backfill", ref, "--start", "2026-01-01", "--end", "2026-01-02",
                      "--parallel", "2", "--workers", "fork"),
        cwd=project, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--workers 'fork' is not one of auto, processes, threads" in proc.stderr
    assert not (project / ".stackwise").exists() or not IntervalLedger(
        StateStore(stack.state_store_resolved)
    ).rows("pipe")



HOLDER = '''
import os
import sys
import time
from pathlib import Path

import stackwise as sw


@sw.step
def hold() -> int:
    if sys.argv[0] == "-c":  # in a backfill worker: fork a long-lived child, then hang
        child = os.fork()
        if child == 0:
            time.sleep(300)
            os._exit(0)
        Path(os.environ["HOLD_DIR"], f"{os.getpid()}-{child}").touch()
        time.sleep(300)
    return 1


@sw.pipeline(schedule=sw.Schedule("@daily", start="2026-01-01"))
def pipe() -> None:
    hold()
'''


def test_a_dead_worker_is_noticed_while_a_process_it_forked_holds_its_socket(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A step's forked child keeps the worker's socket open after the worker is SIGKILLed:
    the backfill must still see the worker gone and report its interval, not wait forever."""
    marks = project / "holds"
    marks.mkdir()
    monkeypatch.setenv("HOLD_DIR", str(marks))
    pipeline = load_pipeline(write_pipeline(HOLDER))
    assert pipeline.schedule is not None
    intervals = intervals_in_range(pipeline.schedule, "2026-01-01", "2026-01-01")
    job = Backfill(LocalOrchestrator(stack), pipeline, {}, intervals, parallel=1)
    job.processes = True
    result: list[list[str]] = []
    runner = threading.Thread(target=lambda: result.append([o.status for o in job.run()]))
    runner.start()
    child = 0
    try:
        wait_until(lambda: any(marks.iterdir()), WAIT_S * 2, "the step to fork its child")
        worker, child = (int(p) for p in next(marks.iterdir()).name.split("-"))
        os.kill(worker, signal.SIGKILL)
        runner.join(timeout=WAIT_S * 2)
        assert not runner.is_alive(), "the backfill still waits for its dead worker"
    finally:
        if child:
            os.kill(child, signal.SIGKILL)
        runner.join(timeout=WAIT_S * 2)
    assert result == [["FAILED"]]


@pytest.mark.parametrize("processes", [True, False])
def test_intervals_keep_the_schedules_offsets_across_a_dst_change_in_either_mode(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline, processes: bool
) -> None:
    """A step sees its logical date at the schedule zone's offset of that moment (summer time
    in Paris begins at 02:00 on 2026-03-29), whether a worker process or a thread ran it."""
    schedule = 'Schedule("@daily", start="2026-03-27", timezone="Europe/Paris")'
    pipeline = load_pipeline(write_pipeline(pipe_source(schedule)))
    assert pipeline.schedule is not None
    intervals = intervals_in_range(pipeline.schedule, "2026-03-27", "2026-03-30")
    job = Backfill(LocalOrchestrator(stack), pipeline, {}, intervals, parallel=1)
    job.processes = processes

    assert [o.status for o in job.run()] == ["SUCCEEDED"] * 4
    assert job.mode == ("processes" if processes else "threads")
    zones = {day(e["logical_date"]): e["zone"] for e in executions(project)}
    assert zones == {"2026-03-27": "UTC+01:00", "2026-03-28": "UTC+01:00",
                     "2026-03-29": "UTC+01:00", "2026-03-30": "UTC+02:00"}  # fmt: skip


def test_asking_for_processes_for_a_pipeline_without_a_reference_says_it_used_threads(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    pipeline = load_pipeline(write_pipeline(pipe_source(DAILY))).replace(ref=None)
    assert pipeline.schedule is not None
    intervals = intervals_in_range(pipeline.schedule, "2026-01-01", "2026-01-02")
    job = Backfill(LocalOrchestrator(stack), pipeline, {}, intervals, parallel=2)
    job.processes = True

    job.run()  # its intervals fail: their steps cannot find the pipeline either

    assert job.mode == "threads"
    assert any("has no reference" in w and "ran on threads" in w for w in job.warnings)
