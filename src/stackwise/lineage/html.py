"""A self-contained HTML page for a lineage graph: an SVG picture laid out in columns (data
flows left to right), a legend and a details table. No JavaScript and nothing fetched, so it
opens offline and can be attached to a ticket or an audit report."""

from __future__ import annotations

import html

from stackwise.lineage.graph import LineageGraph
from stackwise.lineage.render import KEY_ATTRS, KIND_COLOR, KIND_TITLE

_W, _H = 240, 46  # node box
_CHARS = 33  # of a label, at font size 12, that fit the box
_GAP_X, _GAP_Y = 90, 18
_MARGIN = 24


def _layers(graph: LineageGraph) -> dict[str, int]:
    """Column of each node: the longest chain of edges leading to it (edges on a cycle, which
    content-addressed pass-through steps can create, are ignored after len(nodes) rounds)."""
    layer = {n.id: 0 for n in graph.nodes}
    for _ in range(len(graph.nodes)):
        changed = False
        for e in graph.edges:
            if layer[e.target] < layer[e.source] + 1 <= len(graph.nodes):
                layer[e.target] = layer[e.source] + 1
                changed = True
        if not changed:
            break
    return layer


def _positions(graph: LineageGraph) -> dict[str, tuple[int, int]]:
    layer = _layers(graph)
    columns: dict[int, list[str]] = {}
    for node in graph.nodes:
        columns.setdefault(layer[node.id], []).append(node.id)
    pos: dict[str, tuple[int, int]] = {}
    for col in sorted(columns):
        # order each column by where its inputs sit, so edges cross less
        def key(node_id: str) -> float:
            ys = [pos[e.source][1] for e in graph.predecessors(node_id) if e.source in pos]
            return sum(ys) / len(ys) if ys else 0.0

        for row, node_id in enumerate(sorted(columns[col], key=key)):
            pos[node_id] = (_MARGIN + col * (_W + _GAP_X), _MARGIN + row * (_H + _GAP_Y))
    return pos


def _svg(graph: LineageGraph) -> str:
    pos = _positions(graph)
    width = max((x for x, _ in pos.values()), default=0) + _W + 2 * _MARGIN
    height = max((y for _, y in pos.values()), default=0) + _H + 2 * _MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker>'
        "</defs>",
    ]
    for e in graph.edges:
        (x1, y1), (x2, y2) = pos[e.source], pos[e.target]
        sx, sy, tx, ty = x1 + _W, y1 + _H / 2, x2, y2 + _H / 2
        if tx <= sx:  # same or earlier column: loop around below
            ty += _H / 2
        mid = (sx + tx) / 2
        # membership in a pipeline run is context, not data flow: draw it quietly
        look = (
            'stroke="#bbb" stroke-dasharray="4 3"'
            if e.relation == "ran step"
            else 'stroke="#777" stroke-width="1.3"'
        )
        out.append(
            f'<path d="M{sx},{sy} C{mid},{sy} {mid},{ty} {tx},{ty}" fill="none" {look} '
            f'marker-end="url(#arrow)"><title>{html.escape(e.relation)}</title></path>'
        )
    for node in graph.nodes:
        x, y = pos[node.id]
        tip = "\n".join(f"{k}: {v}" for k, v in node.attrs.items())
        stroke = ' stroke="#000" stroke-width="2.5"' if node.id == graph.root else ' stroke="#555"'
        label = node.label if len(node.label) <= _CHARS else node.label[: _CHARS - 1] + "…"
        out.append(
            f"<g><title>{html.escape(tip)}</title>"
            f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="7" '
            f'fill="{KIND_COLOR[node.kind]}"{stroke}/>'
            f'<text x="{x + 9}" y="{y + 17}" font-size="10" fill="#333">'
            f"{html.escape(KIND_TITLE[node.kind])}</text>"
            f'<text x="{x + 9}" y="{y + 34}" font-size="12">{html.escape(label)}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out)


def render_html(graph: LineageGraph) -> str:
    title = f"Lineage of {graph.ref} ({graph.direction})"
    legend = " ".join(
        f'<span class="chip" style="background:{KIND_COLOR[k]}">{html.escape(t)}</span>'
        for k, t in KIND_TITLE.items()
        if any(n.kind == k for n in graph.nodes)
    )
    rows = []
    for node in graph.nodes:
        attrs = "<br>".join(
            f"<b>{html.escape(k)}</b>: {html.escape(v)}"
            for k, v in node.attrs.items()
            if k in KEY_ATTRS[node.kind] or k in ("uri", "digest", "run_id", "mlflow_run_id")
        )
        rows.append(
            f"<tr><td>{html.escape(KIND_TITLE[node.kind])}</td>"
            f"<td>{html.escape(node.label)}</td><td>{attrs}</td></tr>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; }}
.chip {{ display: inline-block; padding: 2px 8px; border-radius: 6px; margin-right: 4px;
        border: 1px solid #888; font-size: 12px; }}
.picture {{ overflow: auto; border: 1px solid #ddd; margin: 12px 0; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Data flows left to right. Hover a box for all its details. {legend}</p>
<div class="picture">
{_svg(graph)}
</div>
<h2>Details</h2>
<table><tr><th>kind</th><th>name</th><th>details</th></tr>
{"".join(rows)}
</table>
</body></html>
"""
