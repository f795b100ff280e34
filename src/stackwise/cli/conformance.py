"""`stackwise conformance TARGET`: the same pipeline on every orchestrator, the same records."""

from __future__ import annotations

from pathlib import Path

import typer

from stackwise.cli.main import app, guarded, outcome_decided


@app.command()
@guarded
def conformance(
    target: str = typer.Argument(..., help="Pipeline: 'package.module:name' or 'file.py:name'."),
    orchestrators: str = typer.Option(
        "local,airflow,kubeflow", "--orchestrators", help="Comma-separated; local is the reference."
    ),
    date: str | None = typer.Option(
        None, "--date", help="Day the compared interval starts (default: the schedule's start)."
    ),
    policies: str | None = typer.Option(
        None, "--policies", help="Policy file whose verdicts must agree (default: the project's)."
    ),
    work: Path | None = typer.Option(
        None, "--work", help="Keep every side's stores in DIR (default: a temporary folder)."
    ),
    stack: str | None = typer.Option(None, "--stack", help="Stack config file (project root)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Run TARGET on each orchestrator (local; Airflow through `airflow dags test`; Kubeflow
    through `kfp.local`), each with stores of its own, and compare the MLflow records field by
    field with a local run under the same conditions, plus policy verdicts and lineage raw
    data digests. Differences print as a diff; exit 1 when there is one."""
    import dataclasses
    import shutil
    import tempfile

    from stackwise.cli.render import error_console, json_text, out_console
    from stackwise.config import load_stack
    from stackwise.conformance_sides import missing_extra
    from stackwise.conformance_suite import parse_kinds, run_suite
    from stackwise.errors import ConfigError
    from stackwise.governance.policies import load_policies

    kinds = parse_kinds(orchestrators)
    missing = [why for k in kinds if (why := missing_extra(k))]
    if missing:
        raise ConfigError("; ".join(missing) + ", or leave it out of --orchestrators.")
    config = load_stack(stack)
    rules = load_policies(policies, config)
    folder = work or Path(tempfile.mkdtemp(prefix="stackwise-conformance-"))
    console = error_console()
    console.print(f"conformance of [bold]{target}[/] on {', '.join(kinds)} (work: {folder})")
    try:
        report = run_suite(target, kinds, folder.resolve(), config.base_dir, date=date,
                           policies=rules)  # fmt: skip
    finally:
        if work is None:
            shutil.rmtree(folder, ignore_errors=True)
    outcome_decided()
    if as_json:
        typer.echo(json_text({**dataclasses.asdict(report), "passed": report.passed}))
    else:
        out = out_console()
        for side in report.sides:
            head = f"{side.orchestrator} vs {side.reference}"
            if side.error:
                out.print(f"[red]{head}: not compared[/]\n{side.error}", highlight=False)
            elif side.differences:
                out.print(f"[red]{head}: {len(side.differences)} differences[/]")
                for line in side.differences:
                    out.print(f"{_mark(line)} {line}", highlight=False, markup=False)
            else:
                models = ", ".join(side.verdicts) or "no model"
                out.print(f"[green]{head}: conform[/] (records, policy verdicts and lineage "
                          f"raw digests of {models})", highlight=False)  # fmt: skip
    raise typer.Exit(0 if report.passed else 1)


def _mark(line: str) -> str:
    """Diff marks: '-' expected but missing, '+' unexpected, '~' different values."""
    if " missing: " in line:
        return "-"
    if " unexpected: " in line:
        return "+"
    return "~"
