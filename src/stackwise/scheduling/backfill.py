"""Backfills: one pipeline run per data interval in a date range, up to N at once, and never
more than the schedule's `max_active_runs` running at once across processes (as the scheduler).

Idempotent and resumable through the interval ledger: each interval is claimed before it runs,
so a second backfill (or the scheduler) on an overlapping range never runs it twice; rerunning
the same command after a crash resumes what was interrupted and skips what succeeded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stackwise.errors import RunNotFoundError, ScheduleError, StackwiseError, StateStoreError
from stackwise.interval import Interval
from stackwise.scheduling.ledger import Decision, IntervalLedger, Reprocess, decide, key
from stackwise.scheduling.schedule import Schedule, parse_moment

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.orchestrators.base import RunRecord
    from stackwise.orchestrators.local.orchestrator import LocalOrchestrator
    from stackwise.write_turns import Turns

REPROCESS_MODES: tuple[Reprocess, ...] = ("none", "failed", "all")
Mode = Literal["threads", "processes"]


@dataclasses.dataclass(frozen=True)
class PlannedInterval:
    interval: Interval
    decision: Decision


@dataclasses.dataclass
class IntervalOutcome:
    interval: Interval
    action: str
    status: str  # SUCCEEDED, FAILED, KILLED, SKIPPED
    reason: str
    run_id: str | None = None
    mlflow_run_id: str | None = None
    duration_s: float | None = None
    error: str | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # "step.metric": value

    def headline_metrics(self) -> dict[str, float]:
        """The metrics of the last step that logged any (the evaluation, usually)."""
        last = ""
        for name in self.metrics:
            last = name.split(".", 1)[0]
        return {k.split(".", 1)[1]: v for k, v in self.metrics.items() if k.startswith(last + ".")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntervalOutcome:
        """Read `to_dict`'s form (what a worker process sends back)."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"interval"}
        return cls(Interval.from_dict(data), **{k: v for k, v in data.items() if k in fields})

    def to_dict(self) -> dict[str, Any]:
        return {
            "logical_date": self.interval.logical_date.isoformat(),
            "data_interval_start": self.interval.start.isoformat(),
            "data_interval_end": self.interval.end.isoformat(),
            "action": self.action,
            "status": self.status,
            "reason": self.reason,
            "run_id": self.run_id,
            "mlflow_run_id": self.mlflow_run_id,
            "duration_s": self.duration_s,
            "error": self.error,
            "metrics": self.metrics,
        }


def new_backfill_id() -> str:
    return "bf-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def intervals_in_range(schedule: Schedule, start: str, end: str) -> list[Interval]:
    """Intervals whose logical date is in [start, end]. A date-only `end` covers that whole
    day, as Airflow's backfill `--to-date` includes it; times are in the schedule's zone."""
    lo = parse_moment(start, schedule.tz, "--start").astimezone(dt.UTC)
    hi = parse_moment(end, schedule.tz, "--end").astimezone(dt.UTC)
    if len(end.strip()) == 10:  # up to the next local midnight (23, 24 or 25 hours later)
        following = dt.date.fromisoformat(end.strip()) + dt.timedelta(days=1)
        midnight = parse_moment(following, schedule.tz, "--end").astimezone(dt.UTC)
        hi = midnight - dt.timedelta(microseconds=1)
    if hi < lo:
        raise ScheduleError(f"--end {end} is before --start {start}; swap them.")
    found = list(schedule.intervals(lo, hi))
    if not found:
        raise ScheduleError(
            f"no interval of the schedule ({schedule.describe()}) has its logical date between "
            f"{start} and {end}; widen the range or check the schedule's start and end."
        )
    return found


class Backfill:
    def __init__(
        self,
        orchestrator: LocalOrchestrator,
        pipeline: Pipeline,
        params: dict[str, Any],
        intervals: list[Interval],
        *,
        parallel: int = 1,
        reprocess: Reprocess = "failed",
        backfill_id: str | None = None,
    ) -> None:
        if reprocess not in REPROCESS_MODES:
            raise ScheduleError(
                f"--reprocess {reprocess!r} is not one of {', '.join(REPROCESS_MODES)}."
            )
        if parallel < 1:
            raise ScheduleError(f"--parallel {parallel} must be at least 1.")
        self.orchestrator = orchestrator
        self.pipeline = pipeline
        self.params = params
        self.intervals = intervals
        #: The schedule's bound on intervals of this pipeline running at once, in any process.
        self.max_active_runs = pipeline.schedule.max_active_runs if pipeline.schedule else None
        self.parallel = min(parallel, self.max_active_runs or parallel)
        self.warnings: list[str] = []
        if self.parallel < parallel:
            self.warnings.append(
                f"--parallel {parallel} is more than max_active_runs={self.max_active_runs} of "
                f"pipeline {pipeline.name!r}: running at most {self.parallel} interval(s) at "
                "once, counting those running in other processes (raise max_active_runs in its "
                "Schedule to run more)."
            )
        self.reprocess = reprocess
        self.backfill_id = backfill_id or new_backfill_id()
        self.ledger = IntervalLedger(orchestrator.state)
        self._claiming = threading.Lock()
        #: The claims lock of a SQLite state store, opened on first use.
        self._claim_turns: Turns | None = None
        database = self.ledger.engine.url.database
        if self.ledger.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
            from stackwise.write_turns import Turns

            self._claim_turns = Turns(Path(f"{database}.claims.lock"))
        #: How the last `run` ran its intervals: "threads" (in this process) or "processes".
        self.mode: Mode = "threads"
        #: Worker processes only (True), threads only (False), or None: `workers` decides,
        #: and threads of this process run intervals while the workers start.
        self.processes: bool | None = None

    def plan(self) -> list[PlannedInterval]:
        """What would happen now, read without claiming anything (for --dry-run)."""
        rows = self.ledger.rows(self.pipeline.name)
        return [
            PlannedInterval(i, decide(rows.get(key(i)), self.reprocess)) for i in self.intervals
        ]

    def run(
        self,
        on_outcome: Callable[[IntervalOutcome], None] = lambda _o: None,
        cancel: threading.Event | None = None,
    ) -> list[IntervalOutcome]:
        """Run every interval that needs it; returns outcomes in interval order, and reports
        each to `on_outcome` as it comes. Ctrl-C stops the running intervals (marked KILLED,
        resumable) and re-raises. With `--parallel` above 1 the intervals run in worker
        processes when the pipeline can be loaded by reference (see `workers`)."""
        from stackwise.scheduling.workers import dispatch, worker_count

        cancel = cancel or threading.Event()
        if self.processes and self.pipeline.ref is None:
            self.warnings.append(
                f"worker processes were asked for, but pipeline {self.pipeline.name!r} has no "
                "reference a fresh process could load it by (it was not loaded from "
                "'path.py:function' or 'module:function'); its intervals ran on threads of "
                "this process."
            )
        count = worker_count(self)
        outcomes = dispatch(self, self.intervals, cancel, on_outcome, processes=count)
        return [outcomes[key(i)] for i in self.intervals if key(i) in outcomes]

    def process(self, interval: Interval, cancel: threading.Event) -> IntervalOutcome | None:
        """Claim and run (or resume, or skip) one interval, waiting while `max_active_runs`
        intervals run or while another process runs this one; None when `cancel` came first."""
        with self._claiming:  # this process's intervals claim one at a time, in order
            while (claimed := self._claim(interval, within_limit=True)) is None:
                if cancel.wait(0.2):  # all slots taken: wait for one to free up
                    return None
        waited_for = claimed[1].reason if claimed[1].busy else None
        while claimed[1].busy:  # another process runs it: its outcome is ours to report
            if cancel.wait(0.5):
                return None
            with self._claiming:
                claimed = self._claim(interval, within_limit=True) or claimed
        outcome = self._run_claimed(interval, *claimed, cancel)
        if waited_for is not None:
            outcome.reason = f"{outcome.reason} (after waiting: it was {waited_for})"
        return outcome

    def run_interval(self, interval: Interval, cancel: threading.Event) -> IntervalOutcome:
        """Claim, run (or resume) and record one interval. Shared with the scheduler (which
        counts `max_active_runs` itself, before it starts an interval)."""
        claimed = self._claim(interval, within_limit=False)
        assert claimed is not None
        return self._run_claimed(interval, *claimed, cancel)

    def _claim(self, interval: Interval, *, within_limit: bool) -> tuple[str, Decision] | None:
        """Claim `interval` in the ledger; None (nothing claimed) if `within_limit` and
        `max_active_runs` intervals of the pipeline already run in live processes, this one
        included. Counting and claiming happen under one lock shared by every process that
        uses the state store, so two cannot both take the last slot."""
        from stackwise.orchestrators.base import new_run_id

        name = self.pipeline.name
        k = key(interval)
        with self._claims_lock() as conn:  # on PostgreSQL: the whole claim, one transaction
            if within_limit and self.max_active_runs is not None:
                own = self.ledger.rows(name, logical_date=k, conn=conn).get(k)
                wanted = decide(own, self.reprocess).action != "skip"
                if wanted and self.ledger.running(name, conn=conn) >= self.max_active_runs:
                    return None
            run_id = new_run_id()
            decision = self.ledger.claim(
                name, interval, self.reprocess, run_id, self.backfill_id, conn=conn
            )
        return run_id, decision

    @contextlib.contextmanager
    def _claims_lock(self) -> Iterator[Any]:
        """Mutual exclusion between processes: a transaction-scoped advisory lock on
        PostgreSQL, a file lock beside a SQLite database (always on this host). Yields the
        lock's connection on PostgreSQL (the claim reads and writes in the lock's
        transaction, committed when the block ends), None elsewhere."""
        import sqlalchemy as sa

        engine = self.ledger.engine
        if engine.dialect.name == "postgresql":
            digest = hashlib.blake2b(f"stackwise.intervals:{self.pipeline.name}".encode())
            lock_id = int.from_bytes(digest.digest()[:8], "big", signed=True)
            # READ COMMITTED whatever the server's default: the reads after the lock wait must
            # see what the previous holder committed (a snapshot taken at the lock statement,
            # under REPEATABLE READ, would not).
            with engine.connect() as conn:
                conn.execution_options(isolation_level="READ COMMITTED")
                with conn.begin():
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
                    yield conn
        elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            assert self._claim_turns is not None
            with self._claim_turns:  # a blocking flock(2): see stackwise.write_turns
                yield None
        else:
            yield None

    def _run_claimed(
        self, interval: Interval, run_id: str, decision: Decision, cancel: threading.Event
    ) -> IntervalOutcome:
        if decision.action == "skip":
            return IntervalOutcome(interval, "skip", "SKIPPED", decision.reason)
        started = time.monotonic()
        record: RunRecord | None = None
        status, error = "FAILED", None
        try:
            record = self._execute(interval, decision, run_id, cancel)
            status, error = record.status, record.error
        except StackwiseError as exc:
            status = "KILLED" if cancel.is_set() else "FAILED"
            error = exc.message
        except BaseException as exc:
            status, error = (
                ("KILLED" if cancel.is_set() else "FAILED"),
                f"{type(exc).__name__}: {exc}",
            )
        final_run = record.run_id if record else (decision.run_id or run_id)
        self.ledger.finish(self.pipeline.name, interval, final_run, status)
        metrics = {
            f"{step.name}.{k}": v
            for step in (record.steps.values() if record else [])
            for k, v in step.metrics.items()
        }
        return IntervalOutcome(
            interval, decision.action, status, decision.reason, final_run,
            record.mlflow_run_id if record else None,
            round(time.monotonic() - started, 3), error, metrics,
        )  # fmt: skip

    def _secrets(self) -> dict[str, Any]:
        """The secret parameters given to this backfill: what a resumed interval needs again."""
        from stackwise.tracking.redaction import is_secret_name

        return {k: v for k, v in self.params.items() if is_secret_name(k)}

    def _execute(
        self, interval: Interval, decision: Decision, run_id: str, cancel: threading.Event
    ) -> RunRecord:
        if decision.action == "resume" and decision.run_id:
            try:
                return self.orchestrator.resume(decision.run_id, self._secrets(), cancel=cancel)
            except RunNotFoundError:  # claimed, then killed before its run was recorded
                run_id = decision.run_id
            except StateStoreError:
                pass  # the pipeline changed shape: run it afresh
        return self.orchestrator.run(
            self.pipeline,
            self.params,
            interval=interval,
            run_id=run_id if decision.action == "run" or run_id == decision.run_id else None,
            tags={"stackwise.backfill_id": self.backfill_id},
            cancel=cancel,
            # Reprocessing everything means recomputing: corrected raw data behind an interval
            # must not be answered from the cache.
            use_cache=self.reprocess != "all",
        )
