"""`stackwise policy ...`: evaluate or validate promotion policies without changing anything."""

from __future__ import annotations

import typer

from stackwise.cli.main import app, guarded
from stackwise.cli.models import JSON_OPTION, POLICIES_OPTION, STACK_OPTION, lifecycle

policy_app = typer.Typer(
    help="Promotion policies as code: check and validate.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")


@policy_app.command("check")
@guarded
def check(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version number."),
    to: str = typer.Option(..., "--to", help="Target alias."),
    approver: str | None = typer.Option(None, "--approver", help="Evaluate with this approver."),
    stack: str | None = STACK_OPTION,
    policies: str | None = POLICIES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Evaluate every rule for promoting VERSION to the alias: pass/fail, observed, required.
    Exit 0 when all pass, 1 when one fails; nothing is recorded."""
    from stackwise.cli.render import out_console
    from stackwise.cli.render_models import policy_table, print_warnings

    result = lifecycle(stack, policies).check(name, version, to, approver=approver)
    print_warnings(result.warnings)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        out_console().print(policy_table(result))
    raise typer.Exit(0 if result.passed else 1)


@policy_app.command("validate")
@guarded
def validate(
    stack: str | None = STACK_OPTION,
    policies: str | None = POLICIES_OPTION,
) -> None:
    """Read the policy file and report the first problem (file, line, key, fix), or OK, with
    warnings (on stderr) for policies that cannot guard what they seem to: a model name that
    is not registered, a beat_champion rule that cannot fail."""
    from stackwise.cli.render_models import print_warnings
    from stackwise.config import load_stack
    from stackwise.governance.policies import load_policies
    from stackwise.governance.policy_lint import lint_policies, registered_models

    config = load_stack(stack)
    loaded = load_policies(policies, config)
    registered, unread = registered_models(config) if loaded.models else ([], None)
    print_warnings(lint_policies(loaded, registered))
    rules = sum(len(p.rules) for by_alias in loaded.models.values() for p in by_alias.values())
    where = loaded.source or "no policy file (defaults)"
    typer.echo(
        f"{where}: OK; aliases {', '.join(loaded.aliases)}; "
        f"{len(loaded.models)} models, {rules} rules"
    )
    if unread is not None:
        typer.echo(f"model names not checked against the registry: {unread}", err=True)
