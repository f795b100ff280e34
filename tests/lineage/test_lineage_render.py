"""Renderers on a hand-built graph: names with quotes and markup stay inert in every format, a
node reached twice is printed once, and a cycle (two steps writing identical content) neither
hangs the layout nor loops the tree."""

from __future__ import annotations

import json

import pytest

from stackwise.lineage.graph import LineageEdge, LineageGraph, LineageNode
from stackwise.lineage.html import render_html
from stackwise.lineage.render import FORMATS, render, render_dot, render_mermaid, render_tree

TRICKY = 'raw "quotes" <b>&</b> | pipe'


def _graph(direction: str = "upstream") -> LineageGraph:
    nodes = [
        LineageNode(id="alias:m@prod", kind="alias", label="models:/m@prod", attrs={"holder": "2"}),
        LineageNode(id="version:m/2", kind="model_version", label="m v2"),
        LineageNode(id="run:a", kind="run", label="train a", attrs={"status": "FINISHED"}),
        LineageNode(id="run:b", kind="run", label="evaluate b"),
        LineageNode(id="data:a:out", kind="artifact", label="train.output 77ab"),
        LineageNode(id="raw:1", kind="raw_data", label=TRICKY, attrs={"source": "file:///x"}),
        LineageNode(id="pipeline_run:p", kind="pipeline_run", label="training 2026",
                    attrs={"orchestrator": "local"}),
    ]  # fmt: skip
    edges = [
        ("version:m/2", "alias:m@prod", "held by"),
        ("run:b", "version:m/2", "registered"),
        ("data:a:out", "run:b", "input model"),
        ("run:a", "data:a:out", "wrote"),
        ("raw:1", "run:a", "read"),
        ("raw:1", "run:b", "read"),  # a second path to the same raw node
        ("pipeline_run:p", "run:a", "ran step"),
        ("pipeline_run:p", "run:b", "ran step"),
        ("run:b", "run:a", 'odd "relation"'),  # closes a cycle a -> out -> b -> a
    ]
    return LineageGraph(
        ref="models:/m@prod", direction=direction, root="alias:m@prod",  # type: ignore[arg-type]
        nodes=nodes, edges=[LineageEdge(source=s, target=t, relation=r) for s, t, r in edges],
    )  # fmt: skip


def test_tree_prints_each_node_once_and_the_pipeline_run_once() -> None:
    tree = render_tree(_graph())
    assert tree.splitlines()[0] == "alias models:/m@prod  (holder=2)"
    assert tree.count(f"raw data {TRICKY}  (source=file:///x)") == 1
    assert tree.count(f"raw data {TRICKY}  (see above)") == 1
    assert tree.count("[ran step] pipeline run training 2026  (orchestrator=local)") == 1
    assert "[ran step] pipeline run training 2026  (see above)" not in tree


def test_dot_and_mermaid_escape_names() -> None:
    dot = render_dot(_graph())
    assert 'raw \\"quotes\\" <b>&</b> | pipe' in dot and 'odd \\"relation\\"' in dot
    assert dot.count(" -> ") == 9 and dot.rstrip().endswith("}")
    mermaid = render_mermaid(_graph())
    assert "raw #quot;quotes#quot; #lt;b#gt;#amp;#lt;/b#gt; #124; pipe" in mermaid
    assert '"' not in mermaid.split("-->|odd ")[1].split("|")[0]
    assert mermaid.count("-->|") == 9


def test_html_escapes_and_lays_out_a_cycle() -> None:
    page = render_html(_graph())
    assert TRICKY not in page and "raw &quot;quotes&quot; &lt;b&gt;&amp;&lt;/b&gt;" in page
    assert page.count("<rect") == 7 and page.count("marker-end=") == 9
    assert 'stroke-dasharray="4 3"' in page  # pipeline membership drawn quietly


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_a_pipeline_run_root(fmt: str) -> None:
    graph = _graph("both").model_copy(update={"root": "pipeline_run:p"})
    text = render(graph, fmt)
    assert text.strip()
    if fmt == "json":
        assert LineageGraph.model_validate(json.loads(text)) == graph
    if fmt == "tree":
        lines = text.splitlines()
        assert lines[0].startswith("pipeline run training 2026")
        assert lines[1] == "upstream:" and "downstream:" in lines
        assert any("[ran step] step run evaluate b" in line for line in lines)
