"""Rendering a lineage graph: a text tree for terminals, JSON for machines, DOT and Mermaid for
diagrams (Graphviz, Markdown), and a self-contained HTML page (`html.py`)."""

from __future__ import annotations

from collections.abc import Callable

from stackwise.lineage.graph import LineageEdge, LineageGraph, LineageNode

FORMATS = ("tree", "json", "dot", "mermaid", "html")

KIND_TITLE = {
    "alias": "alias",
    "model_version": "model version",
    "pipeline_run": "pipeline run",
    "run": "step run",
    "dataset": "feature set",
    "raw_data": "raw data",
    "artifact": "artifact",
}
KIND_COLOR = {
    "alias": "#f4c542",
    "model_version": "#f29e4c",
    "pipeline_run": "#9dc3e6",
    "run": "#c5e0b4",
    "dataset": "#d9c2f0",
    "raw_data": "#e6e6e6",
    "artifact": "#f8d7da",
}
#: The attributes worth a glance, per kind (everything is in JSON and the HTML details).
KEY_ATTRS = {
    "alias": ("holder",),
    "model_version": ("created", "aliases", "training_run_id"),
    "pipeline_run": ("orchestrator", "code_version", "git_commit", "git_dirty", "started"),
    "run": ("status", "stackwise_run_id", "cached_from"),
    "dataset": ("role",),
    "raw_data": ("source",),
    "artifact": ("role",),
}


def render(graph: LineageGraph, fmt: str) -> str:
    from stackwise.lineage.html import render_html

    renderers: dict[str, Callable[[LineageGraph], str]] = {
        "tree": render_tree,
        "json": lambda g: g.model_dump_json(indent=2),
        "dot": render_dot,
        "mermaid": render_mermaid,
        "html": render_html,
    }
    return renderers[fmt](graph)


def describe(node: LineageNode, *, short: bool = False) -> str:
    text = f"{KIND_TITLE[node.kind]} {node.label}"
    if short:
        return text
    attrs = [f"{k}={node.attrs[k][:120]}" for k in KEY_ATTRS[node.kind] if node.attrs.get(k)]
    return text + (f"  ({', '.join(attrs)})" if attrs else "")


def render_tree(graph: LineageGraph) -> str:
    root = graph.node(graph.root)
    lines = [describe(root)]
    sections = ["upstream", "downstream"] if graph.direction == "both" else [graph.direction]
    seen = {graph.root}
    for section in sections:
        forward = section == "downstream"
        if root.kind == "pipeline_run":
            _pipeline_section(graph, section, forward, seen, lines, len(sections) > 1)
            continue
        edges = graph.successors(graph.root) if forward else graph.predecessors(graph.root)
        if not edges:
            continue
        if len(sections) > 1:
            lines.append(f"{section}:")
        _walk(graph, graph.root, "", forward, seen, lines)
    return "\n".join(lines) + "\n"


def _pipeline_section(
    graph: LineageGraph,
    section: str,
    forward: bool,
    seen: set[str],
    lines: list[str],
    titled: bool,
) -> None:
    """A pipeline run is the context of its steps, not a hop between them: list its steps
    (last first when looking upstream, so the tree unfolds from what it produced) and walk
    from each."""
    steps = [e.target for e in graph.successors(graph.root) if e.relation == "ran step"]
    steps.sort(key=lambda n: graph.node(n).attrs.get("started", ""), reverse=not forward)
    if titled:
        lines.append(f"{section}:")
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        again = step in seen
        suffix = "  (see above)" if again else ""
        lines.append(
            f"{'└── ' if last else '├── '}[ran step] "
            f"{describe(graph.node(step), short=again)}{suffix}"
        )
        if not again:
            seen.add(step)
            _walk(graph, step, "    " if last else "│   ", forward, seen, lines)


def _walk(
    graph: LineageGraph,
    node_id: str,
    prefix: str,
    forward: bool,
    seen: set[str],
    lines: list[str],
) -> None:
    edges: list[LineageEdge] = graph.successors(node_id) if forward else graph.predecessors(node_id)
    # a pipeline run is shown once, under the first of its steps: it is context, not a hop
    # (listed before the inputs, so it is seen before any deeper step could repeat it)
    shown = [e for e in edges if not (_other(e, forward) in seen and e.relation == "ran step")]
    shown.sort(key=lambda e: e.relation != "ran step")
    for i, edge in enumerate(shown):
        other = _other(edge, forward)
        last = i == len(shown) - 1
        again = other in seen
        suffix = "  (see above)" if again else ""
        lines.append(
            f"{prefix}{'└── ' if last else '├── '}[{edge.relation}] "
            f"{describe(graph.node(other), short=again)}{suffix}"
        )
        if not again:
            seen.add(other)
            _walk(graph, other, prefix + ("    " if last else "│   "), forward, seen, lines)


def _other(edge: LineageEdge, forward: bool) -> str:
    return edge.target if forward else edge.source


def _short_ids(graph: LineageGraph) -> dict[str, str]:
    return {n.id: f"n{i}" for i, n in enumerate(graph.nodes)}


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render_dot(graph: LineageGraph) -> str:
    ids = _short_ids(graph)
    out = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
        f'  labelloc="t"; label="{_dot_text(f"lineage of {graph.ref} ({graph.direction})")}";',
    ]
    for node in graph.nodes:
        lines = [KIND_TITLE[node.kind], node.label]
        lines += [f"{k}: {node.attrs[k][:40]}" for k in KEY_ATTRS[node.kind] if node.attrs.get(k)]
        label = "\\n".join(_dot_text(x) for x in lines)
        width = ", penwidth=2.5" if node.id == graph.root else ""
        out.append(
            f'  {ids[node.id]} [label="{label}", fillcolor="{KIND_COLOR[node.kind]}"{width}];'
        )
    for e in graph.edges:
        out.append(f'  {ids[e.source]} -> {ids[e.target]} [label="{_dot_text(e.relation)}"];')
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    for raw, escaped in (
        ("&", "#amp;"),
        ('"', "#quot;"),
        ("<", "#lt;"),
        (">", "#gt;"),
        ("|", "#124;"),
    ):
        text = text.replace(raw, escaped)
    return text


def render_mermaid(graph: LineageGraph) -> str:
    ids = _short_ids(graph)
    out = ["flowchart LR"]
    for node in graph.nodes:
        label = f"{KIND_TITLE[node.kind]}<br/>{_mermaid_text(node.label)}"
        out.append(f'  {ids[node.id]}["{label}"]')
    for e in graph.edges:
        out.append(f"  {ids[e.source]} -->|{_mermaid_text(e.relation)}| {ids[e.target]}")
    for kind, color in KIND_COLOR.items():
        out.append(f"  classDef {kind} fill:{color},stroke:#444,color:#000")
    for node in graph.nodes:
        out.append(f"  class {ids[node.id]} {node.kind}")
    out.append(f"  style {ids[graph.root]} stroke-width:3px")
    return "\n".join(out) + "\n"
