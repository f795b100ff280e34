"""Claims in the interval ledger, on SQLite and PostgreSQL: a claim that loses the race for a
new row (another process inserted it between the read and the insert) neither raises nor
spoils the transaction it runs in, so a backfill can claim inside its lock's transaction and
decide again."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from stackwise.interval import Interval
from stackwise.orchestrators.local import StateStore
from stackwise.scheduling.ledger import IntervalLedger, key


def _interval() -> Interval:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return Interval(start, start, start + dt.timedelta(days=1))


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> IntervalLedger:
    if request.param == "sqlite":
        return IntervalLedger(StateStore(f"sqlite:///{tmp_path / 'state.db'}"))
    return IntervalLedger(StateStore(pg_url.replace("postgresql://", "postgresql+psycopg://")))


def test_an_insert_that_finds_the_row_there_returns_false_and_the_transaction_goes_on(
    ledger: IntervalLedger,
) -> None:
    pipeline, interval = f"claims-{uuid.uuid4().hex}", _interval()
    first = ledger.claim(pipeline, interval, "none", "run-a", "bf-a")
    assert first.action == "run"
    row = {"pipeline": pipeline, "logical_date": key(interval), "status": "RUNNING",
           "interval_start": "x", "interval_end": "x", "version": 1, "run_id": "run-b",
           "updated_at": 0.0}  # fmt: skip
    with ledger.engine.begin() as conn:
        assert ledger._insert_if_absent(conn, row) is False
        # Still usable (on PostgreSQL an IntegrityError would have aborted it):
        assert ledger.rows(pipeline, conn=conn)[key(interval)].run_id == "run-a"
    assert ledger.rows(pipeline)[key(interval)].run_id == "run-a"  # the loser changed nothing


def test_a_claim_in_the_callers_transaction_is_seen_once_committed(
    ledger: IntervalLedger,
) -> None:
    pipeline, interval = f"claims-{uuid.uuid4().hex}", _interval()
    with ledger.engine.begin() as conn:
        decision = ledger.claim(pipeline, interval, "none", "run-a", "bf-a", conn=conn)
        assert decision.action == "run"
        assert ledger.running(pipeline, conn=conn) == 1  # this process, alive
    again = ledger.claim(pipeline, interval, "none", "run-b", "bf-b")
    assert (again.action, again.busy) == ("skip", True)  # RUNNING in this live process
    assert ledger.rows(pipeline)[key(interval)].run_id == "run-a"


def test_a_backfills_claims_read_committed_rows_whatever_the_servers_default(pg_url: str) -> None:
    """Under a server default of REPEATABLE READ, the lock transaction's snapshot would be
    taken at the lock statement, before the wait: the claim would not see what the previous
    holder of the lock committed (max_active_runs undercounted, or a serialization failure)."""
    import types

    import sqlalchemy as sa

    from stackwise.scheduling.backfill import Backfill

    url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    url += "?options=-c%20default_transaction_isolation%3Drepeatable%5C%20read"
    ledger = IntervalLedger(StateStore(url))
    with ledger.engine.connect() as conn:  # the setting took: a plain transaction is RR
        assert conn.execute(sa.text("SHOW transaction_isolation")).scalar() == "repeatable read"
    backfill = types.SimpleNamespace(ledger=ledger, pipeline=types.SimpleNamespace(name="p"))
    with Backfill._claims_lock(backfill) as conn:  # type: ignore[arg-type]
        assert conn.execute(sa.text("SHOW transaction_isolation")).scalar() == "read committed"
