"""`@step` options and their validation, steps called outside a pipeline, multi-output steps,
StepContext injection and `.alias()`."""

import dataclasses
import datetime as dt
from typing import Any, NamedTuple

import pytest

from stackwise.authoring import (
    Binding,
    Pipeline,
    Resources,
    Retries,
    StepContext,
    StepNode,
    StepOptions,
    pipeline,
    step,
)
from stackwise.authoring.pipeline import current_builder
from stackwise.errors import PipelineValidationError


class Split(NamedTuple):
    train: list[int]
    test: list[int]


def _add(x: int, y: int = 1) -> int:
    return x + y


# -- options ---------------------------------------------------------------------------------
def test_step_without_options_gets_defaults() -> None:
    s = step(_add)
    assert s.name == "_add"
    assert s.options == StepOptions()
    assert s.options.resources == Resources()
    assert s.options.retries == Retries(count=0)
    assert s.options.timeout_s is None
    assert s.options.cache is True
    assert s.options.compute is None
    assert s.options.image is None
    assert dict(s.options.tags) == {}
    assert [(i.name, i.annotation, i.has_default) for i in s.inputs] == [
        ("x", int, False),
        ("y", int, True),
    ]
    assert [(o.name, o.annotation) for o in s.outputs] == [("output", int)]
    assert s.multi_output is False


def test_step_options_are_recorded() -> None:
    s = step(
        name="renamed",
        resources=Resources(cpu=2, memory="4Gi", gpu=1, gpu_type="a100"),
        retries=3,
        timeout=90,
        cache=False,
        compute="subprocess",
        image="registry.example/train:1.2",
        tags={"team": "ml"},
    )(_add)
    assert s.name == "renamed"
    assert s.__name__ == "_add"  # functools.update_wrapper keeps the function's metadata
    opts = s.options
    assert opts.resources == Resources(cpu=2, memory="4Gi", gpu=1, gpu_type="a100")
    assert opts.retries == Retries(count=3)
    assert opts.timeout_s == 90.0
    assert isinstance(opts.timeout_s, float)
    assert opts.cache is False
    assert opts.compute == "subprocess"
    assert opts.image == "registry.example/train:1.2"
    assert dict(opts.tags) == {"team": "ml"}
    assert opts.to_dict() == {
        "resources": {"cpu": 2, "memory": "4Gi", "gpu": 1, "gpu_type": "a100"},
        "retries": {"count": 3, "backoff_s": 1.0, "factor": 2.0, "max_backoff_s": 300.0},
        "timeout_s": 90.0,
        "cache": False,
        "compute": "subprocess",
        "image": "registry.example/train:1.2",
        "tags": {"team": "ml"},
    }


def test_step_tags_are_copied() -> None:
    tags = {"team": "ml"}
    s = step(tags=tags)(_add)
    tags["team"] = "changed"
    assert dict(s.options.tags) == {"team": "ml"}


def test_retries_object_is_kept_as_given() -> None:
    policy = Retries(count=2, backoff_s=0.5, factor=3.0, max_backoff_s=10.0)
    assert step(retries=policy)(_add).options.retries is policy


def test_retries_delay_grows_and_is_capped() -> None:
    policy = Retries(count=5, backoff_s=1.0, factor=2.0, max_backoff_s=3.0)
    assert [policy.delay_before(n) for n in (1, 2, 3, 4, 5)] == [0.0, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [(dt.timedelta(minutes=2, seconds=30), 150.0), (5, 5.0), (0.25, 0.25)],
)
def test_timeout_accepts_numbers_and_timedelta(timeout: Any, seconds: float) -> None:
    assert step(timeout=timeout)(_add).options.timeout_s == seconds


@pytest.mark.parametrize("timeout", [0, -1, -0.5, dt.timedelta(0), dt.timedelta(seconds=-3)])
def test_non_positive_timeout_is_rejected(timeout: Any) -> None:
    with pytest.raises(PipelineValidationError, match="timeout=.*positive number of seconds"):
        step(timeout=timeout)(_add)


def test_timeout_given_as_text_is_a_validation_error() -> None:
    # A natural mistake ("10m"); it must be reported as a pipeline error, not a TypeError.
    with pytest.raises(PipelineValidationError, match="timeout"):
        step(timeout="10m")(_add)  # type: ignore[call-overload]


@pytest.mark.parametrize("retries", [True, 2.5, "3", None])
def test_retries_of_the_wrong_type_is_rejected(retries: Any) -> None:
    with pytest.raises(PipelineValidationError, match=r"give an int or Retries\(\.\.\.\)"):
        step(retries=retries)(_add)


@pytest.mark.parametrize(
    "kwargs",
    [{"count": -1}, {"backoff_s": -1.0}, {"factor": 0.5}],
)
def test_invalid_retries_policy_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(PipelineValidationError, match="count and backoff_s must be >= 0"):
        Retries(**kwargs)


def test_negative_retry_count_is_rejected_by_step() -> None:
    with pytest.raises(PipelineValidationError, match="count=-1"):
        step(retries=-1)(_add)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu": 0}, r"cpu=0\) must be > 0"),
        ({"cpu": -2}, r"cpu=-2\) must be > 0"),
        ({"gpu": -1}, r"gpu=-1\) must be >= 0"),
        ({"gpu_type": "a100"}, "add gpu=1 or more"),
        ({"gpu": 0, "gpu_type": "a100"}, "add gpu=1 or more"),
    ],
)
def test_invalid_resources_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PipelineValidationError, match=message):
        Resources(**kwargs)


def test_resources_given_as_a_dict_is_a_validation_error() -> None:
    # A dict is a natural mistake for Resources(...): it must be rejected when the step is
    # declared, not crash later (dataclasses.asdict) when the pipeline version is computed.
    with pytest.raises(PipelineValidationError, match="resources"):
        step(resources={"cpu": 2})(_add)  # type: ignore[call-overload]


def test_step_rejects_var_args() -> None:
    def flexible(*values: int, **named: int) -> int:
        return 0

    with pytest.raises(PipelineValidationError, match=r"step 'flexible': \*args/\*\*kwargs"):
        step(flexible)


def test_step_rejects_non_callable() -> None:
    with pytest.raises(PipelineValidationError, match="must decorate a function, got 3"):
        step(3)  # type: ignore[call-overload]


def test_unresolvable_annotation_is_reported_with_a_fix() -> None:
    def broken(x: "NotDefinedAnywhere") -> int:  # noqa: F821
        return 0

    with pytest.raises(PipelineValidationError, match="step 'broken': cannot resolve") as exc:
        step(broken)
    assert "import every type it names" in str(exc.value)


# -- steps outside a pipeline ----------------------------------------------------------------
def test_step_called_outside_a_pipeline_runs_the_function() -> None:
    calls: list[tuple[int, int]] = []

    @step(retries=2, timeout=1)
    def add(x: int, y: int = 10) -> int:
        calls.append((x, y))
        return x + y

    assert current_builder() is None
    assert add(1) == 11
    assert add(2, y=3) == 5
    assert calls == [(1, 10), (2, 3)]


def test_multi_output_step_outside_a_pipeline_returns_the_namedtuple() -> None:
    @step
    def split_data(n: int) -> Split:
        return Split(list(range(n - 1)), [n - 1])

    result = split_data(4)
    assert isinstance(result, Split)
    assert result.train == [0, 1, 2]
    assert result.test == [3]


def test_step_exceptions_propagate_outside_a_pipeline() -> None:
    @step
    def fails() -> int:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        fails()


# -- multi-output steps ----------------------------------------------------------------------
@step
def load(n: int = 5) -> list[int]:
    return list(range(n))


@step
def split_data(rows: list[int]) -> Split:
    return Split(rows[:-1], rows[-1:])


@step
def count(rows: list[int]) -> int:
    return len(rows)


@step
def compare(train: list[int], test: list[int]) -> float:
    return len(train) / max(1, len(test))


def test_namedtuple_return_declares_named_outputs() -> None:
    assert split_data.multi_output is True
    assert [(o.name, o.annotation) for o in split_data.outputs] == [
        ("train", list[int]),
        ("test", list[int]),
    ]


def test_multi_output_attribute_access_in_pipeline_body() -> None:
    @pipeline
    def attrs() -> None:
        parts = split_data(load())
        count(parts.test)

    p = attrs.build()
    assert p.order == ("load", "split_data", "count")
    assert p.nodes["split_data"].bindings["rows"] == Binding("output", "load", "output")
    assert p.nodes["count"].bindings["rows"] == Binding("output", step="split_data", output="test")
    assert p.nodes["count"].upstream == ("split_data",)


def test_multi_output_tuple_unpacking_in_pipeline_body() -> None:
    @pipeline
    def unpacked() -> None:
        train, test = split_data(load())
        compare(train, test)

    node = unpacked.build().nodes["compare"]
    assert node.bindings == {
        "train": Binding("output", step="split_data", output="train"),
        "test": Binding("output", step="split_data", output="test"),
    }
    assert node.upstream == ("split_data",)


def test_unpacking_a_single_output_step_is_an_error() -> None:
    @pipeline
    def wrong() -> None:
        a, b = load()
        compare(a, b)

    with pytest.raises(PipelineValidationError, match="'load' has a single output") as exc:
        wrong.build()
    assert "typing.NamedTuple" in str(exc.value)


def test_passing_all_outputs_of_a_multi_output_step_is_an_error() -> None:
    @pipeline
    def wrong() -> None:
        count(split_data(load()))

    with pytest.raises(PipelineValidationError, match="step 'count' input 'rows'") as exc:
        wrong.build()
    assert "pass one of them" in str(exc.value)


def test_output_nested_in_a_container_is_an_error() -> None:
    @pipeline
    def wrong() -> None:
        count([load(), 1])

    with pytest.raises(PipelineValidationError, match="nests a step output") as exc:
        wrong.build()
    assert "step 'count' input 'rows'" in str(exc.value)


def test_constants_and_defaults_become_const_bindings() -> None:
    @pipeline
    def consts() -> None:
        count(load(3))

    p = consts.build()
    assert p.nodes["load"].bindings == {"n": Binding("const", value=3)}

    @pipeline
    def defaults() -> None:
        count(load())

    assert defaults.build().nodes["load"].bindings == {"n": Binding("const", value=5)}


def test_pipeline_parameters_bind_to_step_inputs() -> None:
    @pipeline(name="params-pipe", description="counts rows")
    def with_params(n: int = 7) -> None:
        count(load(n))

    p = with_params.build()
    assert p.name == "params-pipe"
    assert p.description == "counts rows"
    assert p.nodes["load"].bindings == {"n": Binding("param", param="n")}
    assert list(p.params) == ["n"]
    assert p.params["n"].default == 7 and p.params["n"].required is False
    assert p.resolve_params() == {"n": 7}


def test_pipeline_definition_is_traced_once() -> None:
    traced: list[int] = []

    @pipeline
    def once() -> None:
        traced.append(1)
        count(load())

    assert once.build() is once.build()
    assert traced == [1]


# -- StepContext ----------------------------------------------------------------------------
@step
def with_ctx(rows: list[int], ctx: StepContext) -> int:
    return len(rows) + ctx.attempt


def test_step_context_parameter_is_not_an_input() -> None:
    assert with_ctx.context_param == "ctx"
    assert [i.name for i in with_ctx.inputs] == ["rows"]


def test_step_context_parameter_needs_no_binding_in_pipeline() -> None:
    @pipeline
    def ctx_pipe() -> None:
        with_ctx(load())

    node = ctx_pipe.build().nodes["with_ctx"]
    assert set(node.bindings) == {"rows"}
    assert node.bindings["rows"] == Binding("output", step="load", output="output")


def test_step_context_is_passed_explicitly_outside_a_pipeline() -> None:
    ctx = StepContext(pipeline="p", step="with_ctx", run_id="r", attempt=2, params={})
    assert with_ctx([1, 2, 3], ctx) == 5


# -- alias ----------------------------------------------------------------------------------
def test_alias_is_the_same_step_under_another_name() -> None:
    original = step(retries=2, tags={"k": "v"})(_add)
    again = original.alias("add_again")
    assert again.name == "add_again"
    assert original.name == "_add"
    assert again.fn is original.fn
    assert again.options == original.options
    assert [i.name for i in again.inputs] == ["x", "y"]


def test_alias_lets_a_step_run_twice_in_one_pipeline() -> None:
    @step
    def inc(x: int) -> int:
        return x + 1

    @pipeline
    def twice() -> None:
        inc.alias("inc_2")(inc(1))

    p = twice.build()
    assert p.order == ("inc", "inc_2")
    assert p.nodes["inc_2"].bindings == {"x": Binding("output", step="inc", output="output")}
    assert p.nodes["inc_2"].definition.fn is p.nodes["inc"].definition.fn
    assert p.downstream("inc") == {"inc_2"}


# -- version ---------------------------------------------------------------------------------
def test_pipeline_version_depends_on_step_options() -> None:
    plain = step(name="work")(_add)
    retried = step(name="work", retries=3)(_add)
    v_plain = Pipeline("p", [StepNode("work", plain, {"x": Binding("const", value=1)})]).version
    v_again = Pipeline("p", [StepNode("work", plain, {"x": Binding("const", value=1)})]).version
    v_retry = Pipeline("p", [StepNode("work", retried, {"x": Binding("const", value=1)})]).version
    v_wired = Pipeline("p", [StepNode("work", plain, {"x": Binding("const", value=2)})]).version
    assert v_plain == v_again
    assert len(v_plain) == 16 and int(v_plain, 16) >= 0
    assert len({v_plain, v_retry, v_wired}) == 3


def test_step_options_are_frozen() -> None:
    opts = step(retries=1)(_add).options
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.cache = False  # type: ignore[misc]


def test_a_pipeline_is_immutable_and_replace_returns_a_changed_copy() -> None:
    import pytest as _pytest

    import stackwise
    from stackwise.scheduling.schedule import Schedule

    @stackwise.step
    def only() -> int:
        return 1

    @stackwise.pipeline(schedule=Schedule("@daily", start="2026-01-01"))
    def frozen_pipe():
        only()

    built = frozen_pipe.build()
    with _pytest.raises(AttributeError, match="immutable"):
        built.schedule = None  # type: ignore[misc]
    hourly = built.replace(schedule=Schedule("@hourly", start="2026-01-01"))
    assert hourly.schedule is not None and hourly.schedule.cron == "0 * * * *"
    assert built.schedule is not None and built.schedule.cron == "0 0 * * *"
    assert frozen_pipe.build() is built  # the module's pipeline is untouched
    assert hourly.version == built.version and hourly.order == built.order


def test_order_is_stable_with_ties_in_definition_order() -> None:
    @step
    def src() -> int:
        return 0

    @step
    def use(x: int, y: int) -> int:
        return x + y

    @pipeline
    def diamond() -> None:
        a, b = src.alias("a")(), src.alias("b")()
        c = use.alias("c")(b, b)  # defined before d, ready at the same moment
        d = use.alias("d")(a, b)
        use.alias("e")(d, c)

    assert diamond.build().order == ("a", "b", "c", "d", "e")


def test_a_large_pipeline_of_aliases_analyses_the_function_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reported: 10,000 steps took 409 s to load (the order was O(n^2); each alias analysed
    the function's signature again). Counted, not timed."""
    import inspect
    import sys

    pipeline_mod = sys.modules["stackwise.authoring.pipeline"]

    @step
    def add(x: int, y: int) -> int:
        return x + y

    @step
    def one() -> int:
        return 1

    signatures = 0
    real_signature = inspect.signature

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal signatures
        signatures += 1
        return real_signature(*args, **kwargs)

    upstream_reads = 0
    real_upstream = pipeline_mod.StepNode.upstream.func

    def counting_upstream(node: Any) -> Any:
        nonlocal upstream_reads
        upstream_reads += 1
        return real_upstream(node)

    monkeypatch.setattr(inspect, "signature", counting)
    monkeypatch.setattr(pipeline_mod.StepNode, "upstream", property(counting_upstream))

    @pipeline
    def big() -> None:
        values = [one()]
        for i in range(1, 500):
            values.append(add.alias(f"add_{i}")(values[i - 1], values[i // 2]))

    built = big.build()
    assert len(built.order) == 500 and built.order[-1] == "add_499"
    assert signatures <= 5
    assert upstream_reads <= 3 * 500  # linear: was 500 * 500 = 250,000 in the sort alone
