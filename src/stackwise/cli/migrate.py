"""`stackwise migrate --to local|airflow|kubeflow`: switch orchestrators with nothing lost."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stackwise.cli.main import app, guarded, outcome_decided

if TYPE_CHECKING:
    from stackwise.migrate import Plan
    from stackwise.migrate_history import History


@app.command()
@guarded
def migrate(
    to: str = typer.Option(..., "--to", help="local, airflow or kubeflow."),
    pipeline: list[str] = typer.Option(
        [], "--pipeline", help="Pipeline TARGET to carry over (repeatable; default: `pipelines:`)."
    ),
    stack: str | None = typer.Option(None, "--stack", help="The current stack file."),
    out: Path | None = typer.Option(
        None, "--dags-folder", help="Airflow: where the DAG files go (default: the stack's)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan only."),
    wait: bool = typer.Option(False, "--wait", help="Wait for runs in progress to finish."),
    timeout: float = typer.Option(3600.0, "--timeout", min=0, help="Seconds --wait waits."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Write `stackwise.<TO>.yaml` beside the stack file (tracking, artifact store and
    policies kept), generate the target's files, and carry each schedule over so that the new
    orchestrator's first interval is the one after the last completed one. Prints MLflow's
    history before and after and checks that nothing changed (exit 1 otherwise). Refuses
    while runs are in progress unless --wait."""
    import dataclasses

    from stackwise.cli.render import json_text, out_console
    from stackwise.config import load_stack
    from stackwise.migrate import apply, plan, wait_idle

    config = load_stack(stack)
    proposed = plan(config, to, pipeline, out)
    if not dry_run:
        wait_idle(config, [p.pipeline for p in proposed.pipelines], wait, timeout)
        proposed = apply(config, plan(config, to, pipeline, out))
    outcome_decided()
    changed = proposed.changed
    if as_json:
        typer.echo(json_text({
            **{k: v for k, v in dataclasses.asdict(proposed).items() if k != "stack_data"},
            "dry_run": dry_run, "changed": changed,
        }))  # fmt: skip
    else:
        _print(proposed, dry_run, out_console())
    raise typer.Exit(1 if changed else 0)


def _print(plan_: Plan, dry_run: bool, console: Any) -> None:
    verb = "would" if dry_run else "did"
    console.print(f"[bold]migrate[/] {plan_.source_stack or 'default stack'} -> {plan_.to} "
                  f"({'dry run: nothing written' if dry_run else 'done'})")  # fmt: skip
    console.print(f"  {verb} write stack file {plan_.new_stack}", highlight=False)
    for p in plan_.pipelines:
        console.print(f"  pipeline {p.pipeline}: last completed interval ends "
                      f"{p.last_completed or 'never'}; first interval on {plan_.to} starts "
                      f"{p.first_new or '- (no schedule)'}", highlight=False)  # fmt: skip
        for f in p.files:
            console.print(f"    wrote {f}", highlight=False)
        if p.ledger_imported:
            console.print(f"    ledger: recorded {len(p.ledger_imported)} intervals completed "
                          "elsewhere as SUCCEEDED", highlight=False)  # fmt: skip
    _history("before", plan_.before, console)
    if plan_.after is not None:
        _history("after", plan_.after, console)
        changed = plan_.changed
        if changed:
            for line in changed:
                console.print(f"[red]changed[/] {line}", highlight=False)
        else:
            console.print("[green]nothing changed in MLflow[/]: experiments, runs, model "
                          "versions, aliases, policies and intervals are as before")  # fmt: skip


def _history(label: str, h: History, console: Any) -> None:
    console.print(f"  {label}: experiments {', '.join(h.experiments) or '-'}", highlight=False)
    for name, by in h.runs.items():
        runs = ", ".join(f"{n} on {o}" for o, n in by.items())
        console.print(f"    pipeline runs of {name}: {runs}", highlight=False)
    for name, m in h.models.items():
        aliases = ", ".join(f"@{a}=v{v}" for a, v in m["aliases"].items()) or "no alias"
        console.print(f"    model {name}: versions {m['versions']}; {aliases}", highlight=False)
    console.print(f"    policies: {h.policies}", highlight=False)
    for name, last in h.last_completed.items():
        ledger = h.ledger_last.get(name) or "none"
        console.print(f"    last completed interval of {name}: ends {last or 'never'} "
                      f"(ledger: {ledger})", highlight=False)  # fmt: skip
