"""The advice for people (Rich) and for machines (JSON). Both render one `Advice`; the JSON is
its serialization, so a field shown to people is never missing for scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stackwise.advisor.advice import Advice, Decision
from stackwise.advisor.rules import show

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

_SOURCE_STYLE = {
    "profile": "green",
    "interactive": "green",
    "pipeline": "cyan",
    "default": "dim",
    "derived": "magenta",
}


def advice_json(advice: Advice) -> str:
    """`advise --json`: pydantic prints NaN and infinities as null (strict JSON)."""
    return advice.model_dump_json(indent=2)


def print_advice(console: Console, advice: Advice) -> None:
    from rich.markup import escape

    for note in advice.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    if advice.pipeline is not None:
        console.print(_pipeline_summary(advice))
    console.print(_inputs_table(advice))
    for kind, decision in (("orchestrator", advice.orchestrator), ("compute", advice.compute)):
        console.print(_decision_table(kind, decision))
        console.print(_runner_up(decision))
    console.print(
        f"\n[bold]tracker[/]: [bold green]{advice.tracker}[/], whatever the orchestrator: "
        f'"{escape(advice.tracker_reason)}" (seed)'
    )
    if advice.iteration_cost is not None:
        console.print(f"[bold]image build cost[/]: {escape(advice.iteration_cost.note)}")
    if advice.warnings:
        console.print("\n[bold yellow]warnings[/]")
        for warning in advice.warnings:
            console.print(f"[yellow]![/] {escape(warning.message)} [dim]({warning.id})[/]")
    console.print(
        f"\n[bold]recommended[/]: orchestrator [bold]{advice.orchestrator.choice}[/], "
        f"compute [bold]{advice.compute.choice}[/], tracker [bold]{advice.tracker}[/]"
    )


def _pipeline_summary(advice: Advice) -> str:
    from rich.markup import escape

    p = advice.pipeline
    assert p is not None
    kinds = ", ".join(f"{k} x{n}" for k, n in p.kinds.items())
    gpu = (
        f"{p.nodes} node(s) x {p.gpus_per_node} GPU(s) in {p.largest_step!r}"
        if p.gpu_steps
        else "none"
    )
    return escape(
        f"pipeline {p.name}: {p.step_count} steps ({kinds}); GPUs: {gpu}; images: {p.images} "
        f"of {p.step_count} steps; schedule: {p.schedule or 'none'}"
    )


def _inputs_table(advice: Advice) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="inputs", title_justify="left")
    for col in ("key", "value", "from", "why"):
        table.add_column(col, overflow="fold")
    for key, item in advice.inputs.items():
        style = _SOURCE_STYLE.get(item.source, "")
        table.add_row(
            key, escape(show(item.value)), f"[{style}]{item.source}[/]", escape(item.note or "")
        )
    return table


def _decision_table(kind: str, decision: Decision) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    scores = ", ".join(f"{o} {s}" for o, s in decision.scores.items())
    table = Table(
        title=f"{kind}: [bold green]{decision.choice}[/]  ({scores})",
        title_justify="left",
    )
    for col in ("criterion", "favours", "weight", "triggered by", "seed"):
        table.add_column(col, overflow="fold")
    for r in decision.reasons:
        table.add_row(
            r.criterion,
            r.favours,
            f"+{r.weight}",
            escape(r.triggered_by),
            escape(_quote(r.quote, r.origin)),
        )
    return table


def _runner_up(decision: Decision) -> str:
    from rich.markup import escape

    tie = ", a tie: the simpler option wins" if decision.tie else f", margin {decision.margin}"
    text = f"runner-up: {decision.runner_up}{tie}."
    if decision.flip is None:
        return text + " No change of one or two inputs flips this choice."
    flip = decision.flip
    scores = ", ".join(f"{o} {s}" for o, s in flip.scores.items())
    return escape(f"{text} Smallest change that makes it {flip.to}: {flip.change} ({scores}).")


def _quote(quote: str, origin: str) -> str:
    return f'"{quote}"' + ("" if origin == "seed" else f" ({origin})")
