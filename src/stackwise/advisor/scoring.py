"""Score the criteria table against the facts, and find the smallest change that flips a choice.

The orchestrator is decided first and becomes a fact (`orchestrator`) for the compute decision,
because one Kubernetes cluster serving both is a real saving. Flip search is driven by the same
table: every condition names a fact and a threshold, so the candidate changes are exactly the
values on the other side of some condition. Nothing here knows what any option means.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from collections.abc import Mapping
from typing import Any

from stackwise.advisor.criteria import CRITERIA, OPTIONS
from stackwise.advisor.profile import Capacity, CostSensitivity
from stackwise.advisor.rules import Condition, Criterion, Fact, Facts, show

#: Facts with a closed set of values, so that "some other value" can be enumerated.
DOMAINS: dict[str, tuple[str, ...]] = {
    "platform_engineering_capacity": typing.get_args(Capacity),
    "cost_sensitivity": typing.get_args(CostSensitivity),
}
#: Facts the decisions produce: outputs, never candidates for a change.
DECISION_FACTS = ("orchestrator", "compute", "runs_in_images")
#: Stands for "one more name" when a count threshold is the thing to cross.
PLACEHOLDER = "<another "
#: Largest number of simultaneous input changes the flip search tries.
MAX_CHANGES = 2


@dataclasses.dataclass(frozen=True)
class Scored:
    decision: str
    choice: str
    runner_up: str
    scores: dict[str, int]
    hits: tuple[Criterion, ...]

    @property
    def tie(self) -> bool:
        return self.scores[self.choice] == self.scores[self.runner_up]


def score(decision: str, facts: Facts) -> Scored:
    options = OPTIONS[decision]
    hits = tuple(c for c in CRITERIA[decision] if c.holds(facts))
    scores = {o: sum(c.weight for c in hits if c.favours == o) for o in options}
    ranked = sorted(options, key=lambda o: (-scores[o], options.index(o)))
    return Scored(decision, ranked[0], ranked[1], scores, hits)


def decide(facts: Facts) -> tuple[dict[str, Scored], dict[str, Fact]]:
    """Both decisions, and the facts extended with their outcomes (for warnings)."""
    extended = dict(facts)
    orchestrator = score("orchestrator", extended)
    extended["orchestrator"] = Fact(orchestrator.choice, "decision")
    compute = score("compute", extended)
    extended["compute"] = Fact(compute.choice, "decision")
    in_images = orchestrator.choice == "kubeflow" or compute.choice == "kubernetes"
    extended["runs_in_images"] = Fact(in_images, "decision")
    return {"orchestrator": orchestrator, "compute": compute}, extended


@dataclasses.dataclass(frozen=True)
class Change:
    fact: str
    before: Any
    after: Any

    def describe(self) -> str:
        if isinstance(self.after, list) and isinstance(self.before, list):
            added = [v for v in self.after if v not in self.before]
            removed = [v for v in self.before if v not in self.after]
            if any(str(v).startswith(PLACEHOLDER) for v in added):
                return f"{self.fact}: {len(self.after)} names instead of {len(self.before)}"
            if added:
                return f"{self.fact}: add {', '.join(map(str, added))}"
            return f"{self.fact}: drop {', '.join(map(str, removed))}"
        return f"{self.fact}: {show(self.before)} -> {show(self.after)}"


@dataclasses.dataclass(frozen=True)
class Flip:
    changes: tuple[Change, ...]
    outcome: Scored

    def describe(self) -> str:
        return "; ".join(c.describe() for c in self.changes)


def candidate_changes(facts: Facts, first: str) -> list[Change]:
    """Every value on the other side of a condition in the table, `first` decision's rows
    first (so a compute flip prefers a compute reason)."""
    order = [first, *(d for d in CRITERIA if d != first)]
    seen: dict[tuple[str, str], Change] = {}
    for decision in order:
        for criterion in CRITERIA[decision]:
            for condition in criterion.conditions():
                if condition.fact in DECISION_FACTS:
                    continue
                for after in _other_side(condition, facts[condition.fact].value):
                    change = Change(condition.fact, facts[condition.fact].value, after)
                    seen.setdefault((change.fact, repr(after)), change)
    return list(seen.values())


def _other_side(condition: Condition, current: Any) -> list[Any]:
    op, value = condition.op, condition.value
    if op == "is":
        if current == value:
            domain = DOMAINS.get(condition.fact, (not value,) if isinstance(value, bool) else ())
            return [v for v in domain if v != value]
        return [value]
    if op == "ge":
        if current is not None and current >= value:
            return [value - 1]
        return [value]
    items = list(current or [])
    if op == "contains":
        return [[v for v in items if v != value]] if value in items else [[*items, value]]
    if op == "contains_any":
        if any(v in items for v in value):
            return [[v for v in items if v not in value]]
        return [[*items, value[0]]]
    if op == "count_ge":
        if len(items) >= value:
            return [items[: value - 1]]
        return [items + [f"{PLACEHOLDER}{i + 1}>" for i in range(len(items), value)]]
    return []


def find_flips(decision: str, facts: Facts, limit: int = 5) -> list[Flip]:
    """Changes of one input (or, when none suffices, of two) that change `decision`'s choice,
    the ones that land on the runner-up first."""
    current, _ = decide(facts)
    base = current[decision]
    candidates = candidate_changes(facts, decision)
    for size in range(1, MAX_CHANGES + 1):
        flips: list[Flip] = []
        for combo in itertools.combinations(candidates, size):
            if len({c.fact for c in combo}) < size:
                continue
            outcome = decide(_apply(facts, combo))[0][decision]
            if outcome.choice != base.choice:
                flips.append(Flip(combo, outcome))
        if flips:
            # Smallest first: landing on the runner-up, through this decision's own criteria
            # (not by first flipping the other decision), moving the scores the least (the
            # nearest edge), then table order (the sort is stable).
            own = {c.fact for criterion in CRITERIA[decision] for c in criterion.conditions()}
            flips.sort(
                key=lambda f: (
                    f.outcome.choice != base.runner_up,
                    any(c.fact not in own for c in f.changes),
                    _moved(base, f),
                )
            )
            return flips[:limit]
    return []


def _moved(base: Scored, flip: Flip) -> int:
    return sum(abs(flip.outcome.scores[o] - base.scores[o]) for o in base.scores)


def _apply(facts: Facts, changes: tuple[Change, ...]) -> Mapping[str, Fact]:
    changed = dict(facts)
    for change in changes:
        changed[change.fact] = dataclasses.replace(facts[change.fact], value=change.after)
    return changed
