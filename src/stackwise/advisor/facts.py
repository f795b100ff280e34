"""Merge the three sources of every input into one fact with its origin:
profile (file or answers) > pipeline analysis > default.

Defaults are deliberately conservative ("assume the team does not have it unless it says so"),
and three inputs have no default at all (containerized codebase, changes per day, build
minutes): an unknown value triggers no criterion, so the advisor never argues from a guess.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from stackwise.advisor.analysis import PipelineAnalysis
from stackwise.advisor.profile import TeamProfile
from stackwise.advisor.rules import Fact, show

DEFAULTS: dict[str, Any] = {
    "kubernetes_first": False,
    "cluster_ops_expertise": False,
    "platform_engineering_capacity": "none",
    "containerized_codebase": None,
    "code_changes_per_day": None,
    "image_build_minutes": None,
    "backfill_historical_ranges": False,
    "workflow_mix": [],
    "integrations": [],
    "multi_tenancy_required": False,
    "distributed_training.nodes": 1,
    "distributed_training.gpus_per_node": 0,
    "autoscaling": False,
    "cost_sensitivity": "medium",
}
INPUT_KEYS: tuple[str, ...] = tuple(DEFAULTS)


@dataclasses.dataclass(frozen=True)
class Override:
    """A profile value that understates what the pipeline declares. The profile still wins
    (it may describe the team's other pipelines too), but the advice may then miss a need."""

    key: str
    profile_value: Any
    pipeline_value: Any
    why: str

    def message(self) -> str:
        return (
            f"the profile sets {self.key} = {show(self.profile_value)} but the pipeline shows "
            f"{show(self.pipeline_value)} ({self.why}); the profile wins, so the advice may "
            "understate what this pipeline needs."
        )


@dataclasses.dataclass(frozen=True)
class MergedInputs:
    facts: dict[str, Fact]
    notes: dict[str, str]
    overrides: list[Override]


def merge_inputs(
    profile: TeamProfile | None,
    analysis: PipelineAnalysis | None,
    answered: Literal["profile", "interactive"] = "profile",
) -> MergedInputs:
    given = profile.given() if profile is not None else {}
    inferred = analysis.inferred if analysis is not None else {}
    facts: dict[str, Fact] = {}
    notes: dict[str, str] = {}
    overrides: list[Override] = []
    for key in INPUT_KEYS:
        guess = inferred.get(key)
        if key in given:
            facts[key] = Fact(given[key], answered, (key,))
            if guess is not None and _understates(given[key], guess.value):
                overrides.append(Override(key, given[key], guess.value, guess.why))
        elif guess is not None:
            facts[key] = Fact(guess.value, "pipeline", (key,))
            notes[key] = guess.why
        else:
            facts[key] = Fact(DEFAULTS[key], "default", (key,))
    facts["daily_image_build_minutes"] = _daily_build_minutes(facts)
    return MergedInputs(facts, notes, overrides)


def _daily_build_minutes(facts: dict[str, Fact]) -> Fact:
    """The seed's iteration cost: image_build_minutes x code_changes_per_day."""
    minutes = facts["image_build_minutes"].value
    changes = facts["code_changes_per_day"].value
    keys = ("image_build_minutes", "code_changes_per_day")
    if minutes is None or changes is None:
        return Fact(None, "derived", keys)
    total = minutes * changes
    return Fact(int(total) if float(total).is_integer() else round(total, 1), "derived", keys)


def _understates(given: Any, inferred: Any) -> bool:
    """The profile claims less than the pipeline shows: kinds it leaves out, fewer nodes or
    GPUs, no backfills for a scheduled pipeline, no containers where steps declare images."""
    if isinstance(given, list) and isinstance(inferred, list):
        return bool(set(inferred) - set(given))
    if isinstance(given, bool) or isinstance(inferred, bool):
        return inferred is True and given is False
    if isinstance(given, int | float) and isinstance(inferred, int | float):
        return inferred > given
    return False
