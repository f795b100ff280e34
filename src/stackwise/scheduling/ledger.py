"""The interval ledger: one row per (pipeline, logical date), in the run state store.

It is what makes backfills and the scheduler idempotent, resumable and safe to run twice at
once. Before running an interval a process *claims* its row in one transaction (an insert, or
an update conditioned on the row's previous owner and status); of two processes claiming the
same interval, exactly one wins, on SQLite and PostgreSQL alike. A row left RUNNING by a
process that died is stale and can be claimed again, which resumes the interval's run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import time
from typing import Any, Literal

from stackwise.interval import Interval
from stackwise.orchestrators.local.state import StateStore, add_missing_columns, create_tables
from stackwise.processes import current_identity, identity_alive

Reprocess = Literal["none", "failed", "all"]
Action = Literal["run", "resume", "skip"]


@dataclasses.dataclass(frozen=True)
class IntervalRow:
    pipeline: str
    logical_date: str
    interval_start: str
    interval_end: str
    status: str
    run_id: str | None
    backfill_id: str | None
    host: str | None
    pid: int | None
    version: int
    pid_start: str | None = None

    @property
    def owner_alive(self) -> bool:
        """RUNNING in a process that still runs: judged by host, pid and start time (another
        host cannot be checked and counts as alive)."""
        if self.status != "RUNNING" or self.pid is None:
            return False
        return identity_alive(self.host, self.pid, self.pid_start)


@dataclasses.dataclass
class BackfillSummary:
    """One backfill as the ledger holds it: `counts` maps an interval status to how many of
    the backfill's intervals have it; `first`/`last` are logical dates (UTC ISO), `updated_at`
    epoch seconds of its latest change."""

    backfill_id: str
    pipeline: str
    first: str
    last: str
    updated_at: float
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do with one interval: run it afresh, resume its earlier run, or skip it."""

    action: Action
    reason: str
    run_id: str | None = None  # the run to resume
    #: Skipped only because a live process runs it now: its outcome is still to come.
    busy: bool = False


def key(interval: Interval) -> str:
    """The ledger key of an interval: its logical date as a UTC ISO timestamp."""
    return interval.logical_date.astimezone(dt.UTC).isoformat()


def decide(row: IntervalRow | None, reprocess: Reprocess) -> Decision:
    """The one rule table for every caller (backfill, dry run, scheduler)."""
    if row is None:
        return Decision("run", "new interval")
    if reprocess == "all" and not (row.status == "RUNNING" and row.owner_alive):
        return Decision("run", f"{row.status.lower()}; reprocessing all from scratch")
    if row.status == "RUNNING":
        if row.owner_alive:
            return Decision("skip", f"running in pid {row.pid} on {row.host}", busy=True)
        return Decision(*_resume_or_run(row, "its process died"))
    if row.status == "KILLED":
        return Decision(*_resume_or_run(row, "it was interrupted"))
    if row.status == "SUCCEEDED":
        return Decision("skip", "already succeeded")
    if reprocess == "failed":
        return Decision(*_resume_or_run(row, "it failed"))
    return Decision("skip", "failed; --reprocess none")


def _resume_or_run(row: IntervalRow, why: str) -> tuple[Action, str, str | None]:
    if row.run_id:
        return "resume", f"resuming: {why}", row.run_id
    return "run", f"rerunning: {why}", None


class IntervalLedger:
    def __init__(self, state: StateStore) -> None:
        import sqlalchemy as sa

        self.engine = state.engine
        self.turns = state.turns
        md = sa.MetaData()
        self.table = sa.Table(
            "stackwise_intervals", md,
            sa.Column("pipeline", sa.String(256), primary_key=True),
            sa.Column("logical_date", sa.String(64), primary_key=True),
            sa.Column("interval_start", sa.String(64), nullable=False),
            sa.Column("interval_end", sa.String(64), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("run_id", sa.String(64)),
            sa.Column("backfill_id", sa.String(64)),
            sa.Column("host", sa.String(256)),
            sa.Column("pid", sa.Integer),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.Column("pid_start", sa.String(64)),
        )  # fmt: skip
        create_tables(md, self.engine)
        add_missing_columns(self.engine, [self.table])

    def rows(
        self,
        pipeline: str,
        *,
        status: str | None = None,
        logical_date: str | None = None,
        conn: Any = None,
    ) -> dict[str, IntervalRow]:
        """The pipeline's rows by logical date (only those with `status`, or the one of
        `logical_date`, when given: a backfill's claims read a few rows, not the history).
        `conn`: read in the caller's transaction (a claim under its lock), else on a
        connection of its own."""
        import sqlalchemy as sa

        t = self.table
        query = sa.select(t).where(t.c.pipeline == pipeline)
        if status is not None:
            query = query.where(t.c.status == status)
        if logical_date is not None:
            query = query.where(t.c.logical_date == logical_date)
        if conn is not None:
            return {r.logical_date: self._row(r) for r in conn.execute(query).all()}
        with self.engine.connect() as own:
            return {r.logical_date: self._row(r) for r in own.execute(query).all()}

    def claim(
        self,
        pipeline: str,
        interval: Interval,
        reprocess: Reprocess,
        run_id: str,
        backfill_id: str | None,
        *,
        conn: Any = None,
    ) -> Decision:
        """Decide and take ownership atomically. A `run` decision records `run_id` as the
        interval's run; a `resume` keeps the earlier run id. `skip` changes nothing.

        `conn`: read and write in the caller's transaction (a backfill's claim, under its
        lock: one transaction on PostgreSQL instead of five); the caller commits. Without
        it, each try reads and writes in a transaction of its own."""
        for _ in range(3):  # lost a race: read again and decide again
            if conn is not None:
                decision, won = self._try_claim(conn, pipeline, interval, reprocess, run_id,
                                                backfill_id)  # fmt: skip
            else:
                with self.turns, self.engine.begin() as own:
                    decision, won = self._try_claim(own, pipeline, interval, reprocess, run_id,
                                                    backfill_id)  # fmt: skip
            if won:
                return decision
        return Decision("skip", "claimed by another process")

    def _try_claim(
        self,
        conn: Any,
        pipeline: str,
        interval: Interval,
        reprocess: Reprocess,
        run_id: str,
        backfill_id: str | None,
    ) -> tuple[Decision, bool]:
        """One read-decide-write on `conn`: (decision, True) when it stands (a skip, or the
        row taken), (decision, False) when another process changed the row in between. Never
        raises on that race (an insert that finds the row there inserts nothing), so a
        caller's transaction stays usable for the next try."""
        import sqlalchemy as sa

        k = key(interval)
        t = self.table
        found = conn.execute(
            sa.select(t).where((t.c.pipeline == pipeline) & (t.c.logical_date == k))
        ).first()
        row = self._row(found) if found is not None else None
        decision = decide(row, reprocess)
        if decision.action == "skip":
            return decision, True
        me = current_identity()
        new_run = run_id if decision.action == "run" else decision.run_id
        values = {"status": "RUNNING", "run_id": new_run, "backfill_id": backfill_id,
                  "host": me.host, "pid": me.pid, "pid_start": me.start,
                  "updated_at": time.time()}  # fmt: skip
        if row is None:
            return decision, self._insert_if_absent(conn, {
                "pipeline": pipeline, "logical_date": k,
                "interval_start": interval.data_interval_start.isoformat(),
                "interval_end": interval.data_interval_end.isoformat(), "version": 1, **values,
            })  # fmt: skip
        # Optimistic: only if nobody changed the row since we read it.
        cond = (t.c.pipeline == pipeline) & (t.c.logical_date == k) & (t.c.version == row.version)
        update = t.update().where(cond).values(version=row.version + 1, **values)
        return decision, conn.execute(update).rowcount == 1

    def _insert_if_absent(self, conn: Any, row: dict[str, Any]) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING (PostgreSQL and SQLite alike); True if the row
        went in. On PostgreSQL the statement returns the inserted key (SQLAlchemy's result
        gave a row count of -1 for it there); SQLite's count is exact (RETURNING would need
        SQLite 3.35+)."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(self.table).values(**row).on_conflict_do_nothing()
            return conn.execute(stmt.returning(self.table.c.pipeline)).first() is not None
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        plain = sqlite_insert(self.table).values(**row).on_conflict_do_nothing()
        return bool(conn.execute(plain).rowcount == 1)

    def finish(self, pipeline: str, interval: Interval, run_id: str, status: str) -> None:
        """Record the outcome, only if this process still owns the interval."""
        t = self.table
        with self.turns, self.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(
                    (t.c.pipeline == pipeline)
                    & (t.c.logical_date == key(interval))
                    & (t.c.pid == os.getpid())
                    & (t.c.host == socket.gethostname())
                )
                .values(
                    status=status, run_id=run_id, updated_at=time.time(), version=t.c.version + 1
                )  # fmt: skip
            )

    def backfills(self, limit: int = 200) -> list[BackfillSummary]:
        """Every backfill that holds ledger rows, newest first: its pipeline, how many intervals
        it last claimed, and how many of those are in each status."""
        import sqlalchemy as sa

        t = self.table
        query = (
            sa.select(
                t.c.backfill_id, t.c.pipeline, t.c.status, sa.func.count(),
                sa.func.min(t.c.logical_date), sa.func.max(t.c.logical_date),
                sa.func.max(t.c.updated_at),
            )
            .where(t.c.backfill_id.is_not(None))
            .group_by(t.c.backfill_id, t.c.pipeline, t.c.status)
        )  # fmt: skip
        found: dict[tuple[str, str], BackfillSummary] = {}
        with self.engine.connect() as conn:
            for bf, pipeline, status, count, first, last, updated in conn.execute(query).all():
                summary = found.setdefault(
                    (bf, pipeline), BackfillSummary(bf, pipeline, first, last, updated, {})
                )
                summary.counts[status] = int(count)
                summary.first = min(summary.first, first)
                summary.last = max(summary.last, last)
                summary.updated_at = max(summary.updated_at, updated)
        newest = sorted(found.values(), key=lambda s: s.updated_at, reverse=True)
        return newest[:limit]

    def backfill_rows(self, backfill_id: str) -> list[IntervalRow]:
        """The rows a backfill claimed last (a later backfill over the same interval takes the
        row over), in logical-date order."""
        import sqlalchemy as sa

        t = self.table
        query = sa.select(t).where(t.c.backfill_id == backfill_id).order_by(t.c.logical_date)
        with self.engine.connect() as conn:
            return [self._row(r) for r in conn.execute(query).all()]

    def running(self, pipeline: str, *, conn: Any = None) -> int:
        """Intervals of `pipeline` running now in live processes (`conn`: as for `rows`)."""
        rows = self.rows(pipeline, status="RUNNING", conn=conn)
        return sum(1 for r in rows.values() if r.owner_alive)

    @staticmethod
    def _row(r: Any) -> IntervalRow:
        data = dict(r._mapping)
        data.pop("updated_at")
        return IntervalRow(**data)
