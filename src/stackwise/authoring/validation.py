"""Checks a pipeline when it is loaded, before anything runs. Each problem is one error that
names the step or parameter and says how to fix it."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stackwise.authoring.params import ParamSpec, check_supported
from stackwise.errors import PipelineValidationError, did_you_mean

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline, StepNode

# Step and pipeline names become Airflow task and DAG ids (at most 250 characters), KFP
# component names, MLflow run and experiment names, file names and keys of the state store
# (128 characters for a step), so they keep to the characters all of these accept.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
MAX_NAME_LENGTH = 128


def check_name(kind: str, name: object, where: str = "") -> None:
    """Raises PipelineValidationError unless `name` (of a "step" or "pipeline") is 1 to 128
    letters, digits, '_' or '-', starting with a letter or '_'."""
    prefix = f"{where}: " if where else ""
    if not isinstance(name, str):
        raise PipelineValidationError(
            f"{prefix}{kind} name {name!r} is not a string; give a name such as 'train_model'."
        )
    if len(name) > MAX_NAME_LENGTH:
        raise PipelineValidationError(
            f"{prefix}{kind} name {name[:24]!r}... is {len(name)} characters long; the limit is "
            f"{MAX_NAME_LENGTH}: give it a shorter name."
        )
    if not _NAME.fullmatch(name):
        raise PipelineValidationError(
            f"{prefix}{kind} name {name!r} is not valid; use letters, digits, '_' or '-' and "
            "start with a letter."
        )


def validate_pipeline(
    pipeline: Pipeline, nodes: Sequence[StepNode], params: Sequence[ParamSpec]
) -> None:
    check_name("pipeline", pipeline.name)
    where = f"pipeline {pipeline.name!r}"
    if not nodes:
        raise PipelineValidationError(f"{where} has no steps: call at least one @step in its body.")
    seen: set[str] = set()
    for node in nodes:
        check_name("step", node.name, where)
        if node.name in seen:
            raise PipelineValidationError(
                f"{where}: two steps are named {node.name!r}; give the second call its own name "
                f"with {node.name}.alias('{node.name}_2')(...)."
            )
        seen.add(node.name)
    param_names = [p.name for p in params]
    for spec in params:
        check_supported(spec, pipeline.name)
    by_name = {n.name: n for n in nodes}
    param_types = {p.name: p.annotation for p in params}
    for node in nodes:
        declared = {i.name: i for i in node.definition.inputs}
        for input_name in node.bindings:
            if input_name not in declared:
                raise PipelineValidationError(
                    f"{where}: step {node.name!r} has no input {input_name!r}."
                    f"{did_you_mean(input_name, list(declared))} Its inputs are: "
                    f"{', '.join(declared) or '(none)'}."
                )
        for inp in node.definition.inputs:
            if inp.name not in node.bindings and not inp.has_default:
                _check_binding(where, node, inp.name, _MISSING, by_name, param_names)
        for input_name, binding in node.bindings.items():
            _check_binding(where, node, input_name, binding, by_name, param_names)
            if binding.kind == "param":
                _check_param_type(where, node, input_name, binding.param or "", param_types)
    _check_acyclic(where, by_name)
    for node in nodes:
        for input_name, binding in node.bindings.items():
            if binding.kind == "output":
                _check_types(where, node, input_name, by_name[binding.step or ""], binding.output)


def _check_binding(
    where: str,
    node: StepNode,
    input_name: str,
    binding: Any,
    by_name: dict[str, StepNode],
    param_names: list[str],
) -> None:
    if binding.kind == "missing":
        raise PipelineValidationError(
            f"{where}: input {input_name!r} of step {node.name!r} is not produced by any upstream "
            f"step; pass an upstream step's output (e.g. {node.name}({input_name}=other_step())) "
            "or give the parameter a default."
        )
    if binding.kind == "param" and binding.param not in param_names:
        raise PipelineValidationError(
            f"{where}: step {node.name!r} input {input_name!r} uses unknown pipeline parameter "
            f"{binding.param!r}.{did_you_mean(binding.param, param_names)}"
        )
    if binding.kind == "output":
        producer = by_name.get(binding.step)
        if producer is None:
            raise PipelineValidationError(
                f"{where}: input {input_name!r} of step {node.name!r} reads from step "
                f"{binding.step!r}, which is not in the pipeline; no upstream step produces it."
                f"{did_you_mean(binding.step, list(by_name))}"
            )
        outputs = [o.name for o in producer.definition.outputs]
        if binding.output not in outputs:
            raise PipelineValidationError(
                f"{where}: input {input_name!r} of step {node.name!r} reads output "
                f"{binding.output!r} of step {producer.name!r}, which only produces "
                f"{outputs or 'nothing'}.{did_you_mean(binding.output, outputs)}"
            )


class _Missing:
    kind = "missing"


_MISSING = _Missing()


def _check_param_type(
    where: str, node: StepNode, input_name: str, param: str, param_types: dict[str, Any]
) -> None:
    spec = next(i for i in node.definition.inputs if i.name == input_name)
    if not compatible(param_types[param], spec.annotation):
        raise PipelineValidationError(
            f"{where}: step {node.name!r} input {input_name!r} expects {_name(spec.annotation)} "
            f"but pipeline parameter {param!r} is {_name(param_types[param])}; change the "
            "parameter's annotation or the step's."
        )


def _check_acyclic(where: str, by_name: dict[str, StepNode]) -> None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for up in by_name[name].upstream:
            if state.get(up) == 1:
                cycle = path[path.index(up) :] + [up] if up in path else [name, up]
                raise PipelineValidationError(
                    f"{where} has a cycle: {' -> '.join(reversed(cycle))}; remove one of these "
                    "edges so that data flows one way."
                )
            if state.get(up) is None:
                visit(up, path + [up])
        state[name] = 2

    for name in by_name:
        if state.get(name) is None:
            visit(name, [name])


def _check_types(
    where: str, node: StepNode, input_name: str, producer: StepNode, output: str | None
) -> None:
    produced = next(o.annotation for o in producer.definition.outputs if o.name == output)
    spec = next((i for i in node.definition.inputs if i.name == input_name), None)
    if spec is None:
        return
    if not compatible(produced, spec.annotation):
        raise PipelineValidationError(
            f"{where}: step {node.name!r} input {input_name!r} expects {_name(spec.annotation)} "
            f"but step {producer.name!r} output {output!r} is {_name(produced)}; change one of "
            "the two annotations or convert the value in a step between them."
        )


def is_union(annotation: Any) -> bool:
    """`X | Y` (types.UnionType, PEP 604) or `typing.Union[X, Y]` / `Optional[X]`."""
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def compatible(produced: Any, expected: Any) -> bool:
    """Whether a value annotated `produced` may be passed where `expected` is declared.
    Unions either way: every member of a produced union must fit, and a value fits an
    expected union when it fits one member (so `X | None` and `Optional[X]` are one type).
    Lenient where Python's typing cannot decide (Any, unknown generics, TypeVars)."""
    if produced is Any or expected is Any or produced == expected:
        return True
    if is_union(produced):
        return all(compatible(arg, expected) for arg in typing.get_args(produced))
    if is_union(expected):
        return any(compatible(produced, arg) for arg in typing.get_args(expected))
    p_origin, e_origin = typing.get_origin(produced), typing.get_origin(expected)
    p_cls, e_cls = p_origin or produced, e_origin or expected
    if not isinstance(p_cls, type) or not isinstance(e_cls, type):
        return True
    if p_cls is int and e_cls is float:
        return True
    try:
        if not issubclass(p_cls, e_cls):
            return False
    except TypeError:
        return True
    p_args, e_args = typing.get_args(produced), typing.get_args(expected)
    if p_args and e_args and len(p_args) == len(e_args):
        return all(compatible(a, b) for a, b in zip(p_args, e_args, strict=True))
    return True


def _name(ann: Any) -> str:
    if isinstance(ann, type) and typing.get_origin(ann) is None:
        return ann.__name__
    return str(ann).replace("typing.", "")
