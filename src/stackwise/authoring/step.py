"""`@step`: a plain function plus the options every orchestrator and compute backend reads.

Options are plain data (`StepOptions`), resolved once here, so that backends translate them
and never re-interpret or merge them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from stackwise.errors import PipelineValidationError

F = TypeVar("F", bound=Callable[..., Any])

#: Name of the single output of a step that does not return a NamedTuple.
DEFAULT_OUTPUT = "output"


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one attempt of a step needs. `None` means "not declared": the backend decides.

    `cpu`, `memory` (Kubernetes quantity: `512Mi`, `4Gi`), `gpu` and `gpu_type` are per
    worker; `workers` > 1 runs the step as that many coordinated workers (data-parallel, each
    with its rank in `StepContext`), which only a distributed backend (`compute="ray"`) can do.
    """

    cpu: float | None = None
    memory: str | None = None
    gpu: int | None = None
    gpu_type: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        for name, kinds in (("cpu", (int, float)), ("gpu", (int,)), ("memory", (str,)),
                            ("gpu_type", (str,)), ("workers", (int,))):  # fmt: skip
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                expected = " or ".join(k.__name__ for k in kinds)
                raise PipelineValidationError(
                    f"Resources({name}={value!r}): expected {expected}"
                    " (e.g. Resources(cpu=2, memory='4Gi', gpu=1, gpu_type='nvidia-tesla-t4'))."
                )
        if self.cpu is not None and self.cpu <= 0:
            raise PipelineValidationError(f"Resources(cpu={self.cpu}) must be > 0.")
        if self.gpu is not None and self.gpu < 0:
            raise PipelineValidationError(f"Resources(gpu={self.gpu}) must be >= 0.")
        if self.workers is not None and self.workers < 1:
            raise PipelineValidationError(f"Resources(workers={self.workers}) must be >= 1.")
        if self.gpu_type is not None and not self.gpu:
            raise PipelineValidationError(
                f"Resources(gpu_type={self.gpu_type!r}) needs a gpu count: add gpu=1 or more."
            )


@dataclasses.dataclass(frozen=True)
class Retries:
    """Retry a failed attempt `count` more times, waiting backoff_s * factor**(n-1), capped."""

    count: int = 0
    backoff_s: float = 1.0
    factor: float = 2.0
    max_backoff_s: float = 300.0

    def __post_init__(self) -> None:
        if self.count < 0 or self.backoff_s < 0 or self.factor < 1:
            raise PipelineValidationError(
                f"{self} is invalid: count and backoff_s must be >= 0 and factor >= 1."
            )

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (2 is the first retry)."""
        if attempt <= 1:
            return 0.0
        return float(min(self.max_backoff_s, self.backoff_s * self.factor ** (attempt - 2)))


@dataclasses.dataclass(frozen=True)
class StepOptions:
    resources: Resources = Resources()
    retries: Retries = Retries()
    timeout_s: float | None = None
    cache: bool = True
    compute: str | None = None
    image: str | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain data (what cache keys and step versions hash). Built once per
        (frozen) instance; each call returns fresh dicts, so callers may change them."""
        built: dict[str, Any] | None = self.__dict__.get("_as_dict")
        if built is None:
            resources = dataclasses.asdict(self.resources)
            if resources["workers"] is None:  # undeclared: cache keys, versions as before
                del resources["workers"]
            built = {
                "resources": resources,
                "retries": dataclasses.asdict(self.retries),
                "timeout_s": self.timeout_s,
                "cache": self.cache,
                "compute": self.compute,
                "image": self.image,
                "tags": dict(self.tags),
            }
            object.__setattr__(self, "_as_dict", built)  # frozen: a cache, not a field
        return {
            **built,
            "resources": dict(built["resources"]),
            "retries": dict(built["retries"]),
            "tags": dict(built["tags"]),
        }


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    name: str
    annotation: Any


@dataclasses.dataclass(frozen=True)
class InputSpec:
    name: str
    annotation: Any
    has_default: bool
    default: Any = None


class StepDefinition:
    """A decorated function. Called inside a `@pipeline` body it records a node; called
    anywhere else it simply runs the function, so steps stay unit-testable."""

    def __init__(self, fn: Callable[..., Any], name: str, options: StepOptions) -> None:
        self.fn = fn
        self.name = name
        self.options = options
        functools.update_wrapper(self, fn)
        hints = _type_hints(fn)
        sig = inspect.signature(fn)
        self.context_param: str | None = None
        inputs: list[InputSpec] = []
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise PipelineValidationError(
                    f"step {name!r}: *args/**kwargs are not supported; declare each input "
                    "as a named parameter."
                )
            ann = hints.get(p.name, Any)
            if _is_context_annotation(ann):
                self.context_param = p.name
                continue
            has_default = p.default is not inspect.Parameter.empty
            inputs.append(InputSpec(p.name, ann, has_default, p.default if has_default else None))
        self.inputs: tuple[InputSpec, ...] = tuple(inputs)
        self.outputs: tuple[OutputSpec, ...] = _output_specs(hints.get("return", Any))
        self.multi_output = _is_namedtuple(hints.get("return"))
        self.signature = sig

    def alias(self, name: str) -> StepDefinition:
        """The same step under another name, to call it twice in one pipeline (the function's
        signature is analysed once, not again per alias: a 10,000-step pipeline of aliases)."""
        import copy

        twin = copy.copy(self)
        twin.name = name
        return twin

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from stackwise.authoring.pipeline import current_builder

        builder = current_builder()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add_call(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name}>"


@overload
def step(fn: F, /) -> StepDefinition: ...


@overload
def step(
    *,
    name: str | None = None,
    resources: Resources | None = None,
    retries: int | Retries = 0,
    timeout: float | dt.timedelta | None = None,
    cache: bool = True,
    compute: str | None = None,
    image: str | None = None,
    tags: Mapping[str, str] | None = None,
    workers: int | None = None,
) -> Callable[[F], StepDefinition]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    resources: Resources | None = None,
    retries: int | Retries = 0,
    timeout: float | dt.timedelta | None = None,
    cache: bool = True,
    compute: str | None = None,
    image: str | None = None,
    tags: Mapping[str, str] | None = None,
    workers: int | None = None,
) -> StepDefinition | Callable[[F], StepDefinition]:
    """Turn a function into a pipeline step.

    Inputs and outputs are typed by annotations. Return a `typing.NamedTuple` to give a step
    several named outputs. A parameter annotated `StepContext` receives the run context.
    `workers=N` is short for `resources=Resources(..., workers=N)` (data-parallel workers).
    """
    if isinstance(retries, bool) or not isinstance(retries, int | Retries):
        raise PipelineValidationError(f"retries={retries!r}: give an int or Retries(...).")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float | dt.timedelta)
    ):
        raise PipelineValidationError(
            f"timeout={timeout!r}: give seconds as a number (timeout=600) or a datetime.timedelta."
        )
    timeout_s = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
    if timeout_s is not None and timeout_s <= 0:
        raise PipelineValidationError(f"timeout={timeout!r} must be a positive number of seconds.")
    if resources is not None and not isinstance(resources, Resources):
        raise PipelineValidationError(
            f"resources={resources!r}: give stackwise.Resources(cpu=..., memory=..., gpu=...)."
        )
    if not isinstance(cache, bool):
        raise PipelineValidationError(f"cache={cache!r}: give True or False.")
    _check_tags(tags)
    resources = _with_workers(resources or Resources(), workers)
    options = StepOptions(
        resources=resources,
        retries=retries if isinstance(retries, Retries) else Retries(count=retries),
        timeout_s=float(timeout_s) if timeout_s is not None else None,
        cache=cache,
        compute=compute,
        image=image,
        tags=dict(tags or {}),
    )

    def wrap(f: Callable[..., Any]) -> StepDefinition:
        if not callable(f):
            raise PipelineValidationError(f"@step must decorate a function, got {f!r}.")
        return StepDefinition(f, name or f.__name__, options)

    return wrap(fn) if fn is not None else wrap


def _with_workers(resources: Resources, workers: int | None) -> Resources:
    """`@step(workers=N)` folded into the one `Resources` (refused when both disagree)."""
    if workers is None:
        return resources
    if resources.workers is not None and resources.workers != workers:
        raise PipelineValidationError(
            f"workers={workers} and Resources(workers={resources.workers}) disagree; give the "
            "number of workers once."
        )
    return dataclasses.replace(resources, workers=workers)  # validated by Resources itself


def _check_tags(tags: Mapping[str, str] | None) -> None:
    """Step tags land on the step's MLflow run: keys MLflow would refuse fail here."""
    from stackwise.authoring.context import mlflow_key_problem

    if tags is None:
        return
    if not isinstance(tags, Mapping):
        raise PipelineValidationError(f"tags={tags!r}: give a dict of names to values.")
    for key, value in tags.items():
        problem = mlflow_key_problem(key)
        if problem is not None:
            raise PipelineValidationError(
                f"tags: {key!r} cannot be an MLflow tag name ({problem}); rename it."
            )
        if not isinstance(value, str | int | float | bool):
            raise PipelineValidationError(
                f"tags[{key!r}]={value!r}: tag values are text; give a string."
            )


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception as exc:  # unresolvable forward reference
        raise PipelineValidationError(
            f"step {getattr(fn, '__name__', fn)!r}: cannot resolve its type annotations ({exc}); "
            "import every type it names at module level."
        ) from exc


def _is_context_annotation(ann: Any) -> bool:
    from stackwise.authoring.context import StepContext

    return ann is StepContext


def _is_namedtuple(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, tuple) and hasattr(ann, "_fields")


def _output_specs(ann: Any) -> tuple[OutputSpec, ...]:
    if ann is type(None) or ann is None:
        return ()
    if _is_namedtuple(ann):
        hints = typing.get_type_hints(ann)
        return tuple(OutputSpec(f, hints.get(f, Any)) for f in ann._fields)
    return (OutputSpec(DEFAULT_OUTPUT, ann),)
