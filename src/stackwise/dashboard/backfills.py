"""Backfills as the grid people know from Airflow: one column per data interval, one row per
step, each cell coloured by the step's status in that interval's run, read from the interval
ledger and the state store in three queries however many intervals there are."""

from __future__ import annotations

from pydantic import BaseModel, Field

from stackwise.dashboard.runs import iso
from stackwise.dashboard.stores import Stores


class BackfillSummaryView(BaseModel):
    backfill_id: str
    pipeline: str
    first: str
    last: str
    updated_at: str | None
    intervals: int
    counts: dict[str, int]
    done: int = Field(description="intervals that finished, whatever their outcome")
    failed: int


class Cell(BaseModel):
    step: str
    status: str
    cached: bool = False
    attempts: int = 0
    duration_s: float | None = None


class IntervalColumn(BaseModel):
    logical_date: str
    data_interval_start: str
    data_interval_end: str
    status: str
    run_id: str | None
    duration_s: float | None = None
    error: str | None = None
    cells: list[Cell]


class BackfillGrid(BaseModel):
    backfill_id: str
    pipeline: str
    steps: list[str]
    intervals: list[IntervalColumn]
    counts: dict[str, int]
    done: int
    failed: int


_FINISHED = ("SUCCEEDED", "FAILED", "KILLED")


def list_backfills(stores: Stores) -> list[BackfillSummaryView]:
    out = []
    for s in stores.ledger.backfills():
        out.append(BackfillSummaryView(
            backfill_id=s.backfill_id, pipeline=s.pipeline, first=s.first, last=s.last,
            updated_at=iso(s.updated_at), intervals=s.total, counts=s.counts,
            done=sum(s.counts.get(k, 0) for k in _FINISHED), failed=s.counts.get("FAILED", 0),
        ))  # fmt: skip
    return out


def get_grid(stores: Stores, backfill_id: str) -> BackfillGrid:
    """LookupError when the ledger holds no row of this backfill."""
    from stackwise.orchestrators.local.queries import runs_by_id, steps_of

    rows = stores.ledger.backfill_rows(backfill_id)
    if not rows:
        raise LookupError(backfill_id)
    run_ids = [r.run_id for r in rows if r.run_id]
    steps = steps_of(stores.state, run_ids)
    times = runs_by_id(stores.state, run_ids)
    order: dict[str, None] = {}
    for records in steps.values():
        for s in records:
            order.setdefault(s.name, None)
    counts: dict[str, int] = {}
    columns = []
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
        by_name = {s.name: s for s in steps.get(r.run_id or "", [])}
        cells = []
        for name in order:
            rec = by_name.get(name)
            cells.append(
                Cell(step=name, status=rec.status, cached=rec.cached, attempts=rec.attempt,
                     duration_s=rec.duration_s)
                if rec else Cell(step=name, status="PENDING")
            )  # fmt: skip
        _status, created, ended = times.get(r.run_id or "", (r.status, None, None))
        failed = next((s for s in by_name.values() if s.status == "FAILED" and s.error), None)
        columns.append(IntervalColumn(
            logical_date=r.logical_date, data_interval_start=r.interval_start,
            data_interval_end=r.interval_end, status=r.status, run_id=r.run_id,
            duration_s=round(ended - created, 3) if ended and created else None,
            error=f"{failed.name}: {failed.error.strip()}" if failed and failed.error else None,
            cells=cells,
        ))  # fmt: skip
    return BackfillGrid(
        backfill_id=backfill_id, pipeline=rows[0].pipeline, steps=list(order), intervals=columns,
        counts=counts, done=sum(counts.get(k, 0) for k in _FINISHED),
        failed=counts.get("FAILED", 0),
    )
