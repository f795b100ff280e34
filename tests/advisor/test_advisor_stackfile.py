"""`advise --write-stack` builds the file from data: whatever the strings in the advice contain
(newlines, '#', quotes, ': ', control characters), the written file holds exactly the intended
keys, every other line is a comment, and the strings still show in the comments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stackwise.advisor import Advice
from stackwise.advisor.stackfile import comment_line, render_stack, write_stack
from stackwise.config import load_stack

NASTY = [
    "db\norchestrator: kubeflow",
    "x # y",
    "a: b",
    "'\"",
    "crm\r\ncompute: kubernetes",
    "bell\x07 escape\x1b[31m nul\x00",
    "line\u2028sep\x85next",
    "tracking: false",
    "p\nstate_store: sqlite:////tmp/elsewhere.db",
]


def _expected(advice: Advice) -> dict[str, Any]:
    return {
        "orchestrator": advice.orchestrator.choice,
        "compute": advice.compute.choice,
        "tracking": True,
    }


def _poisoned(advice: Advice, text: str) -> Advice:
    """Every free-text field of the advice carries `text` (as a bypassed check would let in)."""
    decisions = {}
    for kind in ("orchestrator", "compute"):
        decision = getattr(advice, kind)
        reasons = [r.model_copy(update={"triggered_by": text}) for r in decision.reasons]
        flip = decision.flip.model_copy(update={"change": text}) if decision.flip else None
        decisions[kind] = decision.model_copy(update={"reasons": reasons, "flip": flip})
    warnings = [w.model_copy(update={"message": text}) for w in advice.warnings]
    assert advice.pipeline is not None
    return advice.model_copy(
        update={
            **decisions,
            "pipeline": advice.pipeline.model_copy(update={"name": text}),
            "warnings": warnings,
            "tracker_reason": text,
        }
    )


def _check_written(path: Path, advice: Advice) -> str:
    text = path.read_text()
    assert yaml.safe_load(text) == _expected(advice)
    live = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert live == [
        f"orchestrator: {advice.orchestrator.choice}",
        f"compute: {advice.compute.choice}",
        "tracking: true",
    ]
    config = load_stack(path)
    assert (config.orchestrator, config.compute) == (
        advice.orchestrator.choice,
        advice.compute.choice,
    )
    return text


def test_profile_strings_cannot_write_keys(
    project: Path, gpu_target: str, advise_for: Callable[..., Advice]
) -> None:
    advice = advise_for(gpu_target, integrations=NASTY, multi_tenancy_required=True)
    assert advice.warnings  # the warnings section is written too
    text = _check_written(write_stack(advice, project / "stackwise.yaml"), advice)
    assert "x # y" in text and "a: b" in text  # shown, inside comments
    assert "db orchestrator: kubeflow" in text  # a line break becomes a space


@pytest.mark.parametrize("text", NASTY)
def test_every_free_text_field_is_confined_to_comments(
    project: Path, gpu_target: str, advise_for: Callable[..., Advice], text: str
) -> None:
    advice = _poisoned(advise_for(gpu_target, multi_tenancy_required=True), text)
    _check_written(write_stack(advice, project / "stackwise.yaml", force=True), advice)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_a_comment_line_is_one_yaml_comment_whatever_the_text(text: str) -> None:
    line = comment_line(text)
    assert line.startswith("# ") and "\n" not in line
    assert yaml.safe_load(f"{line}\nkey: 1\n{line}\n") == {"key": 1}


def test_render_stack_output_is_the_written_file(
    project: Path, gpu_target: str, advise_for: Callable[..., Advice]
) -> None:
    advice = advise_for(gpu_target)
    written = write_stack(advice, project / "s.yaml")
    assert written.read_text() == render_stack(advice)
