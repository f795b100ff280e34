"""What a pipeline says about itself: how many steps of which kinds, GPU and multi-node needs,
whether steps declare images, whether it has a schedule. From these the advisor infers some
profile keys, so that a team without a profile still gets advice grounded in its own code.

Kinds come from a step's `kind` (or `stage`, `type`) tag first and its name second: tags are
what the author meant, names are a guess, and the report says which one was used.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel

from stackwise.advisor.profile import WORKFLOW_KINDS
from stackwise.authoring.pipeline import Pipeline
from stackwise.authoring.step import StepOptions

#: Word stems that name each workflow kind, tried in this order on the tag value, then on each
#: `_`/`-`-separated token of the step's name. "validate" is data validation (ETL);
#: model validation is spelled "evaluate".
KIND_STEMS: dict[str, tuple[str, ...]] = {
    "features": ("feature", "featurize", "embed"),
    "training": ("train", "fit", "tune", "finetune"),
    "evaluation": ("eval", "score", "metric", "benchmark"),
    "etl": ("etl", "ingest", "extract", "load", "clean", "validat", "prepar", "preprocess"),
    "serving": ("serv", "deploy", "predict", "infer", "batch_predict"),
}
KIND_TAGS = ("kind", "stage", "type")
#: Tags that declare a multi-node step (until `Resources` has a node count, read first). With
#: them, `Resources(gpu=...)` is per node, as a worker's resources are in Ray and Kubeflow.
NODE_TAGS = ("nodes", "num_nodes")
#: GPUs one machine holds at most (8 on the common cloud GPU shapes): a step asking for more
#: without declaring nodes cannot run on one machine, so it is spread over nodes of 8.
GPUS_PER_MACHINE = 8


class StepFacts(BaseModel):
    name: str
    kind: str | None
    kind_from: Literal["tag", "name"] | None
    nodes: int
    gpus_per_node: int
    image: str | None


class Inferred(BaseModel):
    value: Any
    why: str


class PipelineAnalysis(BaseModel):
    name: str
    ref: str | None
    step_count: int
    steps: list[StepFacts]
    kinds: dict[str, int]
    gpu_steps: list[str]
    largest_step: str | None
    nodes: int
    gpus_per_node: int
    images: int
    schedule: str | None
    inferred: dict[str, Inferred]


def analyse_pipeline(pipeline: Pipeline) -> PipelineAnalysis:
    steps = [_step_facts(name, pipeline.nodes[name].definition.options) for name in pipeline.order]
    kinds: dict[str, int] = {}
    for s in steps:
        kinds[s.kind or "other"] = kinds.get(s.kind or "other", 0) + 1
    # Read defensively: `schedule` arrives on `@pipeline` in another change; before it, None.
    schedule = getattr(pipeline, "schedule", None)
    # The largest job decides: most GPUs in total first, then most nodes (a CPU-only multi-node
    # step and a one-GPU step elsewhere are not one multi-node GPU job).
    largest = max(steps, key=lambda s: (s.nodes * s.gpus_per_node, s.nodes), default=None)
    images = sum(1 for s in steps if s.image)
    analysis = PipelineAnalysis(
        name=pipeline.name,
        ref=pipeline.ref,
        step_count=len(steps),
        steps=steps,
        kinds=kinds,
        gpu_steps=[s.name for s in steps if s.gpus_per_node],
        largest_step=largest.name if largest else None,
        nodes=largest.nodes if largest else 1,
        gpus_per_node=largest.gpus_per_node if largest else 0,
        images=images,
        schedule=_describe_schedule(schedule),
        inferred={},
    )
    analysis.inferred = _infer(analysis)
    return analysis


def _infer(a: PipelineAnalysis) -> dict[str, Inferred]:
    """Profile keys this pipeline answers; the profile still wins over each of them."""
    mix = [k for k in WORKFLOW_KINDS if k in a.kinds]
    by_kind = ", ".join(f"{k} x{n}" for k, n in a.kinds.items())
    heavy = (
        f"largest step {a.largest_step!r}; GPU steps: {', '.join(a.gpu_steps) or 'none'}"
        if a.gpu_steps or a.nodes > 1
        else "no step declares GPUs or several nodes"
    )
    return {
        "workflow_mix": Inferred(value=mix, why=f"step kinds: {by_kind or 'none'}"),
        "backfill_historical_ranges": Inferred(
            value=a.schedule is not None,
            why=f"scheduled ({a.schedule}): past intervals can be backfilled"
            if a.schedule
            else "no schedule: runs are started on demand",
        ),
        "containerized_codebase": Inferred(
            value=a.images > 0, why=f"{a.images} of {a.step_count} steps declare an image"
        ),
        "distributed_training.nodes": Inferred(value=a.nodes, why=heavy),
        "distributed_training.gpus_per_node": Inferred(value=a.gpus_per_node, why=heavy),
    }


def _step_facts(name: str, options: StepOptions) -> StepFacts:
    kind, kind_from = _kind(name, options.tags)
    gpus = options.resources.gpu or 0
    nodes = _declared_nodes(options)
    if nodes is None:
        nodes = max(math.ceil(gpus / GPUS_PER_MACHINE), 1)
        per_node = math.ceil(gpus / nodes)
    else:
        per_node = gpus
    return StepFacts(
        name=name,
        kind=kind,
        kind_from=kind_from,
        nodes=nodes,
        gpus_per_node=per_node,
        image=options.image,
    )


def _kind(name: str, tags: Any) -> tuple[str | None, Literal["tag", "name"] | None]:
    for tag in KIND_TAGS:
        value = tags.get(tag)
        if value is not None:
            kind = _kind_of_word(str(value).lower())
            return (kind, "tag") if kind else (None, None)
    for token in name.lower().replace("-", "_").split("_"):
        kind = _kind_of_word(token)
        if kind:
            return kind, "name"
    return None, None


def _kind_of_word(word: str) -> str | None:
    for kind, stems in KIND_STEMS.items():
        if word == kind or any(word.startswith(stem) for stem in stems):
            return kind
    return None


def _declared_nodes(options: StepOptions) -> int | None:
    declared: Any = getattr(options.resources, "nodes", None)
    for tag in NODE_TAGS:
        if declared is None and tag in options.tags:
            declared = options.tags[tag]
    try:
        return max(int(declared), 1) if declared is not None else None
    except (TypeError, ValueError):  # a tag like nodes="many": not a declaration we can use
        return None


def _describe_schedule(schedule: Any) -> str | None:
    if schedule is None or schedule == "":
        return None
    describe = getattr(schedule, "describe", None)
    return str(describe()) if callable(describe) else str(schedule)
