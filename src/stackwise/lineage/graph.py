"""The lineage graph: nodes (aliases, model versions, step and pipeline runs, datasets, raw
sources, other artifacts) and edges that always point the way data flows (raw data -> step
-> feature set -> training -> model version -> alias). Upstream walks edges backwards from the
root, downstream forwards; renderers only read the finished graph.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from stackwise.lineage.index import MODEL_SUFFIXES, RunIndex, RunSnapshot
from stackwise.lineage.refs import LineageRef
from stackwise.tracking import tags as T

NodeKind = Literal[
    "alias", "model_version", "pipeline_run", "run", "dataset", "raw_data", "artifact"
]
Direction = Literal["upstream", "downstream", "both"]


class LineageNode(BaseModel):
    id: str
    kind: NodeKind
    label: str
    attrs: dict[str, str] = Field(default_factory=dict)


class LineageEdge(BaseModel):
    source: str
    target: str
    relation: str


class LineageGraph(BaseModel):
    ref: str
    direction: Direction
    root: str
    nodes: list[LineageNode] = Field(default_factory=list)
    edges: list[LineageEdge] = Field(default_factory=list)

    def node(self, node_id: str) -> LineageNode:
        return next(n for n in self.nodes if n.id == node_id)

    def of_kind(self, kind: NodeKind) -> list[LineageNode]:
        return [n for n in self.nodes if n.kind == kind]

    def predecessors(self, node_id: str) -> list[LineageEdge]:
        return [e for e in self.edges if e.target == node_id]

    def successors(self, node_id: str) -> list[LineageEdge]:
        return [e for e in self.edges if e.source == node_id]


def _iso(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds") if ms else ""


class _Builder:
    def __init__(self, index: RunIndex) -> None:
        self.index = index
        self.nodes: dict[str, LineageNode] = {}
        self.edges: dict[tuple[str, str, str], LineageEdge] = {}
        self._up: set[str] = set()
        self._down: set[str] = set()

    def add(self, node_id: str, kind: NodeKind, label: str, **attrs: str) -> str:
        if node_id not in self.nodes:
            clean = {k: v for k, v in attrs.items() if v}
            self.nodes[node_id] = LineageNode(id=node_id, kind=kind, label=label, attrs=clean)
        return node_id

    def link(self, source: str, target: str, relation: str) -> None:
        self.edges.setdefault(
            (source, target, relation), LineageEdge(source=source, target=target, relation=relation)
        )

    # -- nodes for MLflow entities ------------------------------------------------------------
    def run_node(self, run: RunSnapshot) -> str:
        t = run.tags
        node = self.add(
            f"run:{run.run_id}",
            "run",
            f"{run.step or run.name} {run.run_id[:8]}",
            run_id=run.run_id,
            step=run.step or "",
            status=run.status,
            started=_iso(run.start_ms),
            cached_from=run.cached_from or "",
            stackwise_run_id=t.get(T.RUN_ID, ""),
        )
        parent = self.index.get(run.parent_id) if run.parent_id else None
        if parent is not None:
            self.link(self.pipeline_node(parent), node, "ran step")
        return node

    def pipeline_node(self, run: RunSnapshot) -> str:
        t = run.tags
        label = f"{t.get('stackwise.pipeline', run.name)} {t.get('stackwise.run_id', '')}"
        return self.add(
            f"pipeline_run:{run.run_id}",
            "pipeline_run",
            label.strip(),
            mlflow_run_id=run.run_id,
            orchestrator=t.get(T.ORCHESTRATOR, ""),
            compute=t.get(T.COMPUTE, ""),
            code_version=t.get(T.PIPELINE_VERSION, ""),
            git_commit=t.get(T.MLFLOW_GIT_COMMIT, ""),
            git_dirty=t.get(T.GIT_DIRTY, ""),
            status=run.status,
            started=_iso(run.start_ms),
            logical_date=t.get(T.LOGICAL_DATE, ""),
        )

    def artifact_node(self, producer: RunSnapshot | None, name: str, uri: str) -> str:
        """An artifact one step wrote and another read. Keyed by its producer, not its digest:
        two steps can write identical content (a pass-through), and lineage must show both."""
        digest = uri.rstrip("/").split("/")[-2] if uri.count("/") >= 2 else ""
        is_data = uri.endswith((".parquet", ".npy"))
        owner = producer.run_id if producer is not None else "unknown"
        label = f"{producer.step if producer and producer.step else '?'}.{name} {digest[:12]}"
        kind: NodeKind = "dataset" if is_data else "artifact"
        role = "model" if uri.endswith(MODEL_SUFFIXES) else ("feature set" if is_data else "")
        return self.add(f"data:{owner}:{name}", kind, label, uri=uri, digest=digest[:16], role=role)

    def raw_node(self, name: str, digest: str, source: str) -> str:
        return self.add(
            f"raw:{digest}", "raw_data", f"{name} {digest}", name=name, digest=digest, source=source
        )

    def version_node(self, mv: Any) -> str:
        node = self.add(
            f"version:{mv.name}/{mv.version}",
            "model_version",
            f"{mv.name} v{mv.version}",
            name=mv.name,
            version=str(mv.version),
            run_id=mv.run_id or "",
            created=_iso(mv.creation_timestamp),
            aliases=", ".join(mv.aliases or []),
            training_run_id=mv.tags.get(T.TRAINING_RUN_ID, ""),
        )
        for alias in mv.aliases or []:
            self.link(node, self.alias_node(mv.name, alias, str(mv.version)), "held by")
        return node

    def alias_node(self, name: str, alias: str, version: str) -> str:
        return self.add(f"alias:{name}@{alias}", "alias", f"models:/{name}@{alias}", holder=version)

    # -- walks ------------------------------------------------------------------------------
    def upstream(self, run: RunSnapshot) -> str:
        node = self.run_node(run)
        if run.run_id in self._up:
            return node
        self._up.add(run.run_id)
        origin = self.index.source(run)
        if origin.run_id != run.run_id:  # where it was computed; its inputs are the same
            self.link(self.run_node(origin), node, "reused from cache")
        for ds in self.index.datasets_of(run):
            if ds.is_raw:
                self.link(self.raw_node(ds.name, ds.digest, ds.source), node, "read")
        for name, uri in sorted(self.index.inputs_of(run).items(), key=_input_order):
            producer = self.index.producer(run, uri)
            out = _output_name(producer, uri) if producer else name
            data = self.artifact_node(producer, out, uri)
            self.link(data, node, f"input {name}")
            if producer is not None:
                self.link(self.upstream(producer), data, "wrote")
        return node

    def downstream(self, run: RunSnapshot) -> str:
        node = self.run_node(run)
        if run.run_id in self._down:
            return node
        self._down.add(run.run_id)
        for name, (uri, _digest) in sorted(run.outputs.items()):
            readers = self.index.consumers(run, uri)
            if not readers:
                continue
            data = self.artifact_node(run, name, uri)
            self.link(node, data, "wrote")
            for reader in readers:
                self.link(
                    data, self.downstream(reader), f"input {_input_name(self.index, reader, uri)}"
                )
        for copy in self.index.cached_copies(run):
            self.link(node, self.downstream(copy), "reused from cache")
        for mv in self.index.versions_from(run.run_id):
            self.link(node, self.version_node(mv), "registered")
        return node

    def graph(self, ref: str, direction: Direction, root: str) -> LineageGraph:
        return LineageGraph(
            ref=ref,
            direction=direction,
            root=root,
            nodes=list(self.nodes.values()),
            edges=list(self.edges.values()),
        )


def _input_order(item: tuple[str, str]) -> tuple[int, str]:
    """Models first, then datasets, then other values: the tree then reads version -> training
    run -> feature sets -> raw data, the chain people look for."""
    name, uri = item
    return (
        0 if uri.endswith(MODEL_SUFFIXES) else 1 if uri.endswith((".parquet", ".npy")) else 2,
        name,
    )


def _output_name(producer: RunSnapshot, uri: str) -> str:
    return next((n for n, (u, _) in producer.outputs.items() if u == uri), "output")


def _input_name(index: RunIndex, reader: RunSnapshot, uri: str) -> str:
    return next((n for n, u in index.inputs_of(reader).items() if u == uri), "dataset")


def build_lineage(
    index: RunIndex, ref: LineageRef, direction: Direction | None = None
) -> LineageGraph:
    """The lineage of `ref`. Default direction: upstream for a model, downstream for a
    dataset, both for a run."""
    b = _Builder(index)
    if ref.kind == "dataset":
        return _from_dataset(b, ref, direction or "downstream")
    if ref.kind == "model":
        mv = ref.model_version
        direction = direction or "upstream"
        root = b.version_node(mv)
        if ref.alias:
            root = b.alias_node(mv.name, ref.alias, str(mv.version))
        run = index.get(mv.run_id) if mv.run_id else None
        if run is not None and direction != "downstream":
            b.link(b.upstream(run), b.version_node(mv), "registered")
        return b.graph(ref.text, direction, root)
    run = ref.run
    assert run is not None
    direction = direction or "both"
    steps = index.step_runs(run) if run.parent_id is None and index.children(run) else [run]
    root = b.pipeline_node(run) if steps != [run] else b.run_node(run)
    for step in steps:
        if direction in ("upstream", "both"):
            b.upstream(step)
        if direction in ("downstream", "both"):
            b.downstream(step)
    return b.graph(ref.text, direction, root)


def _from_dataset(b: _Builder, ref: LineageRef, direction: Direction) -> LineageGraph:
    readers = b.index.readers_of(ref.digest)
    found = [(r, d) for r in readers for d in r.datasets if d.digest == ref.digest]
    if not found:
        root = b.add(f"raw:{ref.digest}", "raw_data", ref.digest, digest=ref.digest)
        return b.graph(ref.text, direction, root)
    _, first = found[0]
    if first.is_raw:
        root = b.raw_node(first.name, first.digest, first.source)
    else:
        root = b.add(
            f"digest:{ref.digest}",
            "dataset",
            f"{first.name} {ref.digest}",
            digest=ref.digest,
            uri=first.source,
        )
    for reader, _ in found:
        if direction in ("downstream", "both"):
            b.link(root, b.downstream(reader), "read")
        if direction in ("upstream", "both") and not first.is_raw:
            producer = b.index.producer(reader, first.source)
            if producer is not None:
                b.link(b.upstream(producer), root, "wrote")
    return b.graph(ref.text, direction, root)


def upstream_of(index: RunIndex, run: RunSnapshot) -> LineageGraph:
    """Everything `run` was built from (used to tag a model version at registration)."""
    b = _Builder(index)
    return b.graph(run.run_id, "upstream", b.upstream(run))
