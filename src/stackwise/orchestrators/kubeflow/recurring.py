"""A pipeline's schedule as a Kubeflow recurring-run definition, written beside the spec.

The fields are those of KFP's v2beta1 `RecurringRun` (and of `kfp.Client.create_recurring_run`):
`trigger.cron_schedule.cron` in KFP's cron format, which has six fields (seconds first:
KFP's scheduled-workflow controller parses it with github.com/robfig/cron's seconds
parser), or `trigger.periodic_schedule.interval_second` for `Schedule(every=...)`;
`max_concurrency` from `max_active_runs` (KFP allows 1-10); `no_catchup` is the opposite of
`catchup`. Times are RFC 3339 in UTC. Written with `yaml.safe_dump` from data.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.orchestrators.kubeflow.settings import KubeflowSettings

#: KFP's limit on a recurring run's max_concurrency.
MAX_CONCURRENCY = 10


def kfp_cron(cron: str) -> str:
    """A 5-field cron (minute hour dom month dow) as KFP's 6-field cron (second first)."""
    return "0 " + " ".join(cron.split())


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def definition(
    pipeline: Pipeline, settings: KubeflowSettings, spec_file: str
) -> dict[str, Any] | None:
    """The recurring-run definition of `pipeline`'s schedule (None: it has none)."""
    schedule = pipeline.schedule
    if schedule is None:
        return None
    trigger: dict[str, Any]
    if schedule.cron is not None:
        trigger = {"cron_schedule": {"cron": kfp_cron(schedule.cron)}}
    else:
        assert isinstance(schedule.every, dt.timedelta)
        trigger = {"periodic_schedule": {"interval_second": int(schedule.every.total_seconds())}}
    window = next(iter(trigger.values()))
    window["start_time"] = _utc(schedule.start_at)
    if isinstance(schedule.end, dt.datetime):
        window["end_time"] = _utc(schedule.end)
    return {
        "display_name": pipeline.name,
        "description": pipeline.description,
        "pipeline_spec_file": spec_file,
        "mode": "ENABLE",
        "trigger": trigger,
        "max_concurrency": min(schedule.max_active_runs, MAX_CONCURRENCY),
        "no_catchup": not schedule.catchup,
        "namespace": settings.namespace,
        "experiment": settings.experiment or pipeline.name,
        "service_account": settings.service_account,
    }


def write(pipeline: Pipeline, settings: KubeflowSettings, spec: Path) -> Path | None:
    """Write `<spec stem>.recurring.yaml` beside the spec; None when there is no schedule."""
    import yaml

    data = definition(pipeline, settings, spec.name)
    if data is None:
        return None
    path = spec.with_name(f"{spec.stem}.recurring.yaml")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)
    return path
