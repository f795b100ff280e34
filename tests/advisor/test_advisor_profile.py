"""Team profiles: loading YAML, the errors for bad ones (each naming the key and the allowed
values), and the interactive questions driven through a real input stream."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from stackwise.advisor import advise, load_profile, parse_profile
from stackwise.advisor.interactive import ask_profile, current_values
from stackwise.errors import ProfileError, StackwiseError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(text)
    return path


def test_full_profile_loads_with_every_documented_key(tmp_path: Path) -> None:
    profile = load_profile(
        _write(
            tmp_path,
            """
kubernetes_first: true
cluster_ops_expertise: false
platform_engineering_capacity: some
containerized_codebase: true
code_changes_per_day: 12
image_build_minutes: 7.5
backfill_historical_ranges: true
workflow_mix: [etl, features, training, evaluation, serving]
integrations: [postgres, s3, datadog]
multi_tenancy_required: false
distributed_training: {nodes: 2, gpus_per_node: 4}
autoscaling: true
cost_sensitivity: high
""",
        )
    )
    given = profile.given()
    assert given["image_build_minutes"] == 7.5
    assert given["distributed_training.nodes"] == 2
    assert given["distributed_training.gpus_per_node"] == 4
    assert given["workflow_mix"] == ["etl", "features", "training", "evaluation", "serving"]
    assert len(given) == 14


def test_empty_file_is_an_empty_profile(tmp_path: Path) -> None:
    assert load_profile(_write(tmp_path, "# nothing yet\n")).given() == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kubernetes_frist: true\n",
            "unknown key 'kubernetes_frist'. Did you mean 'kubernetes_first'? Allowed keys: "
            "kubernetes_first, cluster_ops_expertise,",
        ),
        (
            "kubernetes_first: 'yes'\n",
            "key 'kubernetes_first' = 'yes' is not allowed; allowed: true or false",
        ),
        (
            "platform_engineering_capacity: lots\n",
            "key 'platform_engineering_capacity' = 'lots' "
            "is not allowed; allowed: one of none, some, dedicated",
        ),
        ("cost_sensitivity: cheap\n", "allowed: one of low, medium, high"),
        (
            "workflow_mix: [etl, reporting]\n",
            "key 'workflow_mix' = 'reporting' is not allowed; "
            "allowed: a list of etl, features, training, evaluation, serving",
        ),
        ("workflow_mix: etl\n", "key 'workflow_mix' = 'etl' is not allowed; allowed: a list of"),
        (
            "code_changes_per_day: 2.5\n",
            "key 'code_changes_per_day' = 2.5 is not allowed; allowed: a whole number >= 0",
        ),
        ("image_build_minutes: -1\n", "allowed: a finite number >= 0"),
        ("image_build_minutes: .inf\n", "= inf is not allowed; allowed: a finite number >= 0"),
        ("image_build_minutes: true\n", "key 'image_build_minutes' = True is not allowed"),
        (
            "distributed_training: {nodes: 0}\n",
            "key 'distributed_training.nodes' = 0 is not allowed; allowed: a whole number >= 1",
        ),
        (
            "distributed_training: {gpus: 8}\n",
            "unknown key 'distributed_training.gpus'. Allowed keys: nodes, gpus_per_node",
        ),
        ("distributed_training: 4\n", "allowed: a mapping with nodes"),
        ("integrations: postgres\n", "allowed: a list of names"),
    ],
)
def test_bad_profiles_name_the_key_and_the_allowed_values(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.message.startswith(f"{path}: ")
    assert expected in info.value.message
    assert info.value.exit_code == 2 and isinstance(info.value, StackwiseError)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile(_write(tmp_path, "autoscaling: 1\ncost_sensitivity: none\n"))
    assert "'autoscaling'" in info.value.message and "'cost_sensitivity'" in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- kubernetes_first\n", "expected a mapping of keys to values"),
        ("kubernetes_first: [true\n", "not valid YAML at line"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ProfileError, match=expected):
        load_profile(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nope.yaml")


# -- interactive --------------------------------------------------------------------------------
def _ask(answers: str, current: dict[str, str] | None = None) -> tuple[object, str]:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    profile = ask_profile(console, current or {}, stream=io.StringIO(answers))
    return profile, out.getvalue()


def test_answers_fill_the_profile_and_enter_skips() -> None:
    lines = [
        "y",  # kubernetes_first
        "",  # cluster_ops_expertise: skipped
        "dedicated",  # platform_engineering_capacity
        "no",  # containerized_codebase
        "20",  # code_changes_per_day
        "8.5",  # image_build_minutes
        "",  # backfill_historical_ranges: skipped
        "etl, training",  # workflow_mix
        "postgres, s3",  # integrations
        "",  # multi_tenancy_required
        "3",  # distributed_training.nodes
        "4",  # distributed_training.gpus_per_node
        "",  # autoscaling
        "high",  # cost_sensitivity
    ]
    profile, shown = _ask("\n".join(lines) + "\n", {"kubernetes_first": "false (default)"})
    assert profile.given() == {  # type: ignore[attr-defined]
        "kubernetes_first": True,
        "platform_engineering_capacity": "dedicated",
        "containerized_codebase": False,
        "code_changes_per_day": 20,
        "image_build_minutes": 8.5,
        "workflow_mix": ["etl", "training"],
        "integrations": ["postgres", "s3"],
        "distributed_training.nodes": 3,
        "distributed_training.gpus_per_node": 4,
        "cost_sensitivity": "high",
    }
    assert "Enter keeps false (default)" in shown
    assert "one of none, some, dedicated" in shown


def test_a_bad_answer_is_explained_and_asked_again() -> None:
    profile, shown = _ask("maybe\nyes\nsometimes\n\nlots\nsome\n")
    assert profile.given() == {  # type: ignore[attr-defined]
        "kubernetes_first": True,
        "platform_engineering_capacity": "some",
    }
    assert "key 'kubernetes_first' = 'maybe' is not allowed; allowed: true or false" in shown
    assert "'platform_engineering_capacity' = 'lots' is not allowed" in shown
    # `sometimes` for cluster_ops_expertise was rejected too, then Enter skipped it.
    assert "'cluster_ops_expertise' = 'sometimes'" in shown


def test_three_bad_answers_skip_the_question() -> None:
    profile, shown = _ask("a\nb\nc\nyes\n")
    assert profile.given() == {"cluster_ops_expertise": True}  # type: ignore[attr-defined]
    assert "skipping kubernetes_first" in shown


def test_end_of_input_stops_and_keeps_the_answers() -> None:
    profile, shown = _ask("yes\n")
    assert profile.given() == {"kubernetes_first": True}  # type: ignore[attr-defined]
    assert shown.count("cluster_ops_expertise") == 1  # asked once, then the input ended
    assert "platform_engineering_capacity" not in shown


def test_answers_are_marked_interactive_in_the_advice() -> None:
    profile, _ = _ask("yes\nyes\n")
    advice = advise(None, profile, origin="interactive")  # type: ignore[arg-type]
    assert advice.inputs["kubernetes_first"].source == "interactive"
    assert advice.inputs["autoscaling"].source == "default"
    assert advice.profile == "interactive"


def test_current_values_show_what_enter_keeps() -> None:
    values = current_values(None)
    assert values["platform_engineering_capacity"] == "none (default)"
    assert values["containerized_codebase"] == "unknown (default)"


def test_parse_profile_rejects_non_mappings() -> None:
    with pytest.raises(ProfileError, match="answers: expected a mapping"):
        parse_profile(["kubernetes_first"], "answers")
