"""The scheduler loop. In process, with an injected clock and `tick()` called directly:
catchup runs every due interval, no catchup only the latest, `max_active_runs` bounds what runs
at once, intervals that have not ended wait, and a later tick runs only what is new. As a
process (`stackwise scheduler start`): SIGTERM stops it cleanly, and after a restart the
intervals are contiguous from the schedule's start, none ran twice, nothing is left RUNNING."""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sched_support import (
    WAIT_S,
    all_runs,
    executions,
    parents,
    pipe_source,
    set_behaviour,
    stackwise_cmd,
    wait_until,
)

from stackwise import load_pipeline
from stackwise.config import StackConfig
from stackwise.interval import Interval
from stackwise.orchestrators.local import LocalOrchestrator, StateStore
from stackwise.scheduling.ledger import IntervalLedger
from stackwise.scheduling.scheduler import Scheduler

WritePipeline = Callable[..., str]

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _hourly(**options: object) -> str:
    extra = "".join(f", {k}={v!r}" for k, v in options.items())
    return f'Schedule(every="1h", start="2026-01-01T00:00:00+00:00"{extra})'


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = [now]

    def __call__(self) -> dt.datetime:
        return self.now[0]

    def set(self, now: dt.datetime) -> None:
        self.now[0] = now


@pytest.fixture
def make_scheduler(
    stack: StackConfig, write_pipeline: WritePipeline
) -> Iterator[Callable[[str, Clock], Scheduler]]:
    made: list[Scheduler] = []

    def make(schedule: str, clock: Clock) -> Scheduler:
        pipeline = load_pipeline(write_pipeline(pipe_source(schedule)))
        scheduler = Scheduler(LocalOrchestrator(stack), [pipeline], clock=clock)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:  # never leave interval threads behind
        scheduler.cancel.set()
        _join(scheduler)


def _join(scheduler: Scheduler) -> None:
    for target in scheduler.targets:
        for thread in list(target.threads.values()):
            thread.join(timeout=WAIT_S)
            assert not thread.is_alive(), f"{thread.name} still runs"


def _started(started: list[tuple[str, Interval]]) -> list[dt.datetime]:
    return [interval.logical_date for _, interval in started]


def _ran(project: Path, step: str = "load") -> Counter[dt.datetime]:
    return Counter(
        dt.datetime.fromisoformat(e["logical_date"])
        for e in executions(project)
        if e["step"] == step
    )


def _failures(stack: StackConfig) -> list[str]:
    """What went wrong in the runs the state store holds (for assertion messages)."""
    out = []
    for run in StateStore(stack.state_store_resolved).list_runs():
        if run.status != "SUCCEEDED":
            steps = {n: (s.status, s.error) for n, s in run.steps.items() if s.error}
            out.append(f"{run.run_id} {run.interval} {run.status} {run.error} {steps}")
    return out


def _ledger(stack: StackConfig) -> dict[dt.datetime, str]:
    rows = IntervalLedger(StateStore(stack.state_store_resolved)).rows("pipe")
    return {dt.datetime.fromisoformat(r.interval_start): r.status for r in rows.values()}


def test_catchup_runs_every_ended_interval_then_only_new_ones(
    project: Path, stack: StackConfig, make_scheduler: Callable[[str, Clock], Scheduler]
) -> None:
    clock = Clock(T0 + 3.5 * HOUR)
    scheduler = make_scheduler(_hourly(catchup=True), clock)

    first = scheduler.tick()
    _join(scheduler)

    # [00,01), [01,02), [02,03) have ended; [03,04) contains "now" and waits.
    assert _started(first) == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert _ran(project) == Counter([T0, T0 + HOUR, T0 + 2 * HOUR]), _failures(stack)
    seen = {
        dt.datetime.fromisoformat(e["logical_date"]): (
            dt.datetime.fromisoformat(e["start"]),
            dt.datetime.fromisoformat(e["end"]),
        )
        for e in executions(project)
    }
    assert seen == {T0 + k * HOUR: (T0 + k * HOUR, T0 + (k + 1) * HOUR) for k in range(3)}
    assert _ledger(stack) == {T0 + k * HOUR: "SUCCEEDED" for k in range(3)}
    assert scheduler.tick() == []  # same clock: nothing new, nothing twice

    clock.set(T0 + 5.5 * HOUR)
    second = scheduler.tick()
    _join(scheduler)

    assert _started(second) == [T0 + 3 * HOUR, T0 + 4 * HOUR]
    assert _ran(project) == Counter(T0 + k * HOUR for k in range(5))
    assert len(executions(project)) == 15
    assert _ledger(stack) == {T0 + k * HOUR: "SUCCEEDED" for k in range(5)}
    mlflow_runs = all_runs(stack.tracking_uri_resolved, "pipe")
    assert len(parents(mlflow_runs)) == 5
    assert {r.data.tags["stackwise.backfill_id"] for r in parents(mlflow_runs)} == {"scheduler"}
    assert {r.info.status for r in mlflow_runs} == {"FINISHED"}


def test_without_catchup_only_the_latest_due_interval_runs(
    project: Path, stack: StackConfig, make_scheduler: Callable[[str, Clock], Scheduler]
) -> None:
    clock = Clock(T0 + 5.5 * HOUR)
    scheduler = make_scheduler(_hourly(catchup=False), clock)

    first = scheduler.tick()
    _join(scheduler)

    assert _started(first) == [T0 + 4 * HOUR]
    assert _ran(project) == Counter([T0 + 4 * HOUR])
    assert scheduler.tick() == []

    clock.set(T0 + 7.25 * HOUR)  # [05,06) and [06,07) ended meanwhile: only [06,07) runs
    second = scheduler.tick()
    _join(scheduler)

    assert _started(second) == [T0 + 6 * HOUR]
    assert _ran(project) == Counter([T0 + 4 * HOUR, T0 + 6 * HOUR])
    assert _ledger(stack) == {T0 + 4 * HOUR: "SUCCEEDED", T0 + 6 * HOUR: "SUCCEEDED"}


def test_without_catchup_every_hour_of_a_repeated_hour_runs_once(
    project: Path, stack: StackConfig, make_scheduler: Callable[[str, Clock], Scheduler]
) -> None:
    """Issue 20: hourly in Chicago on 2024-11-03, when 01:00-01:59 happens twice (06:00Z and
    07:00Z). Ticking every hour through the night, each tick runs the hour that just ended;
    at 07:30Z that is [06:00Z, 07:00Z), which the old arithmetic never ran."""
    schedule = 'Schedule("@hourly", start="2024-11-01", timezone="America/Chicago")'
    clock = Clock(dt.datetime(2024, 11, 3, 5, 30, tzinfo=dt.UTC))
    scheduler = make_scheduler(schedule, clock)
    started = []

    for hour in (5, 6, 7, 8):
        clock.set(dt.datetime(2024, 11, 3, hour, 30, tzinfo=dt.UTC))
        started += _started(scheduler.tick())
        _join(scheduler)

    expected = [dt.datetime(2024, 11, 3, hour, tzinfo=dt.UTC) for hour in (4, 5, 6, 7)]
    assert started == expected
    assert _ran(project) == Counter(expected)


def test_nothing_runs_before_the_first_interval_ends(
    project: Path, stack: StackConfig, make_scheduler: Callable[[str, Clock], Scheduler]
) -> None:
    clock = Clock(T0 + 0.99 * HOUR)
    scheduler = make_scheduler(_hourly(catchup=True), clock)

    assert scheduler.tick() == []
    clock.set(T0 + HOUR)  # the first interval ends exactly now: it is due
    started = scheduler.tick()
    _join(scheduler)

    assert _started(started) == [T0]
    assert _ran(project) == Counter([T0])


def _max_in_flight(project: Path) -> int:
    """The most intervals that were running at one moment, from the recorded step times."""
    spans: dict[str, list[float]] = {}
    for e in executions(project):
        span = spans.setdefault(e["logical_date"], [e["t0"], e["t1"]])
        span[0], span[1] = min(span[0], e["t0"]), max(span[1], e["t1"])
    return max(sum(1 for b0, b1 in spans.values() if b0 <= a0 < b1) for a0, _ in spans.values())


def test_max_active_runs_bounds_intervals_running_at_once(
    project: Path, stack: StackConfig, make_scheduler: Callable[[str, Clock], Scheduler]
) -> None:
    set_behaviour(project, sleep={"extract": {"*": 1.0}})
    clock = Clock(T0 + 5 * HOUR)
    scheduler = make_scheduler(_hourly(catchup=True, max_active_runs=2), clock)

    first = scheduler.tick()
    wait_until(
        lambda: list(_ledger(stack).values()) == ["RUNNING", "RUNNING"], 10, "two RUNNING rows"
    )
    second = scheduler.tick()  # both still run (each takes > 1 s): no room

    assert _started(first) == [T0, T0 + HOUR]
    assert second == []
    _join(scheduler)

    assert _started(scheduler.tick()) == [T0 + 2 * HOUR, T0 + 3 * HOUR]
    _join(scheduler)
    assert _started(scheduler.tick()) == [T0 + 4 * HOUR]
    _join(scheduler)

    assert _ran(project) == Counter(T0 + k * HOUR for k in range(5))
    assert _max_in_flight(project) == 2


def test_back_to_back_ticks_respect_max_active_runs_while_claims_are_slow(
    project: Path, stack: StackConfig, make_scheduler: Callable[[str, Clock], Scheduler]
) -> None:
    """The scheduler's own interval threads count against max_active_runs even before they
    have claimed their ledger rows (a busy state store delays the claims: here another
    connection holds SQLite's write lock for a moment; reads go on, as in WAL mode)."""
    set_behaviour(project, sleep={"extract": {"*": 0.5}})
    clock = Clock(T0 + 5 * HOUR)
    scheduler = make_scheduler(_hourly(catchup=True, max_active_runs=2), clock)
    db = sqlite3.connect(stack.state_store_resolved.removeprefix("sqlite:///"), timeout=30)
    try:
        db.execute("BEGIN IMMEDIATE")  # writers wait; readers do not
        first = scheduler.tick()
        second = scheduler.tick()
    finally:
        db.rollback()
        db.close()
    _join(scheduler)

    assert _started(first) == [T0, T0 + HOUR]
    assert second == [], f"{len(first) + len(second)} intervals started with max_active_runs=2"
    assert _max_in_flight(project) <= 2


# -- as a process: SIGTERM and restart ---------------------------------------------------------
def _start_scheduler(project: Path, ref: str, log: str) -> subprocess.Popen[bytes]:
    with (project / log).open("wb") as out:
        return subprocess.Popen(
            stackwise_cmd("scheduler", "start", ref),
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes], project: Path, log: str) -> float:
    """SIGTERM; return how long it took to exit (which must be 0)."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = (project / log).read_text()
    assert code == 0, output
    assert "scheduler stopped" in output, output
    return time.monotonic() - sent


def test_scheduler_restart_continues_without_gaps_or_repeats(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    every = dt.timedelta(seconds=2)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=10)
    ref = write_pipeline(
        pipe_source(f'Schedule(every="2s", start="{start.isoformat()}", catchup=True)')
    )
    set_behaviour(project, sleep={"extract": {"*": 1.5}})
    state = StateStore(stack.state_store_resolved)
    ledger = IntervalLedger(state)

    def recorded() -> int:
        return sum(1 for r in ledger.rows("pipe").values() if r.status == "SUCCEEDED")

    def one_running() -> bool:
        return any(r.status == "RUNNING" for r in ledger.rows("pipe").values())

    first = _start_scheduler(project, ref, "first.out")
    try:
        wait_until(lambda: recorded() >= 3, WAIT_S, "the first intervals to succeed")
        # From now on an interval takes 10 s, so the one running when SIGTERM arrives is still
        # running then, however slowly this machine delivers the signal.
        set_behaviour(project, sleep={"extract": {"*": 10}})
        time.sleep(2.5)  # an extract begun before the change (1.5 s) has ended by now
        wait_until(one_running, WAIT_S, "an interval to be running")
    finally:
        took = _stop(first, project, "first.out")
        set_behaviour(project, sleep={"extract": {"*": 1.5}})
    assert took < 20
    after_first = recorded()
    assert after_first >= 3
    # The interval(s) running at SIGTERM were stopped and recorded KILLED, with their runs.
    leftover = [r for r in ledger.rows("pipe").values() if r.status != "SUCCEEDED"]
    assert leftover and {r.status for r in leftover} == {"KILLED"}, leftover
    killed = {r.logical_date: r.run_id for r in leftover}
    assert {state.get_run(r.run_id).status for r in leftover if r.run_id} == {"KILLED"}

    restarted_at = dt.datetime.now(dt.UTC)
    second = _start_scheduler(project, ref, "second.out")
    try:
        missed = [start + k * every for k in range((restarted_at - start) // every)]

        def caught_up() -> bool:
            done = {
                dt.datetime.fromisoformat(r.interval_start)
                for r in ledger.rows("pipe").values()
                if r.status == "SUCCEEDED"
            }
            return done >= set(missed)

        wait_until(caught_up, WAIT_S, "every interval that ended while down to succeed")
        wait_until(lambda: recorded() >= len(missed) + 1, WAIT_S, "a new interval to succeed")
    finally:
        took = _stop(second, project, "second.out")
    assert took < 20

    # The killed intervals were resumed (same run), not run afresh.
    now_rows = ledger.rows("pipe")
    assert {k: (now_rows[k].status, now_rows[k].run_id) for k in killed} == {
        k: ("SUCCEEDED", run_id) for k, run_id in killed.items()
    }

    rows = sorted(ledger.rows("pipe").values(), key=lambda r: r.interval_start)
    starts = [dt.datetime.fromisoformat(r.interval_start) for r in rows]
    assert starts[0] == start
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [every] * (len(rows) - 1)
    assert all(
        dt.datetime.fromisoformat(r.interval_end) - dt.datetime.fromisoformat(r.interval_start)
        == every
        for r in rows
    )
    assert {r.status for r in rows} <= {"SUCCEEDED", "KILLED"}, [r.status for r in rows]
    # Whatever had ended before the restart was caught up (or resumed) by the second process.
    done = {dt.datetime.fromisoformat(r.interval_start) for r in rows if r.status == "SUCCEEDED"}
    assert done >= set(missed)

    counted = Counter((e["step"], e["logical_date"]) for e in executions(project))
    assert counted and max(counted.values()) == 1, [k for k, n in counted.items() if n > 1]
    loaded = {dt.datetime.fromisoformat(d) for (step, d) in counted if step == "load"}
    assert loaded >= done
    # An interval stopped at the second SIGTERM may have finished its last step just before;
    # its run then records that step SUCCEEDED, so a resume will not execute it again.
    for r in rows:
        if dt.datetime.fromisoformat(r.interval_start) in loaded - done:
            assert r.status == "KILLED" and r.run_id
            assert state.get_run(r.run_id).steps["load"].status == "SUCCEEDED"

    assert {r.status for r in state.list_runs(limit=500)} <= {"SUCCEEDED", "KILLED"}
    runs = all_runs(stack.tracking_uri_resolved, "pipe")
    assert runs
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
