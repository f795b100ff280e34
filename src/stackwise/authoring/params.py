"""Typed pipeline parameters: declared by the `@pipeline` function's signature, overridable
at run time (`-p key=value`), checked before anything runs."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from stackwise.errors import ParameterError, PipelineValidationError, did_you_mean

_SCALARS: tuple[type, ...] = (bool, int, float, str)
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    name: str
    annotation: Any
    default: Any = None
    required: bool = False

    @property
    def type_name(self) -> str:
        return _type_name(self.annotation)


@dataclasses.dataclass(frozen=True)
class ParamRef:
    """Stands for a pipeline parameter while the pipeline body is being traced."""

    name: str

    def __bool__(self) -> bool:
        raise PipelineValidationError(
            f"pipeline parameter {self.name!r} was used in a condition while the pipeline was "
            "being built; branch inside a step instead (the body only wires steps together)."
        )

    def __eq__(self, other: object) -> bool:
        raise PipelineValidationError(
            f"pipeline parameter {self.name!r} was compared while the pipeline was being built; "
            "its value only exists at run time: pass it to a step and compare there."
        )

    __ne__ = __eq__
    __lt__ = __le__ = __gt__ = __ge__ = __eq__

    def __hash__(self) -> int:
        return hash(self.name)


def check_supported(spec: ParamSpec, pipeline: str) -> None:
    if not _supported(spec.annotation):
        raise PipelineValidationError(
            f"pipeline {pipeline!r}: parameter {spec.name!r} has type {spec.type_name}, which "
            "cannot be given on the command line; use int, float, str, bool, list, dict, "
            "Literal[...], or Optional / `X | None` of those."
        )
    if not spec.required:
        if isinstance(spec.default, str) and _accepts_non_str(spec.annotation):
            raise PipelineValidationError(
                f"pipeline {pipeline!r}: the default of parameter {spec.name!r} does not match its "
                f"type: parameter {spec.name!r} expects {spec.type_name}, got {spec.default!r} (a "
                "string); write the default as a value of that type."
            )
        try:
            coerce(spec, spec.default)
        except ParameterError as exc:
            raise PipelineValidationError(
                f"pipeline {pipeline!r}: the default of parameter {spec.name!r} does not match "
                f"its type: {exc.message}"
            ) from exc


def resolve(specs: Mapping[str, ParamSpec], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with overrides, every value coerced to its declared type."""
    unknown = [k for k in overrides if k not in specs]
    if unknown:
        name = unknown[0]
        known = ", ".join(specs) or "(none)"
        raise ParameterError(
            f"unknown parameter {name!r}.{did_you_mean(name, list(specs))} "
            f"This pipeline's parameters are: {known}."
        )
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in overrides:
            values[name] = coerce(spec, overrides[name])
        elif spec.required:
            raise ParameterError(
                f"parameter {name!r} ({spec.type_name}) has no default: pass -p {name}=VALUE."
            )
        else:
            values[name] = coerce(spec, spec.default)  # e.g. `lr: float = 1` gives 1.0
    return values


def parse_assignments(items: list[str]) -> dict[str, str]:
    """`["a=1", "b=x"]` from `-p` options into a dict of raw strings. A repeated key is a
    ParameterError: keeping either value silently would run with one the user did not mean."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"-p {item!r} is not KEY=VALUE: write it as -p name=value.")
        if key.strip() in out:
            name = key.strip()
            raise ParameterError(
                f"parameter {name!r} is given twice (-p {name}={out[name]} and -p {item}); "
                "pass it once."
            )
        out[key.strip()] = value
    return out


def coerce(spec: ParamSpec, value: Any) -> Any:
    try:
        return _coerce(spec.annotation, value)
    except (ValueError, TypeError) as exc:
        raise ParameterError(
            f"parameter {spec.name!r} expects {spec.type_name}, got {value!r}"
            + (f" ({exc})" if str(exc) else "")
            + "."
        ) from None


def _coerce(ann: Any, value: Any) -> Any:
    if ann is Any or ann is None:
        return value
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(ann)
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value)
            except (ValueError, TypeError):
                continue
        raise ValueError("")
    if origin is Literal:
        choices = typing.get_args(ann)
        for choice in choices:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise ValueError("allowed: " + ", ".join(repr(c) for c in choices))
    if ann is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError("use true or false")
    if ann is int:
        if isinstance(value, bool):
            raise TypeError("")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return int(value.strip())
        raise TypeError("")
    if ann is float:
        if isinstance(value, bool):
            raise TypeError("")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
        raise TypeError("")
    if ann is str:
        if isinstance(value, str):
            return value
        raise TypeError("")
    container = origin or ann
    if container in (list, dict):
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, container):
            raise TypeError("")
        args = typing.get_args(ann)
        if container is list and args:
            return [_coerce(args[0], v) for v in value]
        if container is dict and len(args) == 2:
            return {_coerce(args[0], k): _coerce(args[1], v) for k, v in value.items()}
        return value
    raise TypeError(f"unsupported type {_type_name(ann)}")


def _accepts_non_str(ann: Any) -> bool:
    """True when a str default would only fit by parsing (the type is not str-like)."""
    if ann is Any or ann is str:
        return False
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        return all(_accepts_non_str(a) for a in typing.get_args(ann) if a is not type(None))
    if origin is Literal:
        return not any(isinstance(a, str) for a in typing.get_args(ann))
    return True


def _supported(ann: Any) -> bool:
    if ann is Any or ann in _SCALARS:
        return True
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        return all(a is type(None) or _supported(a) for a in typing.get_args(ann))
    if origin is Literal:
        return all(isinstance(a, _SCALARS) for a in typing.get_args(ann))
    return (origin or ann) in (list, dict)


def _type_name(ann: Any) -> str:
    if isinstance(ann, type) and typing.get_origin(ann) is None:
        return ann.__name__
    return str(ann).replace("typing.", "")
