"""Step and pipeline names follow one rule (letters, digits, '_' or '-', at most 128
characters), with an error that says which part of the rule a name breaks; `-p` may give a
parameter once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackwise.authoring import Binding, Pipeline, StepNode, pipeline, step
from stackwise.authoring.params import parse_assignments
from stackwise.cli.main import app, load_commands
from stackwise.config import StackConfig
from stackwise.errors import ParameterError, PipelineValidationError

load_commands()


@step
def one(x: int) -> int:
    return x


def _node(name: str) -> StepNode:
    return StepNode(name, one, {"x": Binding("const", value=1)})


def test_a_step_name_over_the_limit_says_the_limit() -> None:
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline("p", [_node("s" * 129)])
    assert "129 characters long; the limit is 128" in exc.value.message
    assert "use letters" not in exc.value.message
    assert Pipeline("p", [_node("s" * 128)]).order == ("s" * 128,)


@pytest.mark.parametrize(
    "bad", ["daily\norchestrator: kubeflow", "train\n", "has space", "team.daily", "1st", ""]
)
def test_pipeline_names_are_checked_like_step_names(bad: str) -> None:
    with pytest.raises(PipelineValidationError) as exc:
        Pipeline(bad, [_node("s")])
    assert f"pipeline name {bad!r} is not valid; use letters, digits" in exc.value.message
    with pytest.raises(PipelineValidationError, match="pipeline name"):
        pipeline(name=bad)(lambda: None)  # refused where it is written
    with pytest.raises(PipelineValidationError, match="step name"):
        Pipeline("p", [_node(bad)])


def test_a_pipeline_name_over_the_limit_says_the_limit() -> None:
    with pytest.raises(PipelineValidationError, match="130 characters long; the limit is 128"):

        @pipeline(name="p" * 130)
        def too_long() -> None:
            one(1)


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(ParameterError) as exc:
        parse_assignments(["k=5", "other=1", "k =7"])
    assert exc.value.message == "parameter 'k' is given twice (-p k=5 and -p k =7); pass it once."
    assert parse_assignments(["k=5", "j=5"]) == {"k": "5", "j": "5"}


PIPE = """
import stackwise as sw

@sw.step
def add(x: int, k: int) -> int:
    return x + k

@sw.pipeline
def pipe(k: int = 1) -> None:
    add(1, k)
"""


def test_cli_exits_2_on_a_repeated_parameter_and_runs_nothing(
    project: Path, stack: StackConfig, write_pipeline: Callable[[str], str]
) -> None:
    result = CliRunner().invoke(app, ["run", write_pipeline(PIPE), "-p", "k=5", "-p", "k=7"])
    assert result.exit_code == 2
    assert "parameter 'k' is given twice" in result.stderr
    assert not (project / ".stackwise" / "state.db").exists()
