"""Graphs drawn by Graphviz: a graph is described as data (nodes, edges), written to the DOT
language with every string quoted, laid out by `dot -Tsvg`, and inlined in the page.

Escaping, twice over: DOT strings escape backslash and quote (a backslash would otherwise start
a label escape such as `\\N`), and `&` becomes `&amp;` because Graphviz passes entities
through to its SVG while it escapes `<`, `>` and quotes itself. So a label `<script>` is
drawn as text. As a last guard an SVG holding a `<script` element is refused.

Colours: every status has one colour (`STATUS_COLORS`), used for the SVG fills here and, in
the stylesheet, for table cells and grid cells (a test checks the two agree).
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import subprocess
from collections.abc import Sequence

from stackwise.errors import DashboardError

STATUS_COLORS = {
    "SUCCEEDED": "#2e9d4f",
    "FAILED": "#d93b3b",
    "RUNNING": "#3b82d9",
    "RETRYING": "#8e6bd9",
    "KILLED": "#e08a1e",
    "SKIPPED": "#e8b4c8",
    "PENDING": "#d0d4da",
    "STALE": "#7a7f87",
    "SCHEDULED": "#d0d4da",
}
#: What a node without a status (a pipeline's own DAG) or of a lineage kind is filled with.
KIND_COLORS = {
    "step": "#eef2f7",
    "alias": "#ffe08a",
    "model_version": "#f9c58d",
    "pipeline_run": "#b9d7f5",
    "run": "#d6e6f7",
    "dataset": "#c9ecc9",
    "raw_data": "#e3e3e3",
    "artifact": "#f0e0f5",
}
_DOT_TIMEOUT_S = 20


@dataclasses.dataclass(frozen=True)
class Node:
    """`key` is the node's id in the SVG (`<g id=...>`), `lines` its label, `css` the classes
    of its `<g>` (e.g. `s-FAILED`), `href` where a click goes."""

    key: str
    lines: tuple[str, ...]
    fill: str = "#ffffff"
    css: str = ""
    href: str | None = None
    tooltip: str = ""
    bold: bool = False


@dataclasses.dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""


def quote(text: str) -> str:
    """A DOT double-quoted string whose content Graphviz draws exactly as `text`."""
    clean = "".join(ch if ch >= " " or ch == "\n" else " " for ch in text)
    clean = clean.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
    return '"' + clean.replace("\n", "\\n") + '"'


def dot_source(nodes: Sequence[Node], edges: Sequence[Edge], rankdir: str = "LR") -> str:
    """The DOT text of a graph. Node names in DOT are positions (`n0`, `n1`): no user string
    is ever a DOT identifier."""
    ids = {n.key: f"n{i}" for i, n in enumerate(nodes)}
    out = [
        "digraph g {",
        f"  rankdir={'TB' if rankdir == 'TB' else 'LR'};",
        '  bgcolor="transparent"; pad=0.1; nodesep=0.25; ranksep=0.45;',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10,'
        ' color="#555555", margin="0.12,0.05"];',
        '  edge [fontname="Helvetica", fontsize=8, color="#777777", fontcolor="#555555"];',
    ]
    for n in nodes:
        attrs = [
            f"id={quote(n.key)}",
            f"label={quote(chr(10).join(n.lines))}",
            f"fillcolor={quote(n.fill)}",
            f"class={quote(n.css)}",
            f"tooltip={quote(n.tooltip or (n.lines[0] if n.lines else n.key))}",
        ]
        if n.href:
            attrs += [f"URL={quote(n.href)}", 'target="_top"']
        if n.bold:
            attrs.append("penwidth=2.5")
        out.append(f"  {ids[n.key]} [{', '.join(attrs)}];")
    for e in edges:
        if e.source in ids and e.target in ids:
            label = f" [label={quote(e.label)}]" if e.label else ""
            out.append(f"  {ids[e.source]} -> {ids[e.target]}{label};")
    out.append("}")
    return "\n".join(out) + "\n"


def dot_available() -> str | None:
    """The path of Graphviz's `dot`, or None."""
    return shutil.which("dot")


def require_dot() -> None:
    if dot_available() is None:
        raise DashboardError(
            "Graphviz's `dot` program is not installed (the dashboard lays out graphs with it); "
            "install it: apt-get install graphviz (Debian/Ubuntu) or brew install graphviz."
        )


def render_svg(nodes: Sequence[Node], edges: Sequence[Edge], rankdir: str = "LR") -> str:
    """The graph as an inline `<svg>` element (no XML prolog). Layouts are cached by their
    DOT text, so an unchanged graph costs no `dot` process."""
    if not nodes:
        return ""
    return _layout(dot_source(nodes, edges, rankdir))


@functools.lru_cache(maxsize=256)
def _layout(source: str) -> str:
    require_dot()
    try:
        done = subprocess.run(
            ["dot", "-Tsvg"], input=source.encode(), capture_output=True,
            timeout=_DOT_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise DashboardError(
            f"Graphviz took more than {_DOT_TIMEOUT_S} s to lay out a graph of "
            f"{source.count(' -> ')} edges; narrow the view (a lineage direction)."
        ) from None
    if done.returncode != 0:
        raise DashboardError(f"Graphviz failed: {done.stderr.decode(errors='replace').strip()}")
    svg = done.stdout.decode()
    svg = svg[svg.index("<svg") :]
    if "<script" in svg.lower():  # cannot happen with quote(); never serve it if it did
        raise DashboardError("refusing a graph whose SVG holds a script element")
    return svg
