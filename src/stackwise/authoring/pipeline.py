"""`@pipeline`: trace a function body that calls steps into a validated DAG of `StepNode`s.

Tracing runs the body once with placeholders (`ParamRef`, `OutputRef`) and runs no step. The
resulting `Pipeline` is plain data that every orchestrator reads: nodes in definition order,
each input bound to an upstream output, a pipeline parameter or a constant.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from stackwise.authoring import params as params_mod
from stackwise.authoring.params import ParamRef, ParamSpec
from stackwise.authoring.step import StepDefinition
from stackwise.errors import PipelineValidationError

if TYPE_CHECKING:
    from stackwise.scheduling.schedule import Schedule

_builder: contextvars.ContextVar[_Builder | None] = contextvars.ContextVar(
    "stackwise_pipeline_builder", default=None
)


@dataclasses.dataclass(frozen=True)
class OutputRef:
    """Stands for one output of an upstream step while the pipeline body is traced."""

    step: str
    output: str

    def __iter__(self) -> Iterator[Any]:
        raise PipelineValidationError(
            f"output {self.step}.{self.output} was unpacked, but step {self.step!r} has a single "
            "output; return a typing.NamedTuple to give it several named outputs."
        )

    def __bool__(self) -> bool:
        raise PipelineValidationError(
            f"output {self.step}.{self.output} was used in a condition while the pipeline was "
            "built; branch inside a step instead."
        )

    def __eq__(self, other: object) -> bool:
        raise PipelineValidationError(
            f"output {self.step}.{self.output} was compared while the pipeline was built; its "
            "value only exists at run time: compare inside a step instead."
        )

    __ne__ = __eq__
    __lt__ = __le__ = __gt__ = __ge__ = __eq__

    def __hash__(self) -> int:
        return hash((self.step, self.output))


class StepOutputs:
    """The named outputs of a multi-output step: attribute access or tuple unpacking."""

    def __init__(self, refs: Sequence[OutputRef]) -> None:
        self._refs = tuple(refs)
        for ref in refs:
            setattr(self, ref.output, ref)

    def __iter__(self) -> Iterator[OutputRef]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __getitem__(self, index: int) -> OutputRef:
        return self._refs[index]

    def __bool__(self) -> bool:
        step = self._refs[0].step if self._refs else "?"
        raise PipelineValidationError(
            f"the outputs of step {step!r} were used in a condition while the pipeline was "
            "built; branch inside a step instead."
        )


@dataclasses.dataclass(frozen=True)
class Binding:
    """Where one step input comes from."""

    kind: Literal["output", "param", "const", "missing"]
    step: str | None = None
    output: str | None = None
    param: str | None = None
    value: Any = None

    @classmethod
    def ref(cls, dotted: str) -> Binding:
        """`Binding.ref("features.output")`: an upstream step's output, by name."""
        step, _, output = dotted.partition(".")
        return cls("output", step=step, output=output or "output")

    def describe(self) -> str:
        if self.kind == "output":
            return f"{self.step}.{self.output}"
        if self.kind == "param":
            return f"param:{self.param}"
        if self.kind == "const":
            return f"const:{self.value!r}"
        return "missing"


@dataclasses.dataclass(frozen=True)
class StepNode:
    name: str
    definition: StepDefinition
    bindings: Mapping[str, Binding]

    @functools.cached_property
    def upstream(self) -> tuple[str, ...]:
        """The steps this one reads from, each once, in binding order (computed once: the
        executor asks for it on every event)."""
        seen: dict[str, None] = {}
        for b in self.bindings.values():
            if b.kind == "output" and b.step is not None:
                seen[b.step] = None
        return tuple(seen)


class Pipeline:
    """A validated DAG of steps plus typed parameters. Construct it with `@pipeline`, or
    directly from nodes (`Pipeline(name, nodes, params)`) when generating pipelines.

    Immutable: every attribute is fixed at construction; `replace(schedule=..., ref=...)`
    returns a changed copy (so a `backfill --schedule` override never alters the pipeline a
    module defines)."""

    _frozen = False

    def __init__(
        self,
        name: str,
        nodes: Sequence[StepNode],
        params: Sequence[ParamSpec] = (),
        *,
        description: str = "",
        source_file: str | None = None,
        schedule: Schedule | None = None,
        ref: str | None = None,
    ) -> None:
        from stackwise.authoring.validation import validate_pipeline

        self.name = name
        self.description = description
        self.schedule = schedule
        self.source_file = source_file
        #: How a fresh process finds it again ('module:name' or 'file.py:name'); set by the
        #: loader.
        self.ref = ref
        node_list = list(nodes)
        self.params: Mapping[str, ParamSpec] = MappingProxyType({p.name: p for p in params})
        validate_pipeline(self, node_list, list(params))
        self.nodes: Mapping[str, StepNode] = MappingProxyType({n.name: n for n in node_list})
        self.order: tuple[str, ...] = _topological_order(self.nodes)
        self._version: str | None = None
        self._frozen = True

    def __setattr__(self, key: str, value: Any) -> None:
        if self._frozen and key != "_version":
            raise AttributeError(
                f"Pipeline is immutable; use pipeline.replace({key}=...) for a changed copy."
            )
        object.__setattr__(self, key, value)

    def replace(self, **changes: Any) -> Pipeline:
        """A copy with `schedule`, `ref` or `description` changed (steps and parameters stay)."""
        allowed = {"schedule", "ref", "description"}
        unknown = set(changes) - allowed
        if unknown:
            raise TypeError(f"Pipeline.replace() changes {sorted(allowed)}, not {sorted(unknown)}")
        copy = object.__new__(Pipeline)
        object.__setattr__(copy, "__dict__", {**self.__dict__, **changes})
        return copy

    @property
    def version(self) -> str:
        """Content hash of the code and wiring: changes when any step's code or edge changes."""
        if self._version is None:
            from stackwise.authoring.codehash import pipeline_version

            self._version = pipeline_version(self)
        return self._version

    def downstream(self, name: str) -> set[str]:
        out: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for node in self.nodes.values():
                if current in node.upstream and node.name not in out:
                    out.add(node.name)
                    frontier.append(node.name)
        return out

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return params_mod.resolve(self.params, overrides or {})

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} steps={list(self.order)}>"


class PipelineDefinition:
    """What `@pipeline` returns: traced into a `Pipeline` on first use, then memoized."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        description: str,
        schedule: Schedule | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.description = description
        self.schedule = schedule
        self._built: Pipeline | None = None

    def build(self) -> Pipeline:
        if self._built is None:
            self._built = _trace(self.fn, self.name, self.description, self.schedule)
        return self._built

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def pipeline(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str = "",
    schedule: Schedule | None = None,
) -> Any:
    """Compose steps by calling them inside the decorated function. Its parameters, with
    annotations and defaults, become the pipeline's run-time parameters; `schedule`
    (`stackwise.Schedule`) says which data intervals the scheduler and backfills run."""
    from stackwise.scheduling.schedule import Schedule

    if schedule is not None and not isinstance(schedule, Schedule):
        raise PipelineValidationError(
            f"schedule={schedule!r}: give stackwise.Schedule('@daily', start='2026-01-01')."
        )

    def wrap(f: Callable[..., Any]) -> PipelineDefinition:
        from stackwise.authoring.validation import check_name

        doc = description or (f.__doc__ or "").strip()
        check_name("pipeline", name or f.__name__)  # where it is written, not at first run
        return PipelineDefinition(f, name or f.__name__, doc, schedule)

    return wrap(fn) if fn is not None else wrap


def current_builder() -> _Builder | None:
    return _builder.get()


class _Builder:
    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.nodes: list[StepNode] = []

    def add_call(
        self, definition: StepDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        sig = definition.signature
        if definition.context_param is not None:
            sig = sig.replace(
                parameters=[
                    p for p in sig.parameters.values() if p.name != definition.context_param
                ]
            )
        try:
            bound = sig.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise PipelineValidationError(
                f"pipeline {self.pipeline_name!r}: step {definition.name!r} was called with "
                f"arguments that do not fit its signature ({exc}); check the call."
            ) from None
        bindings: dict[str, Binding] = {}
        for spec in definition.inputs:
            if spec.name in bound.arguments:
                bindings[spec.name] = _binding_for(
                    self.pipeline_name, definition.name, spec.name, bound.arguments[spec.name]
                )
            elif spec.has_default:
                bindings[spec.name] = Binding("const", value=spec.default)
            else:
                bindings[spec.name] = Binding("missing")
        self.nodes.append(StepNode(definition.name, definition, bindings))
        refs = [OutputRef(definition.name, o.name) for o in definition.outputs]
        if definition.multi_output:
            return StepOutputs(refs)
        return refs[0] if refs else None


def _binding_for(pipeline_name: str, step_name: str, input_name: str, value: Any) -> Binding:
    if isinstance(value, OutputRef):
        return Binding("output", step=value.step, output=value.output)
    if isinstance(value, ParamRef):
        return Binding("param", param=value.name)
    if isinstance(value, StepOutputs):
        raise PipelineValidationError(
            f"pipeline {pipeline_name!r}: step {step_name!r} input {input_name!r} was given all "
            "outputs of a multi-output step; pass one of them, e.g. split.train."
        )
    if _contains_placeholder(value):
        raise PipelineValidationError(
            f"pipeline {pipeline_name!r}: step {step_name!r} input {input_name!r} nests a step "
            "output or parameter inside a container; pass each one as its own input."
        )
    return Binding("const", value=value)


def _contains_placeholder(value: Any) -> bool:
    if isinstance(value, OutputRef | ParamRef | StepOutputs):
        return True
    if isinstance(value, list | tuple | set):
        return any(_contains_placeholder(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_placeholder(v) for v in value.values())
    return False


def _trace(
    fn: Callable[..., Any], name: str, description: str, schedule: Schedule | None
) -> Pipeline:
    hints = typing.get_type_hints(fn)
    specs: list[ParamSpec] = []
    for p in inspect.signature(fn).parameters.values():
        ann = hints.get(p.name, Any)
        required = p.default is inspect.Parameter.empty
        specs.append(ParamSpec(p.name, ann, None if required else p.default, required))
    builder = _Builder(name)
    token = _builder.set(builder)
    try:
        fn(**{s.name: ParamRef(s.name) for s in specs})
    finally:
        _builder.reset(token)
    source = inspect.getsourcefile(fn)
    return Pipeline(
        name, builder.nodes, specs, description=description, source_file=source, schedule=schedule
    )


def _topological_order(nodes: Mapping[str, StepNode]) -> tuple[str, ...]:
    """Kahn's algorithm, ties broken by definition order so the order is stable: steps that
    become ready together are queued in the order they were defined. O(steps + edges)."""
    from collections import deque

    upstream = {name: node.upstream for name, node in nodes.items()}
    downstream: dict[str, list[str]] = {name: [] for name in nodes}
    for name, ups in upstream.items():  # definition order, so each list is too
        for up in ups:
            if up in downstream:
                downstream[up].append(name)
    indegree = {name: len(ups) for name, ups in upstream.items()}
    order: list[str] = []
    ready = deque(n for n in nodes if indegree[n] == 0)
    while ready:
        current = ready.popleft()
        order.append(current)
        for name in downstream[current]:
            indegree[name] -= 1
            if indegree[name] == 0:
                ready.append(name)
    return tuple(order)
