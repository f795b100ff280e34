"""Two processes promoting the same alias at the same moment: the alias ends on the version of
the newest event, and every promotion is in the history."""

from __future__ import annotations

from gov_support import PipelineStore, promote_concurrently

from stackwise.governance import audit
from stackwise.governance.registry import Registry


def test_two_processes_promote_the_same_alias_at_once(store: PipelineStore) -> None:
    versions = [store.version() for _ in range(8)]
    a, b = versions[0::2], versions[1::2]
    outcomes = promote_concurrently(store.uri, "clf", a, b)
    assert len(outcomes) == 8 and all(o.changed and o.event is not None for o in outcomes)
    registry = Registry(store.client)
    history = audit.read(registry, "clf")
    assert sorted((e.actor, e.version) for e in history) == sorted(
        [("process-a", v) for v in a] + [("process-b", v) for v in b]
    )
    assert [e.id for e in history] == sorted({e.id for e in history})  # unique, ordered
    live = registry.holder("clf", "staging")
    assert live == audit.holders(history, "staging")[-1] == history[-1].version
    # a process whose promotion was overtaken says so, naming the event that won
    by_id = {e.id: e for e in history}
    for outcome in outcomes:
        if outcome.superseded_by is not None:
            assert outcome.superseded_by.id in by_id
            assert outcome.superseded_by.id > outcome.event.id  # type: ignore[union-attr]
