"""`stackwise lineage REF`: where a model came from, or what was built on a dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from stackwise.cli.main import app, guarded


@app.command()
@guarded
def lineage(
    ref: str = typer.Argument(
        ..., help="models:/NAME@ALIAS, models:/NAME/VERSION, a run id or a dataset digest."
    ),
    fmt: str = typer.Option("tree", "--format", "-f", help="tree, json, dot, mermaid or html."),
    upstream: bool = typer.Option(False, "--upstream", help="What REF was built from."),
    downstream: bool = typer.Option(False, "--downstream", help="What was built on REF."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to FILE."),
    stack: str | None = typer.Option(None, "--stack", help="Stack config file."),
) -> None:
    """Lineage from MLflow: upstream by default for a model, downstream for a dataset, both for
    a run."""
    from stackwise.config import load_stack
    from stackwise.errors import LineageError, did_you_mean
    from stackwise.lineage.graph import Direction, build_lineage
    from stackwise.lineage.index import RunIndex
    from stackwise.lineage.refs import resolve_ref
    from stackwise.lineage.render import FORMATS, render
    from stackwise.tracking.mlflow_tracker import tracker_for

    if fmt not in FORMATS:
        raise LineageError(
            f"unknown format {fmt!r}.{did_you_mean(fmt, FORMATS)} Use one of {', '.join(FORMATS)}."
        )
    if upstream and downstream:
        raise LineageError("--upstream and --downstream exclude each other; drop one for both.")
    direction: Direction | None = "upstream" if upstream else "downstream" if downstream else None
    index = RunIndex(tracker_for(load_stack(stack).tracking_uri_resolved).client)
    graph = build_lineage(index, resolve_ref(index, ref), direction)
    text = render(graph, fmt)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {fmt} lineage of {ref} ({len(graph.nodes)} nodes) to {output}", err=True)
