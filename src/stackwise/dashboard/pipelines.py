"""Pipelines: each one's DAG (steps, resources, compute backend, retries, cache), parameters
and schedule, loaded from its code as the CLI loads it (`stackwise.authoring.loader`); and
the same DAG coloured by a run's step statuses."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from stackwise.dashboard.graphs import KIND_COLORS, STATUS_COLORS, Edge, Node, render_svg
from stackwise.dashboard.stores import Stores

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.dashboard.runs import RunView


class StepSpecView(BaseModel):
    name: str
    upstream: list[str]
    resources: dict[str, Any]
    compute: str
    retries: int
    timeout_s: float | None
    cache: bool
    image: str | None
    tags: dict[str, str]


class ParamView(BaseModel):
    name: str
    type: str
    default: Any = None
    required: bool = False


class PipelineView(BaseModel):
    name: str
    ref: str | None
    runs: int = 0
    last_status: str | None = None
    last_run_at: str | None = None
    orchestrators: list[str] = Field(default_factory=list)
    description: str = ""
    schedule: str | None = None
    steps: list[StepSpecView] = Field(default_factory=list)
    edges: list[tuple[str, str, str]] = Field(default_factory=list)
    params: list[ParamView] = Field(default_factory=list)
    load_error: str | None = None


def list_pipelines(stores: Stores) -> list[PipelineView]:
    """Pipelines with runs in the state store, and those the stack file lists (`pipelines:`)."""
    from stackwise.dashboard.runs import iso
    from stackwise.orchestrators.local.queries import pipelines

    found = {
        p.name: PipelineView(name=p.name, ref=p.ref, runs=p.runs, last_status=p.last_status,
                             last_run_at=iso(p.last_run_at), orchestrators=list(p.orchestrators))
        for p in pipelines(stores.state)
    }  # fmt: skip
    for ref in stores.config.pipelines:
        if not any(v.ref == ref for v in found.values()):
            try:
                name = _load(stores, ref).name
            except Exception:  # shown on its own page; the list still works
                name = ref
            found.setdefault(name, PipelineView(name=name, ref=ref))
    return [found[k] for k in sorted(found)]


def _load(stores: Stores, ref: str) -> Pipeline:
    from stackwise.authoring.loader import load_pipeline

    target, sep, attr = ref.rpartition(":")
    if sep and (target.endswith(".py") or "/" in target) and not Path(target).is_absolute():
        ref = f"{stores.config.base_dir / target}:{attr}"
    return load_pipeline(ref)


def get_pipeline(stores: Stores, name: str) -> PipelineView:
    """The pipeline's DAG from its code; `load_error` says why when the code cannot be loaded
    (moved, or it needs what this process lacks). LookupError when no such pipeline."""
    view = next((p for p in list_pipelines(stores) if p.name == name), None)
    if view is None:
        raise LookupError(name)
    if view.ref is None:
        return view
    try:
        pipeline = _load(stores, view.ref)
    except Exception as exc:
        view.load_error = f"{type(exc).__name__}: {exc}"
        return view
    return describe(stores, pipeline, view)


def describe(stores: Stores, pipeline: Pipeline, view: PipelineView) -> PipelineView:
    import dataclasses

    view.description = pipeline.description
    view.schedule = pipeline.schedule.describe() if pipeline.schedule else None
    for name in pipeline.order:
        node = pipeline.nodes[name]
        opts = node.definition.options
        view.steps.append(StepSpecView(
            name=name, upstream=list(node.upstream),
            resources={k: v for k, v in dataclasses.asdict(opts.resources).items()
                       if v is not None},
            compute=opts.compute or stores.config.compute, retries=opts.retries.count,
            timeout_s=opts.timeout_s, cache=opts.cache, image=opts.image, tags=dict(opts.tags),
        ))  # fmt: skip
        for b in node.bindings.values():
            if b.kind == "output" and b.step is not None:
                view.edges.append((b.step, name, b.output or ""))
    view.params = [
        ParamView(name=p.name, type=p.type_name, default=None if p.required else p.default,
                  required=p.required)
        for p in pipeline.params.values()
    ]  # fmt: skip
    return view


def _resources(step: StepSpecView) -> str:
    r = step.resources
    parts = [f"cpu {r['cpu']}" if "cpu" in r else "", f"mem {r['memory']}" if "memory" in r else "",
             f"gpu {r['gpu']}" if "gpu" in r else ""]  # fmt: skip
    return ", ".join(p for p in parts if p)


def pipeline_svg(view: PipelineView) -> str:
    nodes = [
        Node(key=f"step-{i}", lines=tuple(x for x in (s.name, s.compute, _resources(s)) if x),
             fill=KIND_COLORS["step"], css="step")
        for i, s in enumerate(view.steps)
    ]  # fmt: skip
    keys = {s.name: f"step-{i}" for i, s in enumerate(view.steps)}
    edges = [Edge(keys[a], keys[b], out) for a, b, out in view.edges if a in keys and b in keys]
    return render_svg(nodes, edges)


def run_svg(stores: Stores, run: RunView) -> tuple[str, str | None]:
    """The run's steps as its pipeline's DAG, coloured by status, with duration, cached and
    retried markers; each node opens the step's MLflow run. When the pipeline's code cannot be
    loaded the steps are drawn without edges, and the reason is returned."""
    steps = run.steps or []
    edges: list[tuple[str, str, str]] = []
    problem = None
    if run.pipeline_ref:
        try:
            empty = PipelineView(name=run.pipeline, ref=run.pipeline_ref)
            edges = describe(stores, _load(stores, run.pipeline_ref), empty).edges
        except Exception as exc:
            problem = f"edges unknown: the pipeline's code did not load ({type(exc).__name__})"
    else:
        problem = "edges unknown: the run records no pipeline reference"
    nodes = []
    for i, s in enumerate(steps):
        marks = [
            f"{s.duration_s:.1f}s" if s.duration_s is not None else "",
            "cached" if s.cached else "",
            f"retried x{s.attempts - 1}" if s.retried else "",
        ]
        nodes.append(Node(
            key=f"step-{i}", lines=(s.name, s.status + "  " + " ".join(m for m in marks if m)),
            fill=STATUS_COLORS.get(s.status, "#ffffff"), css=f"step s-{s.status}",
            href=s.mlflow_url, tooltip=f"{s.name}: {s.status}",
        ))  # fmt: skip
    keys = {s.name: f"step-{i}" for i, s in enumerate(steps)}
    graph_edges = [Edge(keys[a], keys[b], o) for a, b, o in edges if a in keys and b in keys]
    return render_svg(nodes, graph_edges), problem
