"""`advise()`: pipeline + team profile in, a recommendation that explains itself out.

`Advice` is what crosses into rendering: the Rich report, `--json` (its serialization, so the
two cannot disagree) and the stack file all read it and nothing else.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from stackwise.advisor.analysis import PipelineAnalysis, analyse_pipeline
from stackwise.advisor.criteria import TRACKER, TRACKER_QUOTE, WARNINGS
from stackwise.advisor.facts import INPUT_KEYS, merge_inputs
from stackwise.advisor.profile import TeamProfile
from stackwise.advisor.rules import Fact, show
from stackwise.advisor.scoring import Flip, Scored, decide, find_flips
from stackwise.authoring.pipeline import Pipeline

ProfileOrigin = Literal["file", "interactive", "none"]


class Reason(BaseModel):
    criterion: str
    favours: str
    weight: int
    because: str
    triggered_by: str
    inputs: list[str]
    quote: str
    origin: str


class FlipOut(BaseModel):
    change: str
    to: str
    scores: dict[str, int]


class Decision(BaseModel):
    choice: str
    runner_up: str
    scores: dict[str, int]
    margin: int
    tie: bool
    reasons: list[Reason]
    flip: FlipOut | None
    other_flips: list[FlipOut]


class InputValue(BaseModel):
    value: Any
    source: str
    note: str | None = None


class AdvisorWarning(BaseModel):
    id: str
    message: str


class IterationCost(BaseModel):
    image_build_minutes: float | None
    code_changes_per_day: int | None
    minutes_per_day: float | None
    note: str


class Advice(BaseModel):
    pipeline: PipelineAnalysis | None
    profile: ProfileOrigin
    profile_path: str | None
    inputs: dict[str, InputValue]
    orchestrator: Decision
    compute: Decision
    tracker: str
    tracker_reason: str
    warnings: list[AdvisorWarning]
    iteration_cost: IterationCost | None
    notes: list[str]


def advise(
    pipeline: Pipeline | None = None,
    profile: TeamProfile | None = None,
    *,
    origin: ProfileOrigin = "file",
    profile_path: str | None = None,
) -> Advice:
    analysis = analyse_pipeline(pipeline) if pipeline is not None else None
    answered: Literal["profile", "interactive"] = (
        "interactive" if origin == "interactive" else "profile"
    )
    merged = merge_inputs(profile if origin != "none" else None, analysis, answered)
    outcome, facts = decide(merged.facts)
    warnings = [
        AdvisorWarning(id=w.id, message=w.render(facts)) for w in WARNINGS if w.holds(facts)
    ]
    warnings += [
        AdvisorWarning(id="profile_understates_pipeline", message=o.message())
        for o in merged.overrides
    ]
    notes = []
    if origin == "none":
        notes.append(
            "no team profile: this advice uses only the pipeline analysis and the defaults. "
            "Pass --profile FILE (or run in a terminal to answer the questions) to add how the "
            "team works."
        )
    if analysis is None:
        notes.append("no pipeline given: the advice rests on the team profile alone.")
    return Advice(
        pipeline=analysis,
        profile=origin,
        profile_path=profile_path,
        inputs={
            key: InputValue(
                value=facts[key].value, source=facts[key].source, note=merged.notes.get(key)
            )
            for key in (*INPUT_KEYS, "daily_image_build_minutes")
        },
        orchestrator=_decision(outcome["orchestrator"], facts),
        compute=_decision(outcome["compute"], facts),
        tracker=TRACKER,
        tracker_reason=TRACKER_QUOTE,
        warnings=warnings,
        iteration_cost=_iteration_cost(facts),
        notes=notes,
    )


def _decision(scored: Scored, facts: dict[str, Fact]) -> Decision:
    # Flip search replays the decisions from the input facts only.
    inputs = {k: v for k, v in facts.items() if v.source != "decision"}
    flips = find_flips(scored.decision, inputs)
    return Decision(
        choice=scored.choice,
        runner_up=scored.runner_up,
        scores=scored.scores,
        margin=scored.scores[scored.choice] - scored.scores[scored.runner_up],
        tie=scored.tie,
        reasons=[
            Reason(
                criterion=c.id,
                favours=c.favours,
                weight=c.weight,
                because=c.reason,
                triggered_by=c.trigger(facts),
                inputs=c.facts(),
                quote=c.quote,
                origin=c.origin,
            )
            for c in scored.hits
        ],
        flip=_flip_out(flips[0]) if flips else None,
        other_flips=[_flip_out(f) for f in flips[1:]],
    )


def _flip_out(flip: Flip) -> FlipOut:
    return FlipOut(change=flip.describe(), to=flip.outcome.choice, scores=flip.outcome.scores)


def _iteration_cost(facts: dict[str, Fact]) -> IterationCost | None:
    """The seed's image build cost, shown only where containers are involved."""
    minutes = facts["image_build_minutes"].value
    changes = facts["code_changes_per_day"].value
    involved = (
        facts["runs_in_images"].value
        or facts["containerized_codebase"].value is True
        or minutes is not None
    )
    if not involved:
        return None
    daily = facts["daily_image_build_minutes"].value
    if daily is None:
        note = (
            "unknown: set image_build_minutes and code_changes_per_day in the profile to see "
            "how long the team waits for images each day"
        )
    else:
        note = (
            f"{show(minutes)} min per build x {changes} changes a day = {show(daily)} minutes "
            "a day waiting for images"
        )
    return IterationCost(
        image_build_minutes=minutes, code_changes_per_day=changes, minutes_per_day=daily, note=note
    )
