"""PEP 604 unions (`X | None`, `int | str`) work wherever `typing.Optional`/`typing.Union` do:
pipeline parameters, step inputs, step outputs, `-p` values."""

from __future__ import annotations

import typing
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stackwise.authoring import pipeline, step
from stackwise.authoring.params import ParamSpec, coerce
from stackwise.authoring.validation import compatible
from stackwise.errors import PipelineValidationError


@step
def maybe_upper(x: str | None) -> str | None:
    return x.upper() if x else None


@step
def length(y: str | None) -> int:
    return len(y or "")


@step
def ids(v: list[int] | None) -> list[int] | None:
    return v


@step
def total(v: list[int] | None) -> int:
    return sum(v or [])


@step
def either(v: int | str) -> int | str:
    return v


@step
def only_int(v: int) -> int:
    return v


def test_optional_parameter_into_optional_input_and_output_into_optional_input() -> None:
    @pipeline
    def pep604(x: str | None = None) -> None:
        length(maybe_upper(x))

    built = pep604.build()
    assert built.order == ("maybe_upper", "length")
    assert built.resolve_params({"x": "none"}) == {"x": None}
    assert built.resolve_params({"x": "abc"}) == {"x": "abc"}


def test_optional_spelled_both_ways_meet() -> None:
    @step
    def typing_optional(y: typing.Optional[str]) -> typing.Optional[str]:  # noqa: UP045
        return y

    @pipeline
    def mixed(x: typing.Optional[str] = None) -> None:  # noqa: UP045
        length(typing_optional(maybe_upper(x)))

    assert mixed.build().order == ("maybe_upper", "typing_optional", "length")


def test_nested_and_non_optional_unions() -> None:
    @pipeline
    def nested(v: list[int] | None = None, w: int | str = 3) -> None:
        total(ids(v))
        either(w)

    built = nested.build()
    assert built.resolve_params({"v": "[1, 2]", "w": "abc"}) == {"v": [1, 2], "w": "abc"}
    assert built.resolve_params({"v": "null", "w": "7"}) == {"v": None, "w": 7}


def test_a_union_into_a_narrower_input_is_still_a_mismatch() -> None:
    @pipeline
    def unsafe() -> None:
        only_int(either(1))

    with pytest.raises(PipelineValidationError, match="expects int but step 'either'"):
        unsafe.build()


@pytest.mark.parametrize(
    "annotation", [int | None, list[int] | None, dict[str, float] | None, Literal["a", "b"] | None]
)
def test_coercion_of_optional_values(annotation: Any) -> None:
    spec = ParamSpec("p", annotation, None)
    assert coerce(spec, "none") is None and coerce(spec, None) is None


# -- the kind: `|` and typing.Union never disagree -------------------------------------------
_LEAVES = [int, float, bool, str, type(None), list[int], list[str], dict[str, int], list, Any]


def _pep604(types: list[Any]) -> Any:
    out = types[0]
    for t in types[1:]:
        out = out | t
    return out


_MEMBERS = st.lists(st.sampled_from(_LEAVES), min_size=1, max_size=3)


@given(_MEMBERS, _MEMBERS)
def test_pep604_and_typing_union_give_the_same_answers(left: list[Any], right: list[Any]) -> None:
    old_left, old_right = typing.Union[tuple(left)], typing.Union[tuple(right)]  # noqa: UP007
    new_left, new_right = _pep604(left), _pep604(right)
    expected = compatible(old_left, old_right)
    assert compatible(new_left, new_right) is expected
    assert compatible(old_left, new_right) is expected
    assert compatible(new_left, old_right) is expected
    assert compatible(new_left, new_left) and compatible(old_left, new_left)
