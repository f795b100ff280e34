"""What every target shares: refusing a pipeline before anything is written, and following a
triggered run with one progress event per change of a step's status or attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackwise.errors import PipelineValidationError, TargetError
from stackwise.orchestrators.base import Deployment, RunRecord, StepEvent, StepRecord
from stackwise.orchestrators.targets import compile_for, follow


class ScriptedTarget:
    """A target whose runs move through a fixed list of states, one per poll."""

    name = "scripted"

    def __init__(self, states: list[dict[str, tuple[str, int]]], problems: list[str]) -> None:
        self.states, self.problems, self.compiled = states, problems, False

    def validate(self, pipeline: Any) -> list[str]:
        return self.problems

    def compile(self, pipeline: Any, out: Path) -> list[Path]:
        self.compiled = True
        return [out]

    def status(self, deployment: Deployment, run: str) -> RunRecord:
        steps = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        done = all(s in ("SUCCEEDED", "FAILED") for s, _ in steps.values())
        failed = any(s == "FAILED" for s, _ in steps.values())
        record = RunRecord(run_id=run, pipeline="p", pipeline_ref="p.py:p", pipeline_version="v",
                           params={}, created_at=0.0,
                           status=("FAILED" if failed else "SUCCEEDED") if done else "RUNNING")
        for name, (status, attempt) in steps.items():
            record.steps[name] = StepRecord(name=name, status=status, attempt=attempt)
        return record


DEPLOYMENT = Deployment(target="scripted", pipeline="p", ref="dag-p")


def test_follow_reports_each_change_once_and_returns_the_final_record() -> None:
    target = ScriptedTarget([
        {"a": ("PENDING", 0), "b": ("PENDING", 0)},
        {"a": ("RUNNING", 1), "b": ("PENDING", 0)},
        {"a": ("RUNNING", 1), "b": ("PENDING", 0)},
        {"a": ("RUNNING", 2), "b": ("PENDING", 0)},  # retried by the target
        {"a": ("SUCCEEDED", 2), "b": ("RUNNING", 1)},
        {"a": ("SUCCEEDED", 2), "b": ("SUCCEEDED", 1)},
    ], problems=[])  # fmt: skip
    events: list[StepEvent] = []
    record = follow(target, DEPLOYMENT, "r1", events.append, sleep=lambda _s: None)
    assert record.status == "SUCCEEDED"
    assert [(e.step, e.status, e.attempt) for e in events] == [
        ("a", "RUNNING", 1), ("a", "RUNNING", 2), ("a", "SUCCEEDED", 2),
        ("b", "RUNNING", 1), ("b", "SUCCEEDED", 1),
    ]  # fmt: skip


def test_follow_gives_up_after_its_timeout_and_says_the_run_goes_on() -> None:
    target = ScriptedTarget([{"a": ("RUNNING", 1)}], problems=[])
    with pytest.raises(TargetError, match="did not finish within 0 s; it goes on there"):
        follow(target, DEPLOYMENT, "r1", lambda _e: None, timeout_s=0.0, sleep=lambda _s: None)


def test_a_pipeline_the_target_rejects_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    class Named:
        name = "train"

    target = ScriptedTarget([{}], problems=[
        "step 'x': memory '4 GB' is not a quantity", "step 'a': no image", "step 'b': no image",
        "the artifact store is on this host",
    ])  # fmt: skip
    with pytest.raises(PipelineValidationError) as exc:
        compile_for(target, Named(), tmp_path / "out")  # type: ignore[arg-type]
    assert exc.value.message == (
        "scripted cannot take pipeline 'train': step 'x': memory '4 GB' is not a quantity; "
        "steps 'a', 'b': no image; the artifact store is on this host"
    )
    assert not target.compiled
