"""`stackwise backfill` on an Airflow stack: one Airflow backfill (Airflow 3 runs backfills only
through its scheduler), created with `POST /api/v2/backfills` over the intervals stackwise
plans, and followed until every interval's DAG run has finished.

`--reprocess` keeps its meaning: `failed` (default) reruns intervals whose run failed, `all`
reruns every interval (Airflow's `completed`), `none` runs only intervals never run. When
Airflow has nothing to create, nothing is created. Airflow allows one active backfill per DAG
and marks a finished one complete on a timer: a new backfill waits for the previous one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stackwise.errors import ScheduleError, TargetError

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.interval import Interval
    from stackwise.orchestrators.airflow.target import AirflowTarget

#: stackwise's --reprocess -> Airflow's reprocess_behavior.
REPROCESS = {"failed": "failed", "all": "completed", "none": "none"}
_TERMINAL = {"success": "SUCCEEDED", "failed": "FAILED"}


@dataclasses.dataclass(frozen=True)
class IntervalRun:
    """What became of one planned interval: `status` SUCCEEDED, FAILED, or SKIPPED (Airflow
    created no run for it, e.g. one that already ran with `--reprocess none`)."""

    interval: Interval
    status: str
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.interval.to_dict(), "status": self.status, "airflow_run_id": self.run_id}


def run_backfill(
    target: AirflowTarget,
    pipeline: Pipeline,
    intervals: list[Interval],
    params: dict[str, Any],
    *,
    reprocess: str = "failed",
    max_active_runs: int | None = None,
    on_run: Callable[[IntervalRun], None] = lambda _r: None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int | None, list[IntervalRun]]:
    """Deploy, create the backfill, follow it; returns (Airflow's backfill id or None when it
    had nothing to create, one `IntervalRun` per interval). Raises ScheduleError for an unknown
    `reprocess`, TargetError when Airflow refuses."""
    from stackwise.tracking.redaction import is_secret_name

    if reprocess not in REPROCESS:
        raise ScheduleError(
            f"--reprocess {reprocess!r} is not one of: {', '.join(REPROCESS)}."
        )
    if not intervals:
        return None, []
    deployment = target.deploy(pipeline)
    dag_id = deployment.ref
    body = {
        "dag_id": dag_id,
        # A second early: Airflow 3.3 aligns a from_date that falls exactly on a boundary next
        # to a DST change to the following boundary, and would drop the first interval.
        "from_date": (intervals[0].start - dt.timedelta(seconds=1)).isoformat(),
        "to_date": intervals[-1].start.isoformat(),
        "reprocess_behavior": REPROCESS[reprocess],
        "max_active_runs": max_active_runs or 1,
        "dag_run_conf": {k: v for k, v in params.items() if not is_secret_name(k)},
    }
    # Which intervals Airflow would run (the others keep their run, as --reprocess says).
    dry = target.client.backfill_dry_run(body)
    wanted = {_ts(d["logical_date"]) for d in dry if d.get("logical_date")}
    kept = {i.start.timestamp(): IntervalRun(i, "SKIPPED") for i in intervals
            if i.start.timestamp() not in wanted}  # fmt: skip
    for run in kept.values():
        on_run(run)
    todo = [i for i in intervals if i.start.timestamp() not in kept]
    created = _create(target, body, sleep) if todo else None
    if created is None:
        return None, [kept.get(i.start.timestamp()) or IntervalRun(i, "SKIPPED")
                      for i in intervals]  # fmt: skip
    backfill_id = int(created["id"])
    ran = {r.interval.start.timestamp(): r
           for r in _follow(target, dag_id, backfill_id, todo, on_run, sleep)}  # fmt: skip
    return backfill_id, [{**kept, **ran}[i.start.timestamp()] for i in intervals]


def _create(target: AirflowTarget, body: dict[str, Any], sleep: Callable[[float], None]) -> Any:
    """Create the backfill, waiting (up to the parse timeout plus a minute) while another
    backfill of the DAG is still active."""
    deadline = time.monotonic() + target.settings.parse_timeout_s + 60
    while True:
        try:
            return target.client.create_backfill(body)
        except TargetError as exc:
            if "HTTP 409" not in exc.message or time.monotonic() > deadline:
                raise
        sleep(target.settings.poll_s)


def _follow(
    target: AirflowTarget,
    dag_id: str,
    backfill_id: int,
    intervals: list[Interval],
    on_run: Callable[[IntervalRun], None],
    sleep: Callable[[float], None],
) -> list[IntervalRun]:
    timeout = target.settings.run_timeout_s
    started = time.monotonic()
    done: dict[float, IntervalRun] = {}
    while True:
        runs = target.client.dag_runs(
            dag_id, limit=max(100, 2 * len(intervals)),
            logical_date_gte=intervals[0].start.isoformat(),
            logical_date_lte=intervals[-1].start.isoformat(),
        )  # fmt: skip
        by_start = {_ts(r.get("logical_date")): r for r in runs if r.get("logical_date")}
        for interval in intervals:
            key = interval.start.timestamp()
            run = by_start.get(key)
            if key in done or run is None or run.get("state") not in _TERMINAL:
                continue
            done[key] = IntervalRun(interval, _TERMINAL[run["state"]], str(run["dag_run_id"]))
            on_run(done[key])
        if len(done) == len(intervals):
            break
        if target.client.backfill(backfill_id).get("completed_at"):
            for interval in intervals:  # intervals Airflow created no run for
                if interval.start.timestamp() not in done and \
                        interval.start.timestamp() not in by_start:  # fmt: skip
                    done[interval.start.timestamp()] = IntervalRun(interval, "SKIPPED")
                    on_run(done[interval.start.timestamp()])
            if len(done) == len(intervals):
                break
        if timeout is not None and time.monotonic() - started > timeout:
            raise TargetError(
                f"Airflow backfill {backfill_id} of {dag_id} did not finish within "
                f"{timeout:.0f} s; it goes on there: follow it in Airflow's UI."
            )
        sleep(target.settings.poll_s)
    return [done[i.start.timestamp()] for i in intervals]


def _ts(value: Any) -> float:
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
