"""`stackwise migrate --to local|airflow|kubeflow`: move a project to another orchestrator with
nothing lost.

MLflow is the record every orchestrator writes to, so history stays where it is; a migration
only (1) writes the new stack file, (2) generates the target's files, and (3) carries each
scheduled pipeline's schedule over so that the first interval the new orchestrator runs is
the one after the last interval completed so far (no interval runs twice, none is skipped):

- airflow: the DAG's `start_date` is the end of the last completed interval, `catchup` on;
- kubeflow: the recurring run's start time is that moment (KFP runs carry no data interval
  yet: see README);
- local: the interval ledger continues: intervals completed elsewhere (MLflow's interval
  tags) are recorded in it as SUCCEEDED, so the scheduler and backfills skip them.

The new stack file is written beside the old one as `stackwise.<target>.yaml` (the old file
is left untouched; an existing file of that name is kept as `.bak`). It is the old file's data
(tracking, artifact store, policies, state store, sections) with `orchestrator` changed,
written with yaml.safe_dump.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackwise.errors import ConfigError, MigrationRefused
from stackwise.migrate_history import History, read_history, utc

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.config import StackConfig

KINDS = ("local", "airflow", "kubeflow")


@dataclasses.dataclass
class PipelinePlan:
    pipeline: str
    target: str
    last_completed: str | None  # end of the last completed interval (MLflow)
    first_new: str | None  # start of the first interval the new orchestrator runs
    files: list[str] = dataclasses.field(default_factory=list)
    ledger_imported: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Plan:
    source_stack: str
    new_stack: str
    to: str
    stack_data: dict[str, Any]
    pipelines: list[PipelinePlan]
    before: History
    after: History | None = None

    @property
    def changed(self) -> list[str]:
        """What differs in MLflow between before and after (empty: nothing was lost)."""
        if self.after is None:
            return []
        a, b = self.before.facts(), self.after.facts()
        return [f"{k}: before {a[k]!r}, after {b[k]!r}" for k in a if a[k] != b[k]]


def new_stack_path(stack: StackConfig, to: str) -> Path:
    folder = Path(stack.source).resolve().parent if stack.source else stack.base_dir
    return folder / f"stackwise.{to}.yaml"


def plan(stack: StackConfig, to: str, targets: list[str], out: Path | None = None) -> Plan:
    """Everything a migration would do, read from the stack, MLflow and the ledger; writes
    nothing. Raises ConfigError on bad input, MigrationRefused when the records disagree."""
    from stackwise.authoring.loader import load_pipeline

    if to not in KINDS:
        raise ConfigError(f"--to {to!r}: use one of {', '.join(KINDS)}.")
    if to == stack.orchestrator:
        raise ConfigError(f"the stack already runs on {to}; nothing to migrate.")
    targets = targets or list(stack.pipelines)
    if not targets:
        raise ConfigError("name the pipelines to migrate with --pipeline TARGET (repeatable) or "
                          "list them under `pipelines:` in the stack file.")  # fmt: skip
    pipelines = [load_pipeline(t) for t in targets]
    before = read_history(stack, [p.name for p in pipelines])
    _check_agreement(stack, before)
    data = _stack_data(stack, to, out)
    plans = []
    for target, pipeline in zip(targets, pipelines, strict=True):
        last = before.last_completed[pipeline.name]
        first = _first_new(pipeline, last)
        plans.append(PipelinePlan(pipeline.name, target, last, first))
    return Plan(str(stack.source or ""), str(new_stack_path(stack, to)), to, data, plans, before)


def _check_agreement(stack: StackConfig, history: History) -> None:
    """On the local orchestrator the ledger and MLflow must agree on the last completed
    interval; elsewhere the ledger may only lag behind (it holds the local intervals)."""
    for name, last in history.last_completed.items():
        ledger = history.ledger_last.get(name)
        if ledger is None:
            continue
        behind = last is not None and utc(ledger) <= utc(last)
        same = last is not None and utc(ledger) == utc(last)
        if not behind or (stack.orchestrator == "local" and not same):
            raise MigrationRefused(
                f"pipeline {name}: the interval ledger's last completed interval ends {ledger}, "
                f"MLflow's ends {last}; resolve it (stackwise backfill --reprocess failed) "
                "before migrating."
            )


def _first_new(pipeline: Pipeline, last: str | None) -> str | None:
    schedule = pipeline.schedule
    if schedule is None:
        return None
    return last or schedule.start_at.isoformat()


def _stack_data(stack: StackConfig, to: str, out: Path | None) -> dict[str, Any]:
    """The old stack file's data with `orchestrator` (and the target's section) changed."""
    import yaml

    data: dict[str, Any] = {}
    if stack.source and Path(stack.source).is_file():
        data = yaml.safe_load(Path(stack.source).read_text()) or {}
    data["orchestrator"] = to
    if to == "airflow":
        section = dict(data.get("airflow") or {})
        if out is not None or "dags_folder" not in section:
            section["dags_folder"] = str(out or "dags")
        data["airflow"] = section
    return data


def wait_idle(stack: StackConfig, pipelines: list[str], wait: bool, timeout_s: float,
              poll_s: float = 2.0) -> None:  # fmt: skip
    """Refuse (MigrationRefused) while pipeline runs are in progress, or wait for them."""
    deadline = time.monotonic() + timeout_s
    while True:
        running = read_history(stack, pipelines).running
        if not running:
            return
        listed = "; ".join(f"{p}: {', '.join(r)}" for p, r in running.items())
        if not wait or time.monotonic() > deadline:
            more = "" if not wait else f" after waiting {timeout_s:.0f} s"
            raise MigrationRefused(
                f"runs are in progress on the old orchestrator{more} ({listed}); let them "
                "finish or pass --wait."
            )
        time.sleep(poll_s)


def apply(stack: StackConfig, plan_: Plan) -> Plan:
    """Write the stack file and the target's files, carry the schedules over, then read the
    history again (`plan_.after`). Raises what the target's compiler raises, before writing
    the stack file."""
    from stackwise.authoring.loader import load_pipeline
    from stackwise.config import StackConfig as Config

    path = Path(plan_.new_stack)
    data = plan_.stack_data
    new = Config(**data, base_dir=stack.base_dir, source=str(path))
    for item in plan_.pipelines:
        pipeline = _carried(load_pipeline(item.target), item.first_new)
        if plan_.to == "local":
            item.ledger_imported = _import_ledger(new, pipeline.name, plan_.before)
        else:
            item.files = [str(f) for f in _compile(new, plan_.to, pipeline)]
    _write_stack(path, data)
    plan_.after = read_history(new, [p.pipeline for p in plan_.pipelines])
    return plan_


def _carried(pipeline: Pipeline, first_new: str | None) -> Pipeline:
    """The pipeline whose schedule starts at `first_new`, catching up from there."""
    import datetime as dt

    if pipeline.schedule is None or first_new is None:
        return pipeline
    start = dt.datetime.fromisoformat(first_new)
    return pipeline.replace(
        schedule=dataclasses.replace(pipeline.schedule, start=start, catchup=True)
    )


def _compile(config: StackConfig, kind: str, pipeline: Pipeline) -> list[Path]:
    from stackwise.orchestrators.targets import check, compile_for, open_target

    target = open_target(config, kind)
    check(target, pipeline)  # before any folder is made
    if kind == "airflow":
        folder = Path(config.resolve_path(str((config.airflow or {})["dags_folder"])))
        folder.mkdir(parents=True, exist_ok=True)
        return compile_for(target, pipeline, folder)
    folder = config.base_dir / "kfp"
    folder.mkdir(parents=True, exist_ok=True)
    return compile_for(target, pipeline, folder / f"{pipeline.name}.yaml")


def _import_ledger(config: StackConfig, pipeline: str, history: History) -> list[str]:
    """Record intervals completed on other orchestrators as SUCCEEDED in the ledger."""
    from stackwise.orchestrators.local.cache import state_store
    from stackwise.scheduling.ledger import IntervalLedger

    ledger = IntervalLedger(state_store(config.state_store_resolved, config.base_dir,
                                        config.durability))  # fmt: skip
    imported = []
    for done in history.completed.get(pipeline, []):
        interval = done.interval()
        decision = ledger.claim(pipeline, interval, "none", done.run_id, "migrate")
        if decision.action == "run":
            ledger.finish(pipeline, interval, done.run_id, "SUCCEEDED")
            imported.append(done.start)
    return imported


def _write_stack(path: Path, data: dict[str, Any]) -> None:
    import os

    import yaml

    if path.exists():
        path.replace(path.with_name(path.name + ".bak"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
