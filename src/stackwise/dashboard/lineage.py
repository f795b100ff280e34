"""Lineage as `stackwise lineage` builds it (raw data -> features -> runs -> model version ->
alias), drawn by Graphviz; every node links to the lineage rooted at itself, so the graph is
walked upstream and downstream by clicking."""

from __future__ import annotations

import urllib.parse

from pydantic import BaseModel

from stackwise.dashboard.graphs import KIND_COLORS, Edge, Node, render_svg
from stackwise.dashboard.stores import Stores
from stackwise.lineage.graph import Direction, LineageGraph, LineageNode

DIRECTIONS: tuple[str, ...] = ("upstream", "downstream", "both")


class LineageStart(BaseModel):
    """A place to start from: a model alias or a recent pipeline run."""

    ref: str
    label: str


def build(stores: Stores, ref: str, direction: str | None) -> LineageGraph:
    """LineageError (from the library) for a ref that names nothing; direction None is the
    CLI's default (upstream of a model, downstream of a dataset, both for a run)."""
    from stackwise.errors import LineageError
    from stackwise.lineage.graph import build_lineage
    from stackwise.lineage.refs import resolve_ref

    if direction is not None and direction not in DIRECTIONS:
        raise LineageError(f"unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}.")
    index = stores.index()
    chosen: Direction | None = direction  # type: ignore[assignment]
    return build_lineage(index, resolve_ref(index, ref), chosen)


def node_ref(node: LineageNode) -> str | None:
    """The `stackwise lineage` reference that names this node, for navigation."""
    a = node.attrs
    if node.kind == "alias":
        return "models:/" + node.id.removeprefix("alias:")
    if node.kind == "model_version" and a.get("name") and a.get("version"):
        return f"models:/{a['name']}/{a['version']}"
    if node.kind == "pipeline_run":
        return a.get("mlflow_run_id")
    if node.kind == "run":
        return a.get("run_id")
    return a.get("digest") or None


def href(ref: str, direction: str | None = None) -> str:
    query = {"ref": ref, **({"direction": direction} if direction else {})}
    return "/lineage?" + urllib.parse.urlencode(query)


def svg(graph: LineageGraph) -> str:
    from stackwise.lineage.render import KEY_ATTRS, KIND_TITLE

    nodes = []
    keys = {n.id: f"node-{i}" for i, n in enumerate(graph.nodes)}
    for n in graph.nodes:
        lines = [KIND_TITLE[n.kind], n.label]
        lines += [f"{k}: {n.attrs[k][:40]}" for k in KEY_ATTRS[n.kind] if n.attrs.get(k)]
        ref = node_ref(n)
        nodes.append(Node(
            key=keys[n.id], lines=tuple(lines), fill=KIND_COLORS.get(n.kind, "#ffffff"),
            css=f"lineage k-{n.kind}", href=href(ref, "both") if ref else None,
            tooltip=n.label, bold=n.id == graph.root,
        ))  # fmt: skip
    edges = [Edge(keys[e.source], keys[e.target], e.relation) for e in graph.edges]
    return render_svg(nodes, edges)


def starts(stores: Stores) -> list[LineageStart]:
    """Model aliases and the newest pipeline runs in MLflow."""
    from stackwise.governance.catalog import list_models

    out = [
        LineageStart(ref=f"models:/{m.name}@{alias}", label=f"{m.name}@{alias} (v{v})")
        for m in list_models(stores.registry)
        for alias, v in m.aliases.items()
    ]
    for snap in stores.index().pipeline_runs(limit=10):
        out.append(LineageStart(ref=snap.run_id, label=snap.name))
    return out
