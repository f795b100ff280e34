"""The scheduler loop: run each scheduled pipeline's intervals as they come due.

Its memory is the interval ledger, not the process: after a restart it resumes intervals that
were interrupted, never runs a recorded interval again, and (with `catchup`) runs every
interval it missed while down; without `catchup` only the latest due one, as Airflow does.
`max_active_runs` bounds the intervals of one pipeline running at once, across processes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stackwise.errors import ScheduleError
from stackwise.interval import Interval
from stackwise.scheduling.backfill import Backfill, IntervalOutcome
from stackwise.scheduling.ledger import decide, key

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.orchestrators.local.orchestrator import LocalOrchestrator


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class _Target:
    pipeline: Pipeline
    runner: Backfill
    threads: dict[str, threading.Thread] = dataclasses.field(default_factory=dict)
    #: Catchup scans intervals from here: everything before it is in the ledger or launched,
    #: so a tick does not walk the whole history of an old hourly schedule again.
    cursor: dt.datetime | None = None


class Scheduler:
    def __init__(
        self,
        orchestrator: LocalOrchestrator,
        pipelines: list[Pipeline],
        *,
        params: dict[str, Any] | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        on_outcome: Callable[[IntervalOutcome], None] = lambda _o: None,
        on_start: Callable[[str, Interval, str], None] = lambda _p, _i, _a: None,
        max_tick_s: float = 5.0,
    ) -> None:
        unscheduled = [p.name for p in pipelines if p.schedule is None]
        if unscheduled:
            raise ScheduleError(
                f"pipeline(s) {', '.join(unscheduled)} have no schedule; declare one with "
                "@stackwise.pipeline(schedule=stackwise.Schedule('@daily', start='2026-01-01'))."
            )
        if not pipelines:
            raise ScheduleError(
                "no pipelines to schedule: pass TARGETs or list them under `pipelines:` in "
                "stackwise.yaml."
            )
        self.clock = clock
        self.on_outcome = on_outcome
        self.on_start = on_start
        self.max_tick_s = max_tick_s
        self.cancel = threading.Event()
        self.targets = [
            _Target(
                p,
                Backfill(
                    orchestrator,
                    p,
                    dict(params or {}),
                    [],
                    reprocess="none",
                    backfill_id="scheduler",
                ),
            )  # fmt: skip
            for p in pipelines
        ]

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set, then stop running intervals (KILLED, resumed on restart)
        and wait for them to be recorded."""
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(self._sleep_s())
        finally:
            self.cancel.set()
            for target in self.targets:
                for thread in list(target.threads.values()):
                    thread.join(timeout=60)

    def tick(self) -> list[tuple[str, Interval]]:
        """Start every interval that is due and allowed now; returns what was started."""
        now = self.clock()
        started: list[tuple[str, Interval]] = []
        for target in self.targets:
            target.threads = {k: t for k, t in target.threads.items() if t.is_alive()}
            schedule = target.pipeline.schedule
            assert schedule is not None
            ledger = target.runner.ledger
            rows = ledger.rows(target.pipeline.name)
            # Running = claimed by a live process, or launched here and not yet claimed.
            active = len({k for k, r in rows.items() if r.owner_alive} | set(target.threads))
            candidates = [
                Interval.from_dict(
                    {
                        "logical_date": r.interval_start,
                        "data_interval_start": r.interval_start,
                        "data_interval_end": r.interval_end,
                    }
                )  # fmt: skip
                for r in rows.values()
                if decide(r, "none").action == "resume"
            ]
            if schedule.catchup:
                missing = [
                    i
                    for i in schedule.intervals(target.cursor or schedule.start_at, now)
                    if i.end <= now and key(i) not in rows and key(i) not in target.threads
                ]
                candidates += missing
            else:
                latest = schedule.latest_due(now)
                if latest is not None and key(latest) not in rows:
                    candidates.append(latest)
            waiting: list[Interval] = []
            for interval in sorted(candidates, key=lambda i: i.logical_date):
                if key(interval) in target.threads:
                    continue
                if active >= schedule.max_active_runs:
                    waiting.append(interval)
                    continue
                self._launch(target, interval)
                active += 1
                started.append((target.pipeline.name, interval))
            if schedule.catchup:
                latest = schedule.latest_due(now)
                done_until = latest.end if latest is not None else target.cursor
                target.cursor = waiting[0].logical_date if waiting else done_until
        return started

    def _launch(self, target: _Target, interval: Interval) -> None:
        def work() -> None:
            outcome = target.runner.run_interval(interval, self.cancel)
            self.on_outcome(outcome)

        self.on_start(target.pipeline.name, interval, "start")
        thread = threading.Thread(target=work, daemon=True, name=f"interval-{key(interval)}")
        target.threads[key(interval)] = thread
        thread.start()

    def _sleep_s(self) -> float:
        now = self.clock()
        waits = [self.max_tick_s]
        for target in self.targets:
            assert target.pipeline.schedule is not None
            nxt = target.pipeline.schedule.next_due_at(now)
            if nxt is not None:
                waits.append(max(0.05, (nxt - now).total_seconds()))
        return min(waits)
