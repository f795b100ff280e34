"""Every problem in a pipeline is one PipelineValidationError (or ParameterError) raised before
anything runs, naming the step or parameter and saying how to fix it."""

import datetime as dt
import re
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from stackwise.authoring import Binding, Pipeline, StepNode, pipeline, step
from stackwise.authoring.params import ParamSpec, parse_assignments
from stackwise.authoring.validation import compatible
from stackwise.errors import ParameterError, PipelineError, PipelineValidationError


class Split(NamedTuple):
    train: list[int]
    test: list[int]


@step
def a(x: int) -> int:
    return x


@step
def b(x: int) -> int:
    return x


@step
def c(x: int) -> int:
    return x


@step
def source() -> int:
    return 1


@step
def add(x: int, y: int) -> int:
    return x + y


@step
def name_it() -> str:
    return "n"


@step
def split_data() -> Split:
    return Split([1], [2])


def _build(fn: Callable[..., Any]) -> Pipeline:
    built: Pipeline = pipeline(fn).build()
    return built


def _cycle_path(message: str) -> list[str]:
    match = re.search(r"has a cycle: (.+?);", message)
    assert match, message
    return match.group(1).split(" -> ")


# -- cycles ---------------------------------------------------------------------------------
def test_two_step_cycle_names_the_path() -> None:
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline(
            "loop",
            nodes=[
                StepNode("a", a, {"x": Binding.ref("b.output")}),
                StepNode("b", b, {"x": Binding.ref("a")}),
            ],
        )
    message = exc.value.message
    assert message.startswith("pipeline 'loop' has a cycle:")
    assert _cycle_path(message) in (["a", "b", "a"], ["b", "a", "b"])
    assert "remove one of these edges" in message


def test_three_step_cycle_path_follows_the_data_flow() -> None:
    # data flows c -> a -> b -> c (a reads c, b reads a, c reads b); a source step and its
    # consumer outside the cycle must not appear in the path.
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline(
            "loop3",
            nodes=[
                StepNode("source", source, {}),
                StepNode("a", a, {"x": Binding.ref("c.output")}),
                StepNode("b", b, {"x": Binding.ref("a.output")}),
                StepNode("c", c, {"x": Binding.ref("b.output")}),
            ],
        )
    path = _cycle_path(exc.value.message)
    assert path[0] == path[-1]
    assert sorted(path[:-1]) == ["a", "b", "c"]
    flows = {("c", "a"), ("a", "b"), ("b", "c")}
    assert set(zip(path, path[1:], strict=False)) == flows


def test_self_loop_is_a_cycle() -> None:
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline("selfish", nodes=[StepNode("a", a, {"x": Binding.ref("a.output")})])
    assert _cycle_path(exc.value.message) == ["a", "a"]


# -- names ----------------------------------------------------------------------------------
def test_same_step_called_twice_suggests_alias() -> None:
    def twice() -> None:
        a(a(1))

    with pytest.raises(PipelineValidationError) as exc:
        _build(twice)
    message = exc.value.message
    assert "pipeline 'twice': two steps are named 'a'" in message
    assert "a.alias('a_2')(...)" in message


def test_two_nodes_with_one_name_in_low_level_api() -> None:
    with pytest.raises(PipelineValidationError, match="two steps are named 'a'.*alias"):
        Pipeline(
            "dup",
            nodes=[
                StepNode("a", a, {"x": Binding("const", value=1)}),
                StepNode("a", b, {"x": Binding("const", value=2)}),
            ],
        )


@pytest.mark.parametrize("bad", ["has space", "1starts_with_digit", "", "dots.not.allowed"])
def test_invalid_step_name(bad: str) -> None:
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline("names", nodes=[StepNode(bad, a, {"x": Binding("const", value=1)})])
    assert f"step name {bad!r} is not valid" in exc.value.message
    assert "use letters, digits" in exc.value.message


def test_pipeline_without_steps() -> None:
    def empty() -> None:
        return None

    with pytest.raises(PipelineValidationError, match="'empty' has no steps: call at least one"):
        _build(empty)


# -- inputs nobody produces -------------------------------------------------------------------
def test_missing_argument_names_step_and_input() -> None:
    def partial() -> None:
        add(source())

    with pytest.raises(PipelineValidationError) as exc:
        _build(partial)
    message = exc.value.message
    assert "input 'y' of step 'add' is not produced by any upstream step" in message
    assert "give the parameter a default" in message


def test_missing_binding_in_low_level_api() -> None:
    # A generated pipeline that forgets to bind a required input must fail validation, not
    # with a TypeError when the step is called at run time.
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline(
            "generated",
            nodes=[
                StepNode("source", source, {}),
                StepNode("add", add, {"x": Binding.ref("source.output")}),
            ],
        )
    assert "'y'" in exc.value.message and "'add'" in exc.value.message


def test_ref_to_a_step_that_does_not_exist() -> None:
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline(
            "typo",
            nodes=[
                StepNode("source", source, {}),
                StepNode("a", a, {"x": Binding.ref("sourc.output")}),
            ],
        )
    message = exc.value.message
    assert "input 'x' of step 'a' reads from step 'sourc', which is not in the pipeline" in message
    assert "Did you mean 'source'?" in message


def test_ref_to_an_output_that_does_not_exist() -> None:
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline(
            "typo",
            nodes=[
                StepNode("split_data", split_data, {}),
                StepNode("a", a, {"x": Binding.ref("split_data.tran")}),
            ],
        )
    message = exc.value.message
    assert "reads output 'tran' of step 'split_data', which only produces" in message
    assert "'train'" in message and "'test'" in message
    assert "Did you mean 'train'?" in message


def test_binding_to_an_unknown_pipeline_parameter() -> None:
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline(
            "params",
            nodes=[StepNode("a", a, {"x": Binding("param", param="sede")})],
            params=[ParamSpec("seed", int, 0)],
        )
    message = exc.value.message
    assert "step 'a' input 'x' uses unknown pipeline parameter 'sede'" in message
    assert "Did you mean 'seed'?" in message


def test_call_that_does_not_fit_the_signature() -> None:
    def too_many() -> None:
        a(1, 2)

    with pytest.raises(PipelineValidationError) as exc:
        _build(too_many)
    message = exc.value.message
    assert "step 'a' was called with arguments that do not fit its signature" in message
    assert "check the call" in message


def test_call_with_an_unknown_keyword() -> None:
    def unknown_kw() -> None:
        a(z=1)

    with pytest.raises(PipelineValidationError, match="step 'a' was called with arguments"):
        _build(unknown_kw)


# -- types ------------------------------------------------------------------------------------
def test_str_output_into_int_input_is_a_type_mismatch() -> None:
    def mismatch() -> None:
        a(name_it())

    with pytest.raises(PipelineValidationError) as exc:
        _build(mismatch)
    message = exc.value.message
    assert "step 'a' input 'x' expects int but step 'name_it' output 'output' is str" in message
    assert "change one of the two annotations" in message


def test_multi_output_field_type_is_checked() -> None:
    @step
    def takes_str(s: str) -> int:
        return len(s)

    def mismatch() -> None:
        takes_str(split_data().train)

    with pytest.raises(PipelineValidationError) as exc:
        _build(mismatch)
    message = exc.value.message
    assert "step 'takes_str' input 's' expects str" in message
    assert "step 'split_data' output 'train' is list[int]" in message


def test_int_output_into_float_input_is_allowed() -> None:
    @step
    def half(v: float) -> float:
        return v / 2

    def widen() -> None:
        half(source())

    assert _build(widen).order == ("source", "half")


def test_int_output_into_optional_input_is_allowed() -> None:
    @step
    def maybe(v: int | None) -> int:
        return v or 0

    @step
    def maybe_typing(v: typing.Optional[int]) -> int:  # noqa: UP045
        return v or 0

    def optional() -> None:
        value = source()
        maybe(value)
        maybe_typing(value)

    assert _build(optional).order == ("source", "maybe", "maybe_typing")


def test_optional_output_into_required_input_is_a_mismatch() -> None:
    @step
    def might_be_none() -> int | None:
        return None

    def unsafe() -> None:
        a(might_be_none())

    with pytest.raises(PipelineValidationError, match="step 'a' input 'x' expects int") as exc:
        _build(unsafe)
    assert "'might_be_none'" in exc.value.message


@pytest.mark.parametrize(
    ("produced", "expected", "ok"),
    [
        (int, int, True),
        (int, float, True),
        (bool, int, True),
        (float, int, False),
        (str, int, False),
        (int, str, False),
        (Any, int, True),
        (str, Any, True),
        (int, int | None, True),
        (int, typing.Optional[int], True),  # noqa: UP045
        (int | None, int, False),
        (typing.Optional[int], int, False),  # noqa: UP045
        (None.__class__, int | None, True),
        (typing.Union[int, float], float, True),  # noqa: UP007
        (int | str, int, False),
        (str, int | str, True),
        (list[int], list[int], True),
        (list[int], list, True),
        (list[int], list[str], False),
        (dict[str, int], dict[str, float], True),
        (dict[str, str], dict[str, int], False),
        (list[int], dict[str, int], False),
    ],
)
def test_type_compatibility(produced: Any, expected: Any, ok: bool) -> None:
    assert compatible(produced, expected) is ok


def test_parameter_type_must_match_the_step_input() -> None:
    # A str pipeline parameter wired into an int input fails at run time inside the step;
    # like an output of the wrong type it must be reported when the pipeline is built.
    def wrong_param(label: str = "x") -> None:
        a(label)

    with pytest.raises(PipelineValidationError) as exc:
        _build(wrong_param)
    assert "'label'" in exc.value.message and "'a'" in exc.value.message


# -- parameters --------------------------------------------------------------------------------
def _params_pipeline() -> Pipeline:
    def with_params(seed: int, rate: float = 0.5, mode: typing.Literal["a", "b"] = "a") -> None:
        a(seed)

    return _build(with_params)


def test_unknown_parameter() -> None:
    p = _params_pipeline()
    with pytest.raises(ParameterError) as exc:
        p.resolve_params({"seed": 1, "rat": 0.1})
    message = exc.value.message
    assert "unknown parameter 'rat'" in message
    assert "Did you mean 'rate'?" in message
    assert "This pipeline's parameters are: seed, rate, mode." in message


def test_unknown_parameter_from_the_command_line() -> None:
    p = _params_pipeline()
    with pytest.raises(ParameterError, match="unknown parameter 'sed'.*Did you mean 'seed'"):
        p.resolve_params(parse_assignments(["seed=1", "sed=2"]))


def test_parameter_of_the_wrong_type() -> None:
    p = _params_pipeline()
    with pytest.raises(ParameterError) as exc:
        p.resolve_params({"seed": "abc"})
    assert "parameter 'seed' expects int, got 'abc'" in exc.value.message


def test_parameter_of_the_wrong_type_from_the_command_line() -> None:
    p = _params_pipeline()
    with pytest.raises(ParameterError) as exc:
        p.resolve_params(parse_assignments(["seed=1", "mode=c"]))
    message = exc.value.message
    assert "parameter 'mode' expects Literal['a', 'b'], got 'c'" in message
    assert "allowed: 'a', 'b'" in message


def test_parameters_from_the_command_line_are_coerced() -> None:
    p = _params_pipeline()
    assert p.resolve_params(parse_assignments(["seed=3", "rate=1e-2", "mode=b"])) == {
        "seed": 3,
        "rate": 0.01,
        "mode": "b",
    }


def test_required_parameter_without_a_value() -> None:
    p = _params_pipeline()
    with pytest.raises(ParameterError) as exc:
        p.resolve_params({"rate": 0.1})
    assert exc.value.message == "parameter 'seed' (int) has no default: pass -p seed=VALUE."


def test_malformed_assignment() -> None:
    with pytest.raises(ParameterError, match="-p 'seed' is not KEY=VALUE"):
        parse_assignments(["seed"])


def _datetime_param(when: dt.datetime = dt.datetime(2024, 1, 1)) -> None:
    a(1)


def _set_param(when: set[int] | None = None) -> None:
    a(1)


def _tuple_param(when: tuple[int, int] = (1, 2)) -> None:
    a(1)


@pytest.mark.parametrize(
    ("body", "type_name"),
    [
        (_datetime_param, "datetime"),
        (_set_param, "set[int] | None"),
        (_tuple_param, "tuple[int, int]"),
    ],
)
def test_unsupported_parameter_annotation(body: Callable[..., None], type_name: str) -> None:
    with pytest.raises(PipelineValidationError) as exc:
        _build(body)
    message = exc.value.message
    assert f"pipeline {body.__name__!r}: parameter 'when' has type {type_name}," in message
    assert "cannot be given on the command line" in message
    assert "use int, float, str, bool, list, dict" in message


def test_unsupported_required_parameter_annotation() -> None:
    def unsupported(when: dt.date) -> None:
        a(1)

    with pytest.raises(PipelineValidationError) as exc:
        _build(unsupported)
    assert "pipeline 'unsupported': parameter 'when' has type date" in exc.value.message


def test_default_not_matching_its_type() -> None:
    def bad_default(n: int = "many") -> None:  # type: ignore[assignment]
        a(n)

    with pytest.raises(PipelineValidationError) as exc:
        _build(bad_default)
    message = exc.value.message
    assert "the default of parameter 'n' does not match its type" in message
    assert "expects int, got 'many'" in message


def test_none_default_for_a_non_optional_parameter() -> None:
    def none_default(n: int = None) -> None:  # type: ignore[assignment]
        a(n)

    with pytest.raises(PipelineValidationError, match="default of parameter 'n'"):
        _build(none_default)


def test_string_default_for_an_int_parameter() -> None:
    # "5" is a str, not an int: either the default is rejected, or the value the steps receive
    # is the declared type. Today resolve_params() hands the str "5" to an int input.
    def str_default(n: int = "5") -> None:  # type: ignore[assignment]
        a(n)

    with pytest.raises(PipelineValidationError, match="default of parameter 'n'"):
        _build(str_default)


def test_optional_parameter_accepts_none() -> None:
    def optional(limit: int | None = None) -> None:
        a(1)

    p = _build(optional)
    assert p.resolve_params() == {"limit": None}
    assert p.resolve_params({"limit": "none"}) == {"limit": None}
    assert p.resolve_params({"limit": "4"}) == {"limit": 4}


# -- placeholders in conditions ---------------------------------------------------------------
def test_parameter_in_an_if() -> None:
    def branchy(flag: bool = False) -> None:
        if flag:
            a(1)
        else:
            b(1)

    with pytest.raises(PipelineValidationError) as exc:
        _build(branchy)
    message = exc.value.message
    assert "pipeline parameter 'flag' was used in a condition" in message
    assert "branch inside a step instead" in message


def test_output_in_an_if() -> None:
    def branchy() -> None:
        value = source()
        if value:
            a(value)

    with pytest.raises(PipelineValidationError) as exc:
        _build(branchy)
    message = exc.value.message
    assert "output source.output was used in a condition" in message
    assert "branch inside a step instead" in message


def test_parameter_compared_in_an_if() -> None:
    # `if mode == "fast":` is the most common way to branch on a parameter. It must fail like
    # `if mode:`, not silently trace the else-branch (today ParamRef.__eq__ returns False).
    def branchy(mode: str = "fast") -> None:
        if mode == "fast":
            a(1)
        else:
            b(1)

    with pytest.raises(PipelineValidationError, match="'mode'"):
        _build(branchy)


def test_multi_output_in_an_if() -> None:
    def branchy() -> None:
        parts = split_data()
        if parts:
            a(1)

    with pytest.raises(PipelineValidationError, match="split_data"):
        _build(branchy)


def test_validation_errors_are_pipeline_errors() -> None:
    assert issubclass(PipelineValidationError, PipelineError)
    assert PipelineValidationError("x").exit_code == 2
    assert ParameterError("x").exit_code == 2
