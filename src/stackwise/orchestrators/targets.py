"""What every orchestrator target (Airflow, Kubeflow) shares: finding it by name, refusing a
pipeline it would reject before anything is written, and following a triggered run to its end
with the same progress events as a local run."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stackwise.errors import PipelineValidationError

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.config import StackConfig
    from stackwise.orchestrators.base import Deployment, EventSink, RunRecord, Target

def open_target(config: StackConfig, kind: str) -> Target:
    """The target named `kind` (`plugins.TARGETS`), built from the stack. Raises ConfigError
    for an unknown or not yet available target."""
    from stackwise.plugins import TARGETS, resolve

    target: Target = resolve(TARGETS, "orchestrator", kind)(config)
    return target


def check(target: Target, pipeline: Pipeline) -> None:
    """Raise PipelineValidationError listing everything `target` would reject."""
    problems = target.validate(pipeline)
    if problems:
        said = "; ".join(_grouped(problems))
        raise PipelineValidationError(
            f"{target.name} cannot take pipeline {pipeline.name!r}: {said}"
        )


def _grouped(problems: list[str]) -> list[str]:
    """One entry per distinct problem: "step 'a': no image" and "step 'b': no image" become
    "steps 'a', 'b': no image", so a stack-wide gap is said once, not once per step."""
    import re

    steps: dict[str, list[str]] = {}
    for problem in problems:
        match = re.fullmatch(r"step '([^']*)': (.*)", problem, flags=re.S)
        if match is None:
            steps.setdefault(problem, [])
        else:
            steps.setdefault(match.group(2), []).append(match.group(1))
    out = []
    for text, names in steps.items():
        if not names:
            out.append(text)
        else:
            label = "step" if len(names) == 1 else "steps"
            out.append(f"{label} {', '.join(repr(n) for n in names)}: {text}")
    return out


def compile_for(target: Target, pipeline: Pipeline, out: Path) -> list[Path]:
    """Validate, then write the target's files. Raises PipelineValidationError first."""
    check(target, pipeline)
    return target.compile(pipeline, out)


def follow(
    target: Target,
    deployment: Deployment,
    run: str,
    on_event: EventSink,
    *,
    poll_s: float = 2.0,
    timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunRecord:
    """Poll `target.status` until the run finishes; emit a StepEvent whenever a step's status
    or attempt changes. Returns the final record. Raises TargetError when `timeout_s` (seconds)
    passes first (the run goes on in the target)."""
    from stackwise.errors import TargetError
    from stackwise.orchestrators.base import RUN_TERMINAL, StepEvent

    seen: dict[str, tuple[str, int]] = {}
    started = time.monotonic()
    while True:
        record = target.status(deployment, run)
        for name, step in record.steps.items():
            state = (step.status, step.attempt)
            if seen.get(name) != state and step.status != "PENDING":
                seen[name] = state
                on_event(StepEvent(run_id=record.run_id, step=name, status=step.status,
                                   attempt=step.attempt, cached=step.cached,
                                   duration_s=step.duration_s, error=step.error))  # fmt: skip
        if record.status in RUN_TERMINAL:
            return record
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise TargetError(
                f"run {run} of {deployment.pipeline} on {target.name} did not finish within "
                f"{timeout_s:.0f} s; it goes on there: follow it in {target.name}'s UI."
            )
        sleep(poll_s)

