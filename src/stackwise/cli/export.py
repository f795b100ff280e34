"""`stackwise export KIND TARGET --out PATH`: compile a pipeline for another orchestrator (an
Airflow DAG file, a Kubeflow Pipelines spec). Targets are found by name in
`stackwise.plugins.TARGETS`, so a new target adds no command here."""

from __future__ import annotations

import typer

from stackwise.cli.main import app, guarded


@app.command()
@guarded
def export(
    kind: str = typer.Argument(..., help="Where to: airflow or kubeflow."),
    target: str = typer.Argument(..., help="Pipeline: 'package.module:name' or 'file.py:name'."),
    out: str = typer.Option(..., "--out", help="Folder (Airflow DAGs folder) or file to write."),
    stack: str | None = typer.Option(None, "--stack", help="Stack config file."),
    as_json: bool = typer.Option(False, "--json", help="Print the written files as JSON."),
) -> None:
    """Compile a pipeline for an orchestrator from data (no network); print the files written."""
    from pathlib import Path

    from stackwise.authoring.loader import load_pipeline
    from stackwise.cli.render import json_text, out_console
    from stackwise.config import load_stack
    from stackwise.orchestrators.targets import compile_for, open_target

    config = load_stack(stack)
    pipeline = load_pipeline(target)
    files = compile_for(open_target(config, kind), pipeline, Path(out))
    if as_json:
        typer.echo(json_text({"target": kind, "files": [str(f) for f in files]}))
        return
    console = out_console()
    for file in files:
        console.print(f"wrote {file}", highlight=False)
