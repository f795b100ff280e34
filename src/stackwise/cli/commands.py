"""Every command, registered on the Typer apps of `main.py`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from stackwise.cli.main import app, guarded, outcome_decided, runs_app

if TYPE_CHECKING:
    from stackwise.orchestrators.base import Orchestrator, RunRecord

STACK_OPTION = typer.Option(None, "--stack", help="Stack config file (default ./stackwise.yaml).")
JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON (see README).")


def _exit_code(run: RunRecord) -> int:
    from stackwise.runner import EXIT_CODES

    return EXIT_CODES.get(run.status, 1)


def _finish(run: RunRecord, as_json: bool, resumable: bool = True) -> None:
    from stackwise.cli.render import error_console, json_text, out_console, run_json, steps_table

    outcome_decided()
    if as_json:
        typer.echo(json_text(run_json(run)))
        if run.status != "SUCCEEDED" and resumable:
            error_console().print(f"resume with: stackwise resume {run.run_id}")
    else:
        console = out_console()
        console.print(steps_table(run))
        style = "green" if run.status == "SUCCEEDED" else "red"
        console.print(
            f"run [bold]{run.run_id}[/] [{style}]{run.status}[/]"
            + (f"  mlflow run {run.mlflow_run_id}" if run.mlflow_run_id else "")
        )
        for s in run.steps.values():
            if s.status == "FAILED" and s.error:
                console.print(f"[red]step {s.name} failed:[/] {s.error.strip()}", highlight=False)
        if run.status != "SUCCEEDED" and resumable:
            console.print(f"resume with: stackwise resume {run.run_id}")
    raise typer.Exit(_exit_code(run))


def _orchestrator(stack: str | None) -> Orchestrator:
    from stackwise.config import load_stack
    from stackwise.plugins import ORCHESTRATORS, resolve

    config = load_stack(stack)
    orchestrator: Orchestrator = resolve(ORCHESTRATORS, "orchestrator", config.orchestrator)(
        config
    )
    return orchestrator


def _interrupted(orchestrator: Orchestrator, run_id: str, as_json: bool) -> None:
    """Ctrl-C or SIGTERM stopped the run: print what there is (the partial record, with the
    run id that `resume` needs) and exit 130. Nothing recorded yet: just say so."""
    from stackwise.cli.render import error_console
    from stackwise.errors import RunNotFoundError

    outcome_decided()
    try:
        record = orchestrator.get_run(run_id)
    except RunNotFoundError:
        raise KeyboardInterrupt from None
    record.status = "KILLED" if record.status == "RUNNING" else record.status
    error_console().print("[bold red]interrupted:[/] the run was stopped and marked KILLED.")
    _finish(record, as_json)


@app.command()
@guarded
def run(
    target: str = typer.Argument(..., help="Pipeline: 'package.module:name' or 'file.py:name'."),
    param: list[str] = typer.Option(
        [], "-p", "--param", help="Override a parameter: -p key=value."
    ),
    stack: str | None = STACK_OPTION,
    max_parallel: int | None = typer.Option(None, "--max-parallel", min=1, help="Steps at once."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Rerun every step; ignore the cache."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a pipeline once on the stack's orchestrator (default: embedded, local)."""
    from stackwise.authoring.loader import load_pipeline
    from stackwise.authoring.params import parse_assignments
    from stackwise.cli.render import Progress, error_console
    from stackwise.orchestrators.base import ignore_event, new_run_id

    overrides = parse_assignments(param)
    if _on_target(stack):
        _run_on_target(stack, target, overrides, as_json)
        return
    orchestrator = _orchestrator(stack)
    pipeline = load_pipeline(target)
    orchestrator.preflight(pipeline, overrides)  # bad input fails before anything starts
    run_id = new_run_id()
    console = error_console()
    if not as_json:
        steps = len(pipeline.order)
        console.print(f"running [bold]{pipeline.name}[/] run {run_id} ({steps} steps)")
    try:
        with Progress(console, list(pipeline.order), quiet=as_json) as progress:
            record = orchestrator.run(
                pipeline, overrides, max_parallel=max_parallel, use_cache=not no_cache,
                on_event=ignore_event if as_json else progress, run_id=run_id,
            )  # fmt: skip
    except KeyboardInterrupt:
        _interrupted(orchestrator, run_id, as_json)
    _finish(record, as_json)


def _on_target(stack: str | None) -> bool:
    """Whether the stack's orchestrator is a target stackwise hands pipelines to (Airflow,
    Kubeflow) rather than one that orders the steps itself."""
    from stackwise.config import load_stack
    from stackwise.plugins import ORCHESTRATORS

    return load_stack(stack).orchestrator not in ORCHESTRATORS


def _run_on_target(
    stack: str | None, target: str, overrides: dict[str, str], as_json: bool
) -> None:
    """Validate, deploy, trigger one run and follow it with progress. Ctrl-C stops following
    only: the run goes on in the target."""
    from stackwise.authoring.loader import load_pipeline
    from stackwise.cli.render import Progress, error_console
    from stackwise.config import load_stack
    from stackwise.orchestrators.base import ignore_event
    from stackwise.orchestrators.targets import check, follow, open_target

    config = load_stack(stack)
    orchestrator = open_target(config, config.orchestrator)
    pipeline = load_pipeline(target)
    check(orchestrator, pipeline)
    params = pipeline.resolve_params(overrides)  # bad input fails before anything is deployed
    deployment = orchestrator.deploy(pipeline)
    run_id = orchestrator.trigger(deployment, params)
    console = error_console()
    if not as_json:
        console.print(f"running [bold]{pipeline.name}[/] on {orchestrator.name}: run {run_id}")
    try:
        with Progress(console, list(pipeline.order), quiet=as_json) as progress:
            record = follow(orchestrator, deployment, run_id,
                            ignore_event if as_json else progress,
                            poll_s=getattr(orchestrator, "poll_s", 2.0),
                            timeout_s=getattr(orchestrator, "run_timeout_s", None))  # fmt: skip
    except KeyboardInterrupt:
        outcome_decided()
        console.print(f"stopped following: run {run_id} goes on in {orchestrator.name}.")
        raise typer.Exit(130) from None
    _finish(record, as_json, resumable=False)


@app.command()
@guarded
def resume(
    run_id: str = typer.Argument(
        ..., help="Run id (or a unique prefix) from `stackwise runs list`."
    ),
    param: list[str] = typer.Option(
        [], "-p", "--param", help="Give a secret parameter again (never stored): -p key=value."
    ),
    stack: str | None = STACK_OPTION,
    max_parallel: int | None = typer.Option(None, "--max-parallel", min=1),
    as_json: bool = JSON_OPTION,
) -> None:
    """Rerun only what did not succeed in an earlier run (after a failure, Ctrl-C or SIGKILL),
    and whatever code changed since."""
    from stackwise.authoring.params import parse_assignments
    from stackwise.cli.render import Progress, error_console
    from stackwise.orchestrators.base import ignore_event

    orchestrator = _orchestrator(stack)
    run_record = orchestrator.get_run(run_id)
    console = error_console()
    if not as_json:
        console.print(f"resuming [bold]{run_record.pipeline}[/] run {run_record.run_id}")
    try:
        with Progress(console, list(run_record.steps), quiet=as_json) as progress:
            record = orchestrator.resume(
                run_record.run_id, parse_assignments(param), max_parallel=max_parallel,
                on_event=ignore_event if as_json else progress,
            )  # fmt: skip
    except KeyboardInterrupt:
        _interrupted(orchestrator, run_record.run_id, as_json)
    for name, source in (record.options.get("secret_sources") or {}).items():
        console.print(f"secret parameter {name} taken from {source}")
    changed = record.options.get("changed_steps") or []
    if changed:
        console.print(
            f"[yellow]code changed since this run started:[/] {', '.join(changed)}; these steps "
            "and the steps downstream of them were run again with the current code."
        )
    _finish(record, as_json)


@runs_app.command("list")
@guarded
def runs_list(
    stack: str | None = STACK_OPTION,
    pipeline: str | None = typer.Option(None, "--pipeline", help="Only runs of this pipeline."),
    limit: int = typer.Option(20, "--limit", min=1),
    as_json: bool = JSON_OPTION,
) -> None:
    """Recent runs, newest first."""
    from stackwise.cli.render import json_text, out_console, run_json, runs_table

    if _on_target(stack):  # the target's own runs (Airflow: DAG runs of exported DAGs)
        from stackwise.config import load_stack
        from stackwise.orchestrators.targets import open_target

        config = load_stack(stack)
        source: Any = open_target(config, config.orchestrator)
    else:
        source = _orchestrator(stack)
    runs = source.list_runs(limit=limit, pipeline=pipeline)
    if as_json:
        typer.echo(json_text([run_json(r, with_steps=False) for r in runs]))
    else:
        out_console().print(runs_table(runs) if runs else "no runs yet: try `stackwise run`")


@runs_app.command("show")
@guarded
def runs_show(
    run_id: str = typer.Argument(..., help="Run id or a unique prefix."),
    stack: str | None = STACK_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One run with its steps."""
    from stackwise.cli.render import json_text, out_console, run_json, steps_table

    record = _orchestrator(stack).get_run(run_id)
    if as_json:
        typer.echo(json_text(run_json(record)))
        return
    console = out_console()
    console.print(steps_table(record))
    status = "STALE (its process is gone; resume it)" if record.stale else record.status
    from stackwise.tracking.redaction import masked_params

    console.print(f"status {status}  params {json.dumps(masked_params(record.params))}")
    for s in record.steps.values():
        if s.error and s.status != "SUCCEEDED":
            console.print(f"[red]{s.name}:[/] {s.error.strip()}", highlight=False)


@app.command()
@guarded
def ui(
    stack: str | None = STACK_OPTION,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(5000, "--port"),
) -> None:
    """Open MLflow's UI on the configured tracking store."""
    import os
    import sys

    from stackwise.config import load_stack

    config = load_stack(stack)
    uri = config.tracking_uri_resolved
    if uri.startswith(("http://", "https://")):
        typer.echo(f"the tracking server already serves the UI: open {uri}")
        return
    from stackwise.tracking.stores import prepare_tracking_store

    prepare_tracking_store(uri)  # a bad or half-migrated store fails here, with its fix
    args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", host, "--port", str(port)]  # fmt: skip
    typer.echo(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop)")
    os.execv(sys.executable, args)
