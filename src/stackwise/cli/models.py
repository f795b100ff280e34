"""`stackwise models ...`: registered models, promotion through aliases, rollback, history.
Exit codes: 0 done, 1 promotion refused by the policy, 2 bad input (nothing changed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from stackwise.cli.main import app, guarded

if TYPE_CHECKING:
    from stackwise.governance.lifecycle import ModelLifecycle, PromotionOutcome

models_app = typer.Typer(
    help="Registered models: aliases as stages, policy-checked promotion, rollback, history.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

STACK_OPTION = typer.Option(None, "--stack", help="Stack config file (default ./stackwise.yaml).")
POLICIES_OPTION = typer.Option(
    None, "--policies", help="Policy file (default: policies.yaml, or `policies:` in the stack)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")


def lifecycle(stack: str | None, policies: str | None) -> ModelLifecycle:
    """Policies are loaded (and a broken file refused) before MLflow is touched."""
    from stackwise.config import load_stack
    from stackwise.governance.lifecycle import ModelLifecycle
    from stackwise.governance.policies import load_policies
    from stackwise.governance.registry import Registry

    config = load_stack(stack)
    rules = load_policies(policies, config)
    return ModelLifecycle(Registry.open(config), rules)


@models_app.command("list")
@guarded
def list_(stack: str | None = STACK_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Registered models with the versions holding each alias."""
    from stackwise.cli.render import out_console
    from stackwise.cli.render_models import models_table
    from stackwise.config import load_stack
    from stackwise.governance.catalog import list_models
    from stackwise.governance.registry import Registry

    models = list_models(Registry.open(load_stack(stack)))
    if as_json:
        typer.echo("[" + ",\n".join(m.model_dump_json(indent=2) for m in models) + "]")
    else:
        out_console().print(models_table(models) if models else "no registered models yet")


@models_app.command("show")
@guarded
def show(
    name: str = typer.Argument(..., help="Registered model name."),
    stack: str | None = STACK_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """A model's versions: aliases, pipeline run, code version, last policy verdicts."""
    from stackwise.cli.render import out_console
    from stackwise.cli.render_models import model_table
    from stackwise.config import load_stack
    from stackwise.governance.catalog import show_model
    from stackwise.governance.registry import Registry

    detail = show_model(Registry.open(load_stack(stack)), name)
    if as_json:
        typer.echo(detail.model_dump_json(indent=2))
    else:
        out_console().print(model_table(detail))


@models_app.command("promote")
@guarded
def promote(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version number to promote."),
    to: str = typer.Option(..., "--to", help="Target alias, e.g. staging or production."),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the history)."),
    approver: str | None = typer.Option(None, "--approver", help="Who approved (recorded)."),
    force: bool = typer.Option(False, "--force", help="Override a failed policy (needs --reason)."),
    stack: str | None = STACK_OPTION,
    policies: str | None = POLICIES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check the policy, then move the alias to this version. Refused (exit 1) on failure."""
    from stackwise.cli.render_models import print_warnings
    from stackwise.errors import PolicyViolation
    from stackwise.governance.rules import PolicyResult

    lc = lifecycle(stack, policies)
    try:
        outcome = lc.promote(name, version, to, reason=reason, approver=approver, force=force)
    except PolicyViolation as exc:
        if isinstance(exc.result, PolicyResult):
            print_warnings(exc.result.warnings)
        _show_policy(exc.result, as_json)
        raise
    if outcome.policy is not None:
        print_warnings(outcome.policy.warnings)
    _show_outcome(outcome, as_json)


@models_app.command("rollback")
@guarded
def rollback(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str = typer.Option(..., "--alias", help="The alias to move back."),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the history)."),
    stack: str | None = STACK_OPTION,
    policies: str | None = POLICIES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Move the alias back to the version that held it before (no policy check)."""
    _show_outcome(lifecycle(stack, policies).rollback(name, alias, reason=reason), as_json)


@models_app.command("history")
@guarded
def history(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str | None = typer.Option(None, "--alias", help="Only events of this alias."),
    stack: str | None = STACK_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Every promotion, refusal, forced override and rollback, oldest first (read from MLflow)."""
    from stackwise.cli.render import out_console
    from stackwise.cli.render_models import history_table
    from stackwise.config import load_stack
    from stackwise.governance.lifecycle import ModelLifecycle
    from stackwise.governance.policies import PolicyFile
    from stackwise.governance.registry import Registry

    lc = ModelLifecycle(Registry.open(load_stack(stack)), PolicyFile())
    events = lc.history(name, alias)
    if as_json:
        typer.echo("[" + ",\n".join(e.model_dump_json(indent=2) for e in events) + "]")
    else:
        out_console().print(history_table(name, events) if events else f"no events for {name}")


def _show_policy(result: object, as_json: bool) -> None:
    from stackwise.cli.render import out_console
    from stackwise.cli.render_models import policy_table
    from stackwise.governance.rules import PolicyResult

    if not isinstance(result, PolicyResult):
        return
    if as_json:  # the same shape as `stackwise policy check --json`
        typer.echo(result.model_dump_json(indent=2))
    else:
        out_console().print(policy_table(result))


def _show_outcome(outcome: PromotionOutcome, as_json: bool) -> None:
    from stackwise.cli.render import out_console
    from stackwise.cli.render_models import policy_table

    if as_json:
        typer.echo(outcome.model_dump_json(indent=2))
        return
    console = out_console()
    if outcome.policy is not None and outcome.policy.rules:
        console.print(policy_table(outcome.policy))
    style = "yellow" if outcome.event is not None and outcome.event.forced else "green"
    console.print(f"[{style}]{outcome.message}[/]")
