"""Pipeline parameters given on the command line (strings) are coerced to their declared type;
a value that does not fit is a ParameterError naming the parameter, the type and the value."""

import typing
from typing import Any, Literal

import pytest

from stackwise.authoring.params import ParamSpec, coerce, parse_assignments, resolve
from stackwise.errors import ParameterError


def _coerce(annotation: Any, value: Any) -> Any:
    return coerce(ParamSpec("p", annotation), value)


@pytest.mark.parametrize(
    ("annotation", "raw", "expected"),
    [
        (int, "3", 3),
        (int, " 42 ", 42),
        (int, "-7", -7),
        (int, "1_000", 1000),
        (float, "3", 3.0),
        (float, "2.5", 2.5),
        (float, "1e-3", 0.001),
        (float, "-0.5", -0.5),
        (str, "hello world", "hello world"),
        (str, "", ""),
        (str, "3", "3"),
        (list, "[1, 2, 3]", [1, 2, 3]),
        (list[int], "[4, 5]", [4, 5]),
        (list, "[]", []),
        (dict, '{"a": 1, "b": [true, null]}', {"a": 1, "b": [True, None]}),
        (dict[str, float], '{"lr": 0.1}', {"lr": 0.1}),
        (int | None, "none", None),
        (int | None, "null", None),
        (int | None, "None", None),
        (int | None, "5", 5),
        (typing.Optional[float], "0.5", 0.5),  # noqa: UP045
        (typing.Optional[str], "x", "x"),  # noqa: UP045
        (Literal["adam", "sgd"], "sgd", "sgd"),
        (Literal[1, 2, 3], "2", 2),
        (Literal[0.1, 0.01], "0.01", 0.01),
        (Literal["a", "b"] | None, "none", None),
        (int | str, "5", 5),
        (int | str, "five", "five"),
        (Any, "as-is", "as-is"),
    ],
)
def test_coerce_from_command_line_strings(annotation: Any, raw: str, expected: Any) -> None:
    value = _coerce(annotation, raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("raw", ["true", "True", "TRUE", "1", "yes", "Yes", "y", "on"])
def test_bool_true_spellings(raw: str) -> None:
    assert _coerce(bool, raw) is True


@pytest.mark.parametrize("raw", ["false", "False", "0", "no", "NO", "n", "off"])
def test_bool_false_spellings(raw: str) -> None:
    assert _coerce(bool, raw) is False


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        (int, 3, 3),
        (float, 2, 2.0),
        (bool, True, True),
        (str, "x", "x"),
        (list, [1], [1]),
        (dict, {"a": 1}, {"a": 1}),
        (int | None, None, None),
        (Literal[1, 2], 2, 2),
    ],
)
def test_python_values_of_the_right_type_pass(annotation: Any, value: Any, message: Any) -> None:
    result = _coerce(annotation, value)
    assert result == message
    assert type(result) is type(message)


@pytest.mark.parametrize(
    ("annotation", "raw", "detail"),
    [
        (int, "abc", "expects int, got 'abc' (invalid literal for int()"),
        (int, "3.5", "expects int, got '3.5'"),
        (int, "", "expects int, got ''"),
        (int, True, "expects int, got True."),
        (int, 2.0, "expects int, got 2.0."),
        (int, None, "expects int, got None."),
        (float, "fast", "expects float, got 'fast' (could not convert string to float"),
        (float, False, "expects float, got False."),
        (bool, "maybe", "expects bool, got 'maybe' (use true or false)."),
        (bool, "2", "expects bool, got '2'"),
        (bool, 1, "expects bool, got 1"),
        (str, 5, "expects str, got 5."),
        (list, '{"a": 1}', "expects list, got '{\"a\": 1}'."),
        (list, "[1, 2", "expects list, got '[1, 2' ("),
        (list, "not json", "expects list, got 'not json' (Expecting value"),
        (dict, "[1]", "expects dict, got '[1]'."),
        (int | None, "x", "expects int | None, got 'x'."),
        (typing.Optional[int], "x", "expects Optional[int], got 'x'."),  # noqa: UP045
        (Literal["adam", "sgd"], "rmsprop", "got 'rmsprop' (allowed: 'adam', 'sgd')."),
        (Literal[1, 2], "3", "got '3' (allowed: 1, 2)."),
    ],
)
def test_bad_values_are_parameter_errors(annotation: Any, raw: Any, detail: str) -> None:
    with pytest.raises(ParameterError) as exc:
        coerce(ParamSpec("lr", annotation), raw)
    assert exc.value.message.startswith("parameter 'lr' ")
    assert detail in exc.value.message


def test_none_is_not_accepted_where_none_is_not_allowed() -> None:
    with pytest.raises(ParameterError):
        _coerce(int, "none")
    assert _coerce(str, "none") == "none"


def test_type_names_in_specs() -> None:
    assert ParamSpec("n", int).type_name == "int"
    assert ParamSpec("n", list[int]).type_name == "list[int]"
    assert ParamSpec("n", Literal["a"]).type_name == "Literal['a']"
    assert ParamSpec("n", int | None).type_name == "int | None"


def test_resolve_overlays_coerced_overrides_on_defaults() -> None:
    specs = {
        "epochs": ParamSpec("epochs", int, 10),
        "lr": ParamSpec("lr", float, 0.1),
        "opt": ParamSpec("opt", Literal["adam", "sgd"], "adam"),
        "layers": ParamSpec("layers", list[int], [64]),
        "seed": ParamSpec("seed", int, None, required=True),
    }
    values = resolve(specs, {"lr": "0.01", "layers": "[32, 16]", "seed": "7"})
    assert values == {"epochs": 10, "lr": 0.01, "opt": "adam", "layers": [32, 16], "seed": 7}


def test_resolve_with_python_values() -> None:
    specs = {"lr": ParamSpec("lr", float, 0.1), "flag": ParamSpec("flag", bool, False)}
    values = resolve(specs, {"lr": 1, "flag": True})
    assert values == {"lr": 1.0, "flag": True}
    assert type(values["lr"]) is float


def test_resolve_rejects_unknown_names_and_lists_the_known_ones() -> None:
    specs = {"epochs": ParamSpec("epochs", int, 10)}
    with pytest.raises(ParameterError) as exc:
        resolve(specs, {"epoch": "3"})
    assert exc.value.message == (
        "unknown parameter 'epoch'. Did you mean 'epochs'? This pipeline's parameters are: epochs."
    )


def test_resolve_for_a_pipeline_without_parameters() -> None:
    assert resolve({}, {}) == {}
    with pytest.raises(ParameterError, match=r"parameters are: \(none\)"):
        resolve({}, {"x": "1"})


def test_parse_assignments() -> None:
    assert parse_assignments([]) == {}
    assert parse_assignments(["a=1", " b =x", "url=http://h/?q=1", "empty="]) == {
        "a": "1",
        "b": "x",
        "url": "http://h/?q=1",
        "empty": "",
    }


def test_parse_assignments_refuses_a_repeated_key() -> None:  # issue 20: was "keeps the last"
    with pytest.raises(ParameterError, match="parameter 'a' is given twice"):
        parse_assignments(["a=1", "a=2"])


@pytest.mark.parametrize("item", ["novalue", "=3", " =3", ""])
def test_parse_assignments_rejects_items_without_a_key(item: str) -> None:
    with pytest.raises(ParameterError) as exc:
        parse_assignments(["ok=1", item])
    assert exc.value.message == f"-p {item!r} is not KEY=VALUE: write it as -p name=value."
