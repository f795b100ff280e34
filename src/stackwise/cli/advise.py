"""`stackwise advise`: recommend a stack for a pipeline and a team, explain it, write it.

Thin like every command module: it picks where the team profile comes from (a file, questions
in a terminal, or nothing), calls `stackwise.advisor` and renders. All imports beyond Typer
happen inside the command, so `stackwise --help` does not pay for them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from stackwise.cli.main import app, guarded


@app.command()
@guarded
def advise(
    target: str | None = typer.Argument(
        None, help="Pipeline to analyse: 'package.module:name' or 'file.py:name' (optional)."
    ),
    profile: Path | None = typer.Option(
        None, "--profile", help="Team profile (YAML). Without it, a terminal asks the questions."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    write_stack: Path | None = typer.Option(
        None, "--write-stack", help="Write a stackwise.yaml for the recommendation to FILE."
    ),
    force: bool = typer.Option(False, "--force", help="Let --write-stack replace a file."),
    no_input: bool = typer.Option(
        False, "--no-input", help="Ask nothing: use the pipeline analysis and defaults."
    ),
) -> None:
    """Recommend an orchestrator and a compute backend (MLflow always), with the reasons."""
    from stackwise.advisor.advice import ProfileOrigin
    from stackwise.advisor.advice import advise as make_advice
    from stackwise.advisor.profile import TeamProfile, load_profile
    from stackwise.advisor.report import advice_json, print_advice
    from stackwise.advisor.stackfile import write_stack as write_stack_file
    from stackwise.authoring.loader import load_pipeline
    from stackwise.cli.render import error_console, out_console
    from stackwise.errors import AdvisorError

    if write_stack is not None and write_stack.exists() and not force:
        # Before any question is asked: finding out after answering them all is rude.
        raise AdvisorError(
            f"{write_stack} already exists; pass --force to overwrite it, or give "
            "--write-stack another path."
        )
    pipeline = load_pipeline(target) if target else None
    team: TeamProfile | None = None
    origin: ProfileOrigin = "none"
    if profile is not None:
        team, origin = load_profile(profile), "file"
    elif not no_input and sys.stdin.isatty():
        from stackwise.advisor.interactive import ask_profile, current_values

        team, origin = ask_profile(error_console(), current_values(pipeline)), "interactive"
    advice = make_advice(
        pipeline, team, origin=origin, profile_path=str(profile) if profile else None
    )
    written = write_stack_file(advice, write_stack, force=force) if write_stack else None
    if as_json:
        typer.echo(advice_json(advice))
    else:
        print_advice(out_console(), advice)
    if written is not None:
        error_console().print(f"wrote {written} (load it with --stack {written})")
