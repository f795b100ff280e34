"""Runs across orchestrators: the state store's runs (the embedded orchestrator, backfills,
the scheduler) merged with the pipeline runs MLflow holds that the state store does not know
(Airflow, Kubeflow: their tasks run the step runner, which records in MLflow), and one run's
steps drawn as its DAG coloured by status."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from stackwise.dashboard.stores import Stores
from stackwise.tracking import tags as T

if TYPE_CHECKING:
    from stackwise.lineage.index import RunIndex, RunSnapshot
    from stackwise.orchestrators.base import RunRecord, StepRecord

#: MLflow's run statuses as stackwise spells them.
_MLFLOW_STATUS = {"FINISHED": "SUCCEEDED", "FAILED": "FAILED", "KILLED": "KILLED",
                  "RUNNING": "RUNNING", "SCHEDULED": "PENDING"}  # fmt: skip
TERMINAL = ("SUCCEEDED", "FAILED", "KILLED", "STALE")


class StepView(BaseModel):
    name: str
    status: str
    cached: bool = False
    attempts: int = 0
    retried: bool = Field(False, description="more than one attempt")
    duration_s: float | None = None
    mlflow_run_id: str | None = None
    mlflow_url: str | None = None
    error: str | None = None


class RunView(BaseModel):
    """One pipeline run as the dashboard shows it; times ISO 8601 UTC, durations seconds."""

    run_id: str
    pipeline: str
    pipeline_ref: str | None = None
    orchestrator: str
    compute: str | None = None
    status: str
    source: str = Field(description="state (the state store) or mlflow (MLflow only)")
    logical_date: str | None = None
    interval: dict[str, str] | None = None
    backfill_id: str | None = None
    created_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    mlflow_run_id: str | None = None
    mlflow_url: str | None = None
    steps: list[StepView] | None = None


class RunFilter(BaseModel):
    pipeline: str | None = None
    status: str | None = None
    orchestrator: str | None = None
    limit: int = 100

    def keeps(self, run: RunView) -> bool:
        return (
            (not self.pipeline or run.pipeline == self.pipeline)
            and (not self.status or run.status == self.status.upper())
            and (not self.orchestrator or run.orchestrator == self.orchestrator)
        )


def iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds") if ts else None


def list_runs(stores: Stores, flt: RunFilter) -> list[RunView]:
    """Newest first, at most `flt.limit`, from both stores (a run in both shows once, as the
    state store has it)."""
    records = stores.state.list_runs(limit=flt.limit, pipeline=flt.pipeline or None)
    views = [from_record(stores, r, with_steps=False) for r in records]
    known = {v.run_id for v in views}
    for snap in stores.index().pipeline_runs(limit=flt.limit):
        stackwise_id = snap.tags.get(T.RUN_ID)
        if stackwise_id and stackwise_id not in known:
            views.append(from_snapshot(stores, snap, None))
            known.add(stackwise_id)
    kept = [v for v in views if flt.keeps(v)]
    kept.sort(key=lambda v: v.created_at or "", reverse=True)
    return kept[: flt.limit]


def get_run(stores: Stores, run_id: str) -> RunView:
    """From the state store, else from MLflow by stackwise run id; RunNotFoundError if
    neither has it."""
    from stackwise.errors import RunNotFoundError

    try:
        return from_record(stores, stores.state.get_run(run_id), with_steps=True)
    except RunNotFoundError:
        index = stores.index()
        snap = index.pipeline_run(run_id)
        if snap is None:
            raise
        return from_snapshot(stores, snap, index)


def from_record(stores: Stores, run: RunRecord, *, with_steps: bool) -> RunView:
    from stackwise.tracking.redaction import masked_params

    interval = run.interval
    return RunView(
        run_id=run.run_id, pipeline=run.pipeline, pipeline_ref=run.pipeline_ref,
        orchestrator=run.orchestrator, compute=run.compute,
        status="STALE" if run.stale else run.status, source="state",
        logical_date=interval.get("logical_date") if interval else None, interval=interval,
        backfill_id=(run.options or {}).get("tags", {}).get(T.BACKFILL_ID),
        created_at=iso(run.created_at), ended_at=iso(run.ended_at),
        duration_s=round(run.ended_at - run.created_at, 3) if run.ended_at else None,
        params=masked_params(run.params), error=run.error, mlflow_run_id=run.mlflow_run_id,
        mlflow_url=stores.mlflow_run_url(run.experiment_id, run.mlflow_run_id),
        steps=[_step(stores, run.experiment_id, s) for s in run.steps.values()]
        if with_steps else None,
    )  # fmt: skip


def _step(stores: Stores, experiment_id: str | None, s: StepRecord) -> StepView:
    return StepView(
        name=s.name, status=s.status, cached=s.cached, attempts=s.attempt,
        retried=s.attempt > 1, duration_s=s.duration_s, mlflow_run_id=s.mlflow_run_id,
        mlflow_url=stores.mlflow_run_url(experiment_id, s.mlflow_run_id), error=s.error,
    )  # fmt: skip


def from_snapshot(stores: Stores, snap: RunSnapshot, index: RunIndex | None) -> RunView:
    """A pipeline run only MLflow knows (another orchestrator ran it); its steps are the
    latest attempt of each child run when `index` is given."""
    t = snap.tags
    status = t.get(T.STATUS) or _MLFLOW_STATUS.get(snap.status, snap.status)
    logical = t.get(T.LOGICAL_DATE)
    interval = None
    if logical and t.get(T.DATA_INTERVAL_START) and t.get(T.DATA_INTERVAL_END):
        interval = {"logical_date": logical, "data_interval_start": t[T.DATA_INTERVAL_START],
                    "data_interval_end": t[T.DATA_INTERVAL_END]}  # fmt: skip
    params = dict(stores.client.get_run(snap.run_id).data.params) if index is not None else {}
    steps = None
    if index is not None:
        steps = []
        attempts: dict[str, int] = {}
        for child in index.children(snap):
            name = child.step or child.name
            attempts[name] = attempts.get(name, 0) + 1
        for child in index.step_runs(snap):
            name = child.step or child.name
            steps.append(StepView(
                name=name,
                status=child.tags.get(T.STATUS) or _MLFLOW_STATUS.get(child.status, child.status),
                cached=child.tags.get(T.CACHED) == "true",
                attempts=int(child.tags.get(T.ATTEMPT, attempts[name])),
                retried=int(child.tags.get(T.ATTEMPT, attempts[name])) > 1,
                duration_s=_ms(child.start_ms, child.end_ms), mlflow_run_id=child.run_id,
                mlflow_url=stores.mlflow_run_url(child.experiment_id, child.run_id),
                error=child.tags.get(T.ERROR),
            ))  # fmt: skip
    return RunView(
        run_id=t.get(T.RUN_ID, snap.run_id), pipeline=t.get(T.PIPELINE, snap.name),
        pipeline_ref=t.get(T.PIPELINE_REF), orchestrator=t.get(T.ORCHESTRATOR, "unknown"),
        compute=t.get(T.COMPUTE), status=status, source="mlflow", logical_date=logical,
        interval=interval, backfill_id=t.get(T.BACKFILL_ID),
        created_at=iso(snap.start_ms / 1000), ended_at=iso((snap.end_ms or 0) / 1000),
        duration_s=_ms(snap.start_ms, snap.end_ms), params=_masked(params),
        mlflow_run_id=snap.run_id,
        mlflow_url=stores.mlflow_run_url(snap.experiment_id, snap.run_id),
        steps=steps,
    )  # fmt: skip


def _masked(params: dict[str, Any]) -> dict[str, Any]:
    from stackwise.tracking.redaction import masked_params

    return masked_params(params)


def _ms(start: int, end: int | None) -> float | None:
    return round((end - start) / 1000, 3) if end and start else None


def step_log(stores: Stores, run_id: str, step: str) -> str | None:
    """The text the step printed in its latest attempt (secrets already masked when it was
    logged), or None when it printed nothing."""
    import tempfile

    from stackwise.tracking.step_run import LOG_ARTIFACT

    view = get_run(stores, run_id)
    found = next((s for s in view.steps or [] if s.name == step), None)
    if found is None or not found.mlflow_run_id:
        return None
    path = LOG_ARTIFACT.format(step=step, attempt=max(found.attempts, 1))
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = stores.client.download_artifacts(found.mlflow_run_id, path, tmp)
        except (MlflowException, OSError):
            return None
        with open(local, encoding="utf-8", errors="replace") as fh:
            return fh.read()
