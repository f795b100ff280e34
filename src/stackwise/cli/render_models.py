"""Tables for the governance commands (`models`, `policy`). JSON output is the pydantic models
of `stackwise.governance` serialized, never these tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.table import Table

    from stackwise.governance.audit import AuditEvent
    from stackwise.governance.catalog import ModelDetail, ModelSummary
    from stackwise.governance.policy_lint import PolicyWarning
    from stackwise.governance.rules import PolicyResult


def _aliases(aliases: dict[str, str]) -> str:
    return ", ".join(f"@{a}=v{v}" for a, v in aliases.items()) or "-"


def models_table(models: list[ModelSummary]) -> Table:
    from rich.table import Table

    table = Table()
    for col in ("model", "versions", "latest", "aliases", "last event"):
        table.add_column(col)
    for m in models:
        last = m.last_event
        event = f"{last.action} v{last.version} @{last.alias} by {last.actor}" if last else ""
        table.add_row(m.name, str(m.versions), m.latest_version or "-", _aliases(m.aliases), event)
    return table


def model_table(detail: ModelDetail) -> Table:
    from rich.table import Table

    table = Table(title=f"{detail.name}  {_aliases(detail.aliases)}", title_justify="left")
    for col in ("version", "created", "aliases", "pipeline run", "code", "orchestrator", "policy"):
        table.add_column(col)
    for v in detail.versions:
        table.add_row(
            v.version,
            (v.created or "")[:19],
            ", ".join(f"@{a}" for a in v.aliases),
            v.stackwise_run_id or "",
            (v.pipeline_version or "")[:12],
            v.orchestrator or "",
            ", ".join(f"@{a}: {s}" for a, s in sorted(v.policy.items())),
        )
    return table


def history_table(name: str, events: list[AuditEvent]) -> Table:
    from rich.table import Table

    table = Table(title=f"history of {name} (oldest first)", title_justify="left")
    for col in ("when", "action", "alias", "from", "to", "who", "approver", "policy", "reason"):
        table.add_column(col)
    for e in events:
        action = e.action + (" (FORCED)" if e.forced else "")
        style = "red" if e.action == "refuse" or e.forced else "green"
        table.add_row(
            e.at[:19],
            f"[{style}]{action}[/]",
            e.alias,
            f"v{e.previous}" if e.previous else "-",
            f"v{e.version}",
            e.actor,
            e.approver or "",
            e.policy,
            e.reason or "",
        )
    return table


def policy_table(result: PolicyResult) -> Table:
    from rich.table import Table

    verdict = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
    title = f"{result.model} v{result.version} -> @{result.alias}: {verdict}"
    if not result.has_policy:
        title += "  (no policy for this model and alias: nothing to check)"
    table = Table(title=title, title_justify="left")
    for col in ("rule", "result", "observed", "required"):
        table.add_column(col, overflow="fold")
    for r in result.rules:
        table.add_row(
            r.rule, "[green]pass[/]" if r.passed else "[red]FAIL[/]", r.observed, r.required
        )
    return table


def print_warnings(warnings: Sequence[PolicyWarning]) -> None:
    """Policy warnings on stderr, one line each (stdout stays the report or the JSON)."""
    from rich.markup import escape

    from stackwise.cli.render import error_console

    console = error_console()
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {escape(warning.message)}")
