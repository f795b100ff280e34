"""`stackwise reproduce models:/NAME/VERSION [--compare]`: rerun what made a model version."""

from __future__ import annotations

import typer

from stackwise.cli.main import app, guarded, outcome_decided


@app.command()
@guarded
def reproduce(
    ref: str = typer.Argument(..., help="models:/NAME/VERSION"),
    compare: bool = typer.Option(
        False, "--compare", help="Compare the new metrics with the recorded ones."
    ),
    tolerance: float = typer.Option(
        0.0, "--tolerance", min=0.0, help="Largest absolute metric difference accepted."
    ),
    check_only: bool = typer.Option(
        False, "--check", help="Only check that the data and code are still there; no rerun."
    ),
    stack: str | None = typer.Option(None, "--stack", help="Stack config file."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Read the version's lineage, check that its raw data (digests) and code (pipeline
    version) are still there, rerun its pipeline run with the same parameters and data
    interval on the stack's orchestrator, and with --compare report the metrics. Exit 1 when
    something is missing or changed, the rerun fails, or a metric is off."""
    from stackwise.cli.render import Progress, error_console, json_text, out_console
    from stackwise.config import load_stack
    from stackwise.lineage.index import RunIndex
    from stackwise.orchestrators.base import ignore_event
    from stackwise.reproduce import (
        check_recipe,
        compare_metrics,
        new_metrics,
        parse_model_ref,
        read_recipe,
        rerun,
    )
    from stackwise.tracking.mlflow_tracker import tracker_for

    name, version = parse_model_ref(ref)
    config = load_stack(stack)
    index = RunIndex(tracker_for(config.tracking_uri_resolved).client)
    recipe = read_recipe(index, name, version)
    findings = check_recipe(recipe, config)
    failed = [f for f in findings if not f.ok]
    console = error_console() if as_json else out_console()
    interval = recipe.interval
    console.print(
        f"{recipe.model_uri}: pipeline [bold]{recipe.pipeline}[/] run "
        f"{recipe.stackwise_run_id} on {recipe.orchestrator or 'unknown'}"
        + (f", data interval [{interval.start.isoformat()}, {interval.end.isoformat()})"
           if interval else "")  # fmt: skip
    )
    for f in findings:
        mark = "[green]ok[/]" if f.ok else "[red]FAILED[/]"
        console.print(f"  {mark} {f.what}: {f.detail}", highlight=False)
    report: dict[str, object] = {
        "model": recipe.model_uri, "pipeline_run_id": recipe.pipeline_run_id,
        "checks": [{"what": f.what, "ok": f.ok, "detail": f.detail} for f in findings],
    }  # fmt: skip
    if failed or check_only:
        outcome_decided()
        if failed:
            console.print(f"[red]cannot reproduce {recipe.model_uri}:[/] "
                          f"{len(failed)} of its inputs are missing or changed.")  # fmt: skip
        if as_json:
            typer.echo(json_text({**report, "reproduced": False}))
        raise typer.Exit(1 if failed else 0)
    with Progress(error_console(), list(recipe.metrics), quiet=as_json) as progress:
        record = rerun(recipe, config, ignore_event if as_json else progress)
    outcome_decided()
    report.update(run_id=record.run_id, mlflow_run_id=record.mlflow_run_id, status=record.status)
    code = 0 if record.status == "SUCCEEDED" else 1
    console.print(f"rerun {record.run_id} {record.status}"
                  + (f"  mlflow run {record.mlflow_run_id}" if record.mlflow_run_id else ""))
    if compare and code == 0:
        differences = compare_metrics(recipe.metrics, new_metrics(config, record), tolerance)
        report["metric_differences"] = differences
        for line in differences:
            console.print(f"  [red]differs[/] {line}", highlight=False)
        if differences:
            code = 1
        else:
            count = sum(len(m) for m in recipe.metrics.values())
            console.print(f"  [green]all {count} recorded metrics reproduced[/] "
                          f"(tolerance {tolerance:g})")  # fmt: skip
    if as_json:
        typer.echo(json_text({**report, "reproduced": code == 0}))
    raise typer.Exit(code)
