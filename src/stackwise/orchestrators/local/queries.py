"""Read-only questions about many runs at once, answered by the run state store in one query
each (the dashboard's runs table and backfill grid; `StateStore` answers one run at a time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from stackwise.orchestrators.base import StepRecord
from stackwise.orchestrators.local.state import StateStore

#: Run ids per `IN (...)` clause: well under SQLite's smallest variable limit (999).
_CHUNK = 500


@dataclasses.dataclass(frozen=True)
class PipelineSummary:
    """A pipeline as its runs in the state store show it: the reference of its latest run
    (relative to the project folder when it lives in it), how many runs, the latest status and
    creation time (epoch seconds)."""

    name: str
    ref: str
    runs: int
    last_status: str
    last_run_at: float
    orchestrators: tuple[str, ...]


def steps_of(state: StateStore, run_ids: Iterable[str]) -> dict[str, list[StepRecord]]:
    """The step records of each run, in pipeline order, without their outputs (the grid needs
    status, attempts, cached and duration only). Runs without steps are absent."""
    import sqlalchemy as sa

    t = state.steps
    columns = (t.c.run_id, t.c.step, t.c.status, t.c.attempt, t.c.cached, t.c.mlflow_run_id,
               t.c.started_at, t.c.ended_at, t.c.duration_s, t.c.error)  # fmt: skip
    ids = list(dict.fromkeys(run_ids))
    out: dict[str, list[StepRecord]] = {}
    with state.engine.connect() as conn:
        for i in range(0, len(ids), _CHUNK):
            query = (
                sa.select(*columns)
                .where(t.c.run_id.in_(ids[i : i + _CHUNK]))
                .order_by(t.c.run_id, t.c.position)
            )
            for r in conn.execute(query).all():
                out.setdefault(r.run_id, []).append(
                    StepRecord(
                        name=r.step, status=r.status, attempt=r.attempt, cached=bool(r.cached),
                        mlflow_run_id=r.mlflow_run_id, started_at=r.started_at,
                        ended_at=r.ended_at, duration_s=r.duration_s, error=r.error,
                    )
                )  # fmt: skip
    return out


def pipelines(state: StateStore) -> list[PipelineSummary]:
    """Every pipeline with runs in the store, by name."""
    import sqlalchemy as sa

    t = state.runs
    latest = (
        sa.select(t.c.pipeline, sa.func.max(t.c.created_at).label("at"), sa.func.count().label("n"))
        .group_by(t.c.pipeline)
        .subquery()
    )
    query = sa.select(t.c.pipeline, t.c.pipeline_ref, t.c.status, t.c.created_at, latest.c.n).join(
        latest, (t.c.pipeline == latest.c.pipeline) & (t.c.created_at == latest.c.at)
    )
    kinds = sa.select(t.c.pipeline, t.c.orchestrator).distinct()
    with state.engine.connect() as conn:
        rows = conn.execute(query).all()
        used: dict[str, list[str]] = {}
        for name, orchestrator in conn.execute(kinds).all():
            used.setdefault(name, []).append(orchestrator)
    found = {
        r.pipeline: PipelineSummary(r.pipeline, r.pipeline_ref, int(r.n), r.status, r.created_at,
                                    tuple(sorted(used.get(r.pipeline, []))))  # fmt: skip
        for r in rows
    }
    return [found[k] for k in sorted(found)]


#: A run's status, creation and end time (epoch seconds).
RunTimes = tuple[str, float, float | None]


def runs_by_id(state: StateStore, run_ids: Sequence[str]) -> dict[str, RunTimes]:
    """Status, creation and end time of each run: a grid's interval rows."""
    import sqlalchemy as sa

    t = state.runs
    out: dict[str, RunTimes] = {}
    with state.engine.connect() as conn:
        for i in range(0, len(run_ids), _CHUNK):
            query = sa.select(t.c.run_id, t.c.status, t.c.created_at, t.c.ended_at).where(
                t.c.run_id.in_(list(run_ids[i : i + _CHUNK]))
            )
            for r in conn.execute(query).all():
                out[r.run_id] = (r.status, r.created_at, r.ended_at)
    return out
