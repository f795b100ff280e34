"""The vocabulary the criteria table is written in: facts, conditions, criteria, warning rules.

A criterion is data (which option it favours, its weight, the conditions that trigger it and
the seed sentence it comes from), so that the table can be read, documented, tested row by
row and searched for "what would flip this choice" without any decision logic of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

Source = Literal["profile", "interactive", "pipeline", "default", "derived", "decision"]
Op = Literal["is", "in", "ge", "contains", "contains_any", "count_ge"]


@dataclasses.dataclass(frozen=True)
class Fact:
    """One input value and where it came from (`keys` are the profile keys behind it)."""

    value: Any
    source: Source
    keys: tuple[str, ...] = ()


Facts = Mapping[str, Fact]


@dataclasses.dataclass(frozen=True)
class Condition:
    """`fact op value`. An unknown fact (value None) satisfies nothing: the advisor never
    counts a reason the inputs do not state."""

    fact: str
    op: Op
    value: Any = None

    def holds(self, facts: Facts) -> bool:
        current = facts[self.fact].value
        if current is None:
            return False
        if self.op == "is":
            return bool(current == self.value)
        if self.op == "in":
            return bool(current in self.value)
        if self.op == "ge":
            return bool(current >= self.value)
        if self.op == "contains":
            return bool(self.value in current)
        if self.op == "contains_any":
            return any(v in current for v in self.value)
        return bool(len(current) >= self.value)  # count_ge

    def describe(self) -> str:
        """The condition in words, e.g. `backfill_historical_ranges is true`."""
        words = {
            "is": "is",
            "in": "is one of",
            "ge": ">=",
            "contains": "includes",
            "contains_any": "includes any of",
            "count_ge": "has at least",
        }[self.op]
        unit = " names" if self.op == "count_ge" else ""
        return f"{self.fact} {words} {show(self.value)}{unit}"


@dataclasses.dataclass(frozen=True)
class AnyOf:
    """Holds when at least one of its conditions does: the table's only "or", for a group
    of inputs that play one part (`label`), e.g. any Kubernetes-side condition."""

    label: str
    conditions: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return any(c.holds(facts) for c in self.conditions)

    def describe(self) -> str:
        return f"{self.label}: " + " or ".join(c.describe() for c in self.conditions)


Requirement = Condition | AnyOf


@dataclasses.dataclass(frozen=True)
class Criterion:
    """One row of the criteria table: when every requirement holds, `favours` gains
    `weight`. No requirements: it always counts (the baseline of the simplest option)."""

    id: str
    favours: str
    weight: int
    when: tuple[Requirement, ...]
    reason: str
    quote: str
    origin: Literal["seed", "stackwise"] = "seed"

    def holds(self, facts: Facts) -> bool:
        return all(c.holds(facts) for c in self.when)

    def conditions(self) -> list[Condition]:
        """Every plain condition it reads, those inside an `AnyOf` included."""
        flat: list[Condition] = []
        for requirement in self.when:
            if isinstance(requirement, AnyOf):
                flat.extend(requirement.conditions)
            else:
                flat.append(requirement)
        return flat

    def trigger(self, facts: Facts) -> str:
        """The inputs that made it count, with their values and sources (of an `AnyOf`, the
        conditions that hold)."""
        used: list[str] = []
        for requirement in self.when:
            if isinstance(requirement, AnyOf):
                used += [c.fact for c in requirement.conditions if c.holds(facts)]
            else:
                used.append(requirement.fact)
        parts = [f"{f} = {show(facts[f].value)} ({facts[f].source})" for f in dict.fromkeys(used)]
        return "; ".join(parts) or "always counts"

    def facts(self) -> list[str]:
        """The facts its conditions read, each once, in order."""
        return list(dict.fromkeys(c.fact for c in self.conditions()))


@dataclasses.dataclass(frozen=True)
class WarningRule:
    """A contradiction worth saying out loud: it changes no score, it changes what to plan.
    `message` is formatted with the last segment of each fact name (`{nodes}`)."""

    id: str
    when: tuple[Condition, ...]
    message: str

    def holds(self, facts: Facts) -> bool:
        return all(c.holds(facts) for c in self.when)

    def render(self, facts: Facts) -> str:
        values = {name.rpartition(".")[2]: show(f.value) for name, f in facts.items()}
        return self.message.format_map(values)


def show(value: Any) -> str:
    """Values as a profile would spell them (YAML-ish): true, none, [a, b]."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
