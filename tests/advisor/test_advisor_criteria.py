"""The criteria table is data that must stay coherent: ids unique, options known, every
condition reading a fact that exists, every row documented in the README with its weight and
its seed sentence, and the profile model, the inputs and the table agreeing on key names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackwise.advisor.criteria import CRITERIA, OPTIONS, TRACKER, TRACKER_QUOTE, WARNINGS
from stackwise.advisor.facts import DEFAULTS, INPUT_KEYS, merge_inputs
from stackwise.advisor.profile import TeamProfile
from stackwise.advisor.rules import Criterion, Fact
from stackwise.advisor.scoring import DECISION_FACTS

README = Path(__file__).resolve().parents[2] / "README.md"
KNOWN_FACTS = {*INPUT_KEYS, "daily_image_build_minutes", *DECISION_FACTS}
ALL = [(decision, c) for decision, rows in CRITERIA.items() for c in rows]


def _readme_section() -> str:
    text = README.read_text()
    start = text.index("## Choosing a stack: `stackwise advise`")
    return text[start : text.index("\n## ", start + 1)]


def test_ids_are_unique_and_name_their_option() -> None:
    ids = [c.id for _, c in ALL]
    assert len(ids) == len(set(ids))
    for decision, c in ALL:
        assert c.favours in OPTIONS[decision], c.id
        assert c.id.split(".")[0] == c.favours, c.id
        assert isinstance(c.weight, int) and c.weight > 0, c.id


def test_conditions_read_known_facts_and_decisions_only_read_earlier_ones() -> None:
    for decision, c in ALL:
        for condition in c.conditions():
            assert condition.fact in KNOWN_FACTS, (c.id, condition.fact)
            if decision == "orchestrator":  # decided first: cannot depend on any decision
                assert condition.fact not in DECISION_FACTS, c.id
            if decision == "compute":
                assert condition.fact not in ("compute", "runs_in_images"), c.id
    for rule in WARNINGS:
        assert all(cond.fact in KNOWN_FACTS for cond in rule.when), rule.id


def test_each_option_has_an_unconditional_baseline_only_when_it_is_the_simplest() -> None:
    for decision, rows in CRITERIA.items():
        baselines = [c for c in rows if not c.when]
        assert [c.favours for c in baselines] == [OPTIONS[decision][0]]


def test_profile_keys_inputs_and_defaults_agree() -> None:
    flat: list[str] = []
    for key in TeamProfile.model_fields:
        if key == "distributed_training":
            flat += ["distributed_training.nodes", "distributed_training.gpus_per_node"]
        else:
            flat.append(key)
    assert flat == list(INPUT_KEYS) == list(DEFAULTS)


@pytest.mark.parametrize(("decision", "criterion"), ALL, ids=[c.id for _, c in ALL])
def test_readme_documents_the_row_with_its_weight_and_quote(
    decision: str, criterion: Criterion
) -> None:
    rows = [
        line for line in _readme_section().splitlines() if line.startswith(f"| `{criterion.id}` |")
    ]
    assert len(rows) == 1, f"README has no single row for {criterion.id}"
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1] == criterion.favours
    assert cells[2] == str(criterion.weight)
    assert f'"{criterion.quote}"' in rows[0]


def test_quotes_are_whole_phrases_and_mlflow_is_always_the_tracker() -> None:
    for _, c in ALL:
        assert c.quote == c.quote.strip() and len(c.quote.split()) >= 4, c.id
        assert not re.search(r"\s{2,}", c.quote), c.id
    assert TRACKER == "mlflow"
    assert "regardless of orchestration choice" in TRACKER_QUOTE
    assert TRACKER_QUOTE in " ".join(_readme_section().split())


def test_every_warning_renders_with_default_facts() -> None:
    facts = dict(merge_inputs(None, None).facts)
    facts.update(
        orchestrator=Fact("kubeflow", "decision"),
        compute=Fact("kubernetes", "decision"),
        runs_in_images=Fact(True, "decision"),
    )
    for rule in WARNINGS:
        message = rule.render(facts)
        assert "{" not in message and len(message) > 40, rule.id
