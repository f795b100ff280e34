"""Metric and tag names are checked with exactly MLflow's rule at the `log_metric`/`set_tag`
call: a name MLflow would refuse fails that call (not the step's batch at its end), and a name
MLflow accepts is never refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric, _validate_tag

from stackwise.authoring.context import StepContext, mlflow_key_problem
from stackwise.authoring.loader import load_pipeline
from stackwise.config import StackConfig
from stackwise.errors import StackwiseError
from stackwise.orchestrators.local.orchestrator import LocalOrchestrator


def _mlflow_accepts_metric(name: str) -> bool:
    try:
        _validate_metric(name, 0.5, 0, 0)
    except MlflowException:
        return False
    return True


def _mlflow_accepts_tag(name: str) -> bool:
    try:
        _validate_tag(name, "v")
    except MlflowException:
        return False
    return True


# Names built from the characters that matter to MLflow's rule: allowed ones, path separators
# and dots, characters it refuses, line breaks (its regex ends in `$`), non-ASCII word
# characters; lengths around its 250-character limit come from the `example`s and `long`.
_ALPHABET = st.sampled_from(list("ab_Z09/.- :\n\t@#\\*é中\u2028\x00"))
_NAMES = st.text(_ALPHABET, max_size=12)
_LONG = st.builds(lambda n, tail: "m" * n + tail, st.integers(240, 260), _NAMES)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_NAMES, _LONG))
@example("per_class/")
@example("a..b")
@example("")
@example(".")
@example("..")
@example("..a")
@example("a/..")
@example("/a")
@example("a//b")
@example("./a")
@example("a/./b")
@example("a\n")
@example("a:b")
@example("x" * 250)
@example("x" * 251)
def test_the_rule_is_mlflows_own(name: str) -> None:
    assert (mlflow_key_problem(name) is None) == _mlflow_accepts_metric(name), name
    assert (mlflow_key_problem(name) is None) == _mlflow_accepts_tag(name), name


@pytest.mark.parametrize("value", [None, 5, b"loss"])
def test_a_name_that_is_not_a_string_is_refused(value: object) -> None:
    assert mlflow_key_problem(value) is not None


def _ctx() -> StepContext:
    return StepContext(pipeline="p", step="s", run_id="r", attempt=1, params={})


def test_trailing_slash_is_refused_at_the_call() -> None:
    ctx = _ctx()
    with pytest.raises(StackwiseError) as exc:
        ctx.log_metric("per_class/", 0.5)
    message = exc.value.message
    assert "metric name 'per_class/'" in message
    assert "'per_class'" in message  # what MLflow would read it as
    assert ctx.metrics == []


def test_double_dot_inside_a_name_is_accepted() -> None:
    ctx = _ctx()
    ctx.log_metric("a..b", 0.5)
    ctx.set_tag("x..y", "1")
    assert [m.key for m in ctx.metrics] == ["a..b"] and ctx.tags == {"x..y": "1"}


def test_too_long_names_say_the_limit() -> None:
    with pytest.raises(StackwiseError, match="251 characters.*at most 250"):
        _ctx().set_tag("t" * 251, "v")


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [("high", None, "metric 'm' value 'high' is not a number"),
     (0.5, "3", "metric 'm' step '3' is not an integer"),
     (0.5, 2**63, "metric 'm' step 9223372036854775808 is out of MLflow's range")],
)  # fmt: skip
def test_values_and_steps_mlflow_refuses_fail_at_the_call(
    value: object, step: object, expected: str
) -> None:
    ctx = _ctx()
    with pytest.raises(StackwiseError) as exc:
        ctx.log_metric("m", value, step)  # type: ignore[arg-type]
    assert expected in exc.value.message
    assert ctx.metrics == []


PIPE = """
import stackwise as sw

ATTEMPTS = []

@sw.step(retries=1)
def score() -> int:
    ATTEMPTS.append(1)
    sw.log_metric("a..b", 0.25)
    try:
        sw.log_metric("per_class/", 0.5)
    except sw.StackwiseError as exc:
        sw.log_metric("refused_at_call", 1.0)
    return len(ATTEMPTS)

@sw.step
def after(x: int) -> int:
    return x

@sw.pipeline
def pipe() -> None:
    after(score())
"""


def test_in_a_real_run_the_bad_name_fails_the_call_and_the_good_one_reaches_mlflow(
    stack: StackConfig, write_pipeline: Callable[[str], str]
) -> None:
    from mlflow import MlflowClient

    record = LocalOrchestrator(stack).run(load_pipeline(write_pipeline(PIPE)))
    assert record.status == "SUCCEEDED", record.error
    step = record.steps["score"]
    assert step.attempt == 1 and record.steps["after"].status == "SUCCEEDED"
    client = MlflowClient(stack.tracking_uri_resolved)
    metrics = client.get_run(step.mlflow_run_id or "").data.metrics
    assert metrics == {"a..b": 0.25, "refused_at_call": 1.0}
