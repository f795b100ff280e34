"""`stackwise backfill` and `stackwise scheduler start`."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, cast

import typer

from stackwise.cli.main import app, guarded

#: `--workers`: how a local backfill runs intervals at once (`Backfill.processes`).
WORKER_MODES: dict[str, bool | None] = {"auto": None, "processes": True, "threads": False}

if TYPE_CHECKING:
    from stackwise.scheduling.backfill import Backfill, IntervalOutcome, PlannedInterval
    from stackwise.scheduling.ledger import Reprocess

scheduler_app = typer.Typer(
    help="Run scheduled pipelines as their intervals come due.", no_args_is_help=True
)
app.add_typer(scheduler_app, name="scheduler")

_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "KILLED": "red", "SKIPPED": "dim"}
_NO_ORCHESTRATOR = "\0no-orchestrator"  # _setup without the local orchestrator


def _local(stack: str | None) -> Any:
    """The orchestrator, when it is the embedded one: its own backfills and scheduler run
    intervals through the interval ledger of its state store."""
    from stackwise.cli.commands import _orchestrator
    from stackwise.errors import ScheduleError

    orchestrator = _orchestrator(stack)
    if orchestrator.name != "local":
        raise ScheduleError(
            f"stackwise's own backfills and scheduler run on the local orchestrator, not "
            f"{orchestrator.name!r}; set orchestrator: local."
        )
    return orchestrator


def _setup(
    target: str, stack: str | None, param: list[str], schedule: str | None, start_date: str | None
) -> tuple[Any, Any, dict[str, str]]:
    from stackwise.authoring.loader import load_pipeline
    from stackwise.authoring.params import parse_assignments
    from stackwise.errors import ScheduleError
    from stackwise.scheduling.schedule import Schedule

    overrides = parse_assignments(param)
    orchestrator = _local(stack) if stack is not _NO_ORCHESTRATOR else None
    pipeline = load_pipeline(target)
    if schedule is not None:  # a changed copy: the module's pipeline stays as declared
        declared = pipeline.schedule
        if declared is not None:  # keep its start, end, timezone, catchup and limits
            pipeline = pipeline.replace(
                schedule=dataclasses.replace(declared, cron=schedule, every=None)
            )
        else:
            pipeline = pipeline.replace(
                schedule=Schedule(schedule, start=start_date or "1970-01-01")
            )
    if pipeline.schedule is None:
        raise ScheduleError(
            f"pipeline {pipeline.name!r} has no schedule; declare one with "
            "@stackwise.pipeline(schedule=stackwise.Schedule('@daily', start=...)) or pass "
            "--schedule '@daily'."
        )
    pipeline.resolve_params(overrides)
    return orchestrator, pipeline, overrides


@app.command()
@guarded
def backfill(
    target: str = typer.Argument(..., help="Pipeline: 'package.module:name' or 'file.py:name'."),
    start: str = typer.Option(..., "--start", help="First logical date (YYYY-MM-DD or ISO)."),
    end: str = typer.Option(..., "--end", help="Last logical date, inclusive (a date: all day)."),
    parallel: int = typer.Option(1, "--parallel", min=1, help="Intervals running at once."),
    workers: str = typer.Option(
        "auto", "--workers",
        help="With --parallel N: auto (worker processes for 50+ intervals), processes, threads.",
    ),
    reprocess: str = typer.Option(
        "failed", "--reprocess", help="Rerun intervals that: failed (default), all, none."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List intervals; run nothing."),
    schedule: str | None = typer.Option(None, "--schedule", help="Override the cron/preset."),
    param: list[str] = typer.Option([], "-p", "--param", help="Override a parameter."),
    stack: str | None = typer.Option(None, "--stack", help="Stack config file."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """One pipeline run per data interval in [--start, --end], idempotent and resumable."""
    from stackwise.cli.commands import _on_target
    from stackwise.cli.render import error_console, json_text, out_console
    from stackwise.errors import ScheduleError
    from stackwise.scheduling.backfill import Backfill, intervals_in_range

    if workers not in WORKER_MODES:
        raise ScheduleError(
            f"--workers {workers!r} is not one of {', '.join(WORKER_MODES)}."
        )
    if _on_target(stack) and workers != "auto":
        raise ScheduleError(
            f"--workers {workers} applies to stackwise's own backfill; the stack {stack} runs "
            "intervals on its orchestrator: drop --workers."
        )
    if _on_target(stack) and not dry_run:
        _backfill_on_target(target, stack, param, schedule, start, end, reprocess, parallel,
                            as_json)  # fmt: skip
        return
    if _on_target(stack):  # the plan: what stackwise would hand the target
        _, pipeline, overrides = _setup(target, _NO_ORCHESTRATOR, param, schedule, None)
        planned = intervals_in_range(pipeline.schedule, start, end)
        rows = [{**i.to_dict(), "action": "run", "reason": f"--reprocess {reprocess}"}
                for i in planned]  # fmt: skip
        if as_json:
            typer.echo(json.dumps({"pipeline": pipeline.name, "dry_run": True,
                                   "intervals": rows}, indent=2))  # fmt: skip
        else:
            for row in rows:
                out_console().print(f"{row['data_interval_start']} -> {row['data_interval_end']}")
        return
    orchestrator, pipeline, overrides = _setup(target, stack, param, schedule, None)
    intervals = intervals_in_range(pipeline.schedule, start, end)
    mode = cast("Reprocess", reprocess)  # Backfill checks the value and names the allowed ones
    job = Backfill(orchestrator, pipeline, overrides, intervals, parallel=parallel, reprocess=mode)
    job.processes = WORKER_MODES[workers]
    warned = list(job.warnings)
    for warning in warned:
        error_console().print(f"[yellow]warning:[/] {warning}")
    if dry_run:
        plan = job.plan()
        if as_json:
            typer.echo(json.dumps(_plan_json(job, plan), indent=2))
        else:
            out_console().print(_plan_table(plan))
        return
    orchestrator.preflight(pipeline, overrides)  # an unreachable tracker fails here, exit 2
    outcomes = _run_with_progress(job, error_console(), as_json)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    if as_json:
        summary = {
            "backfill_id": job.backfill_id,
            "pipeline": pipeline.name,
            "counts": counts,
            "intervals": [o.to_dict() for o in outcomes],
            "parallel": job.parallel,
            "mode": job.mode,
            "warnings": job.warnings,
        }
        typer.echo(json_text(summary))  # non-finite metrics as null
    else:
        console = out_console()
        console.print(_outcome_table(outcomes))
        on = " (worker processes and this one)" if job.mode == "processes" else ""
        console.print(
            f"backfill {job.backfill_id}: "
            + ", ".join(f"{v} {k.lower()}" for k, v in counts.items())
            + on
        )
        for warning in job.warnings[len(warned) :]:  # said while it ran
            error_console().print(f"[yellow]warning:[/] {warning}")
    failed = any(o.status == "FAILED" for o in outcomes)
    killed = any(o.status == "KILLED" for o in outcomes)
    raise typer.Exit(130 if killed else 1 if failed else 0)


def _backfill_on_target(
    target: str, stack: str | None, param: list[str], schedule: str | None, start: str,
    end: str, reprocess: str, parallel: int, as_json: bool,
) -> None:
    """A backfill run by the stack's target (Airflow's scheduler), followed to its end."""
    from stackwise.cli.render import error_console, json_text, out_console
    from stackwise.config import load_stack
    from stackwise.errors import ScheduleError
    from stackwise.orchestrators.targets import check, open_target
    from stackwise.scheduling.backfill import intervals_in_range

    config = load_stack(stack)
    orchestrator: Any = open_target(config, config.orchestrator)
    if not hasattr(orchestrator, "backfill"):
        raise ScheduleError(f"orchestrator {orchestrator.name!r} does not run backfills.")
    _, pipeline, overrides = _setup(target, _NO_ORCHESTRATOR, param, schedule, None)
    check(orchestrator, pipeline)
    params = pipeline.resolve_params(overrides)
    intervals = intervals_in_range(pipeline.schedule, start, end)
    console = error_console()

    def report(run: Any) -> None:
        if not as_json:
            style = _STYLE.get(run.status, "")
            console.print(f"{run.interval.start.isoformat()} [{style}]{run.status}[/] "
                          f"{run.run_id or ''}")  # fmt: skip

    if not as_json:
        console.print(f"backfilling [bold]{pipeline.name}[/] on {orchestrator.name}: "
                      f"{len(intervals)} intervals, --reprocess {reprocess}")  # fmt: skip
    max_active = max(parallel, 1) if parallel > 1 else pipeline.schedule.max_active_runs
    backfill_id, runs = orchestrator.backfill(
        pipeline, intervals, params, reprocess=reprocess, max_active_runs=max_active,
        on_run=report,
    )  # fmt: skip
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    if as_json:
        typer.echo(json_text({"backfill_id": backfill_id, "pipeline": pipeline.name,
                              "orchestrator": orchestrator.name, "counts": counts,
                              "intervals": [r.to_dict() for r in runs]}))  # fmt: skip
    else:
        which = backfill_id if backfill_id is not None else "(none: nothing to run)"
        summary = ", ".join(f"{v} {k.lower()}" for k, v in counts.items())
        out_console().print(f"{orchestrator.name} backfill {which}: {summary}")
    raise typer.Exit(1 if counts.get("FAILED") else 0)


def _run_with_progress(job: Any, console: Any, quiet: bool) -> list[IntervalOutcome]:
    if quiet:
        outcomes: list[IntervalOutcome] = job.run()
        return outcomes
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(job.pipeline.name, total=len(job.intervals), last="")

        def advance(outcome: IntervalOutcome) -> None:
            progress.update(
                task,
                advance=1,
                last=f"{outcome.interval.logical_date:%Y-%m-%d %H:%M} {outcome.status}",
            )

        result: list[IntervalOutcome] = job.run(on_outcome=advance)
        return result


def _plan_json(job: Backfill, plan: list[PlannedInterval]) -> dict[str, Any]:
    return {
        "backfill_id": job.backfill_id,
        "pipeline": job.pipeline.name,
        "dry_run": True,
        "parallel": job.parallel,
        "warnings": job.warnings,
        "intervals": [
            {
                "logical_date": p.interval.logical_date.isoformat(),
                "data_interval_start": p.interval.start.isoformat(),
                "data_interval_end": p.interval.end.isoformat(),
                "action": p.decision.action,
                "reason": p.decision.reason,
                "run_id": p.decision.run_id,
            }
            for p in plan
        ],
    }


def _plan_table(plan: list[PlannedInterval]) -> Any:
    from rich.table import Table

    table = Table(title=f"dry run: {len(plan)} intervals", title_justify="left")
    for col in ("logical date", "interval end", "would", "why"):
        table.add_column(col)
    for p in plan:
        style = "dim" if p.decision.action == "skip" else "cyan"
        table.add_row(
            p.interval.start.isoformat(),
            p.interval.end.isoformat(),
            f"[{style}]{p.decision.action}[/]",
            p.decision.reason,
        )
    return table


def _outcome_table(outcomes: list[IntervalOutcome]) -> Any:
    from rich.table import Table

    table = Table()
    for col in ("interval", "status", "action", "duration", "metrics", "mlflow run", "note"):
        table.add_column(col, no_wrap=col in ("interval", "status"))
    for o in outcomes:
        style = _STYLE.get(o.status, "")
        note = (o.error or "").splitlines()[0][:60] if o.error else o.reason
        table.add_row(
            f"{o.interval.start:%Y-%m-%d %H:%M} → {o.interval.end:%Y-%m-%d %H:%M}",
            f"[{style}]{o.status}[/]",
            o.action,
            f"{o.duration_s:.2f}s" if o.duration_s is not None else "",
            " ".join(f"{k}={v:.4g}" for k, v in list(o.headline_metrics().items())[:3]),
            (o.mlflow_run_id or "")[:12],
            note,
        )
    return table


@scheduler_app.command("start")
@guarded
def scheduler_start(
    targets: list[str] = typer.Argument(None, help="Pipelines (default: `pipelines:` in stack)."),
    stack: str | None = typer.Option(None, "--stack", help="Stack config file."),
    param: list[str] = typer.Option([], "-p", "--param", help="Override a parameter."),
) -> None:
    """Run due intervals as they come; Ctrl-C or SIGTERM stops cleanly (resumed on restart)."""
    import signal
    import threading

    from stackwise.authoring.loader import load_pipeline
    from stackwise.authoring.params import parse_assignments
    from stackwise.cli.render import error_console
    from stackwise.config import load_stack
    from stackwise.scheduling.scheduler import Scheduler

    orchestrator = _local(stack)
    refs = list(targets or []) or load_stack(stack).pipelines
    pipelines = [load_pipeline(ref) for ref in refs]
    overrides = parse_assignments(param)
    for p in pipelines:
        orchestrator.preflight(p, overrides)
    console = error_console()

    def report(outcome: IntervalOutcome) -> None:
        style = _STYLE.get(outcome.status, "")
        console.print(
            f"{outcome.interval.start.isoformat()} [{style}]{outcome.status}[/] "
            f"run {outcome.run_id} ({outcome.reason})"
        )

    scheduler = Scheduler(orchestrator, pipelines, params=overrides, on_outcome=report)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for p in pipelines:
        assert p.schedule is not None
        console.print(
            f"scheduling [bold]{p.name}[/]: {p.schedule.describe()}, catchup={p.schedule.catchup}"
        )
    scheduler.run(stop)
    console.print("scheduler stopped; interrupted intervals resume on the next start")
