"""What the embedded orchestrator now computes once or writes together (issue 19) still
follows every change: the environment's secrets, a step's options, its version after a code
change, a pipeline reference after `forget`, and the state store's held connection after a
failed write or a fork."""

from __future__ import annotations

import os
import sqlite3
import textwrap
from pathlib import Path

import pytest

from stackwise.authoring import loader
from stackwise.authoring.step import StepOptions
from stackwise.bundles import load_pipeline_ref, portable_ref
from stackwise.caching import CacheEntry
from stackwise.config import StackConfig
from stackwise.orchestrators.base import RunRecord, StepRecord
from stackwise.orchestrators.local import LocalOrchestrator
from stackwise.orchestrators.local.executor import step_version
from stackwise.orchestrators.local.state import StateStore
from stackwise.tracking.redaction import secret_values

SOURCE = """
import stackwise as sw

@sw.step
def one() -> int:
    return {value}

@sw.pipeline
def pipe() -> None:
    one()
"""

CHAIN = textwrap.dedent(
    """
    import stackwise as sw

    @sw.step
    def first() -> int:
        return 1

    @sw.step
    def second(x: int) -> int:
        return x + 1

    @sw.pipeline
    def chain() -> None:
        second(first())
    """
)


def test_secrets_of_the_environment_follow_every_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOTPATH_API_TOKEN", raising=False)
    assert "s3cr3t-value" not in secret_values()
    monkeypatch.setenv("HOTPATH_API_TOKEN", "s3cr3t-value")
    assert "s3cr3t-value" in secret_values()
    monkeypatch.setenv("HOTPATH_API_TOKEN", "an0ther-value")
    assert "an0ther-value" in secret_values() and "s3cr3t-value" not in secret_values()
    monkeypatch.delenv("HOTPATH_API_TOKEN")
    assert "an0ther-value" not in secret_values()


def test_options_as_data_are_fresh_dicts_each_time() -> None:
    options = StepOptions(tags={"team": "a"})
    first = options.to_dict()
    first["tags"]["team"] = "changed"
    first["resources"]["cpu"] = 99
    first["timeout_s"] = 1
    assert options.to_dict() == StepOptions(tags={"team": "a"}).to_dict()
    assert options.to_dict()["tags"] == {"team": "a"}


def test_a_changed_step_gets_a_new_version_and_ref_after_forget(project: Path) -> None:
    path = project / "flow.py"
    path.write_text(textwrap.dedent(SOURCE.format(value=1)))
    ref = portable_ref("flow.py:pipe", project)
    before = load_pipeline_ref(ref)
    version = step_version(before, "one")
    assert load_pipeline_ref(ref) is before and step_version(before, "one") == version
    path.write_text(textwrap.dedent(SOURCE.format(value=2)))
    loader.forget()
    after = load_pipeline_ref(ref)
    assert after is not before
    assert step_version(after, "one") != version
    assert after.nodes["one"].definition.fn() == 2


def _store_with_run(project: Path, *steps: str) -> tuple[StateStore, RunRecord]:
    """A state store in `project` holding one RUNNING run "r1" of `steps`; its connection is
    open from here."""
    store = StateStore(f"sqlite:///{project / 'state.db'}", project)
    run = RunRecord(run_id="r1", pipeline="p", pipeline_ref="p.py:p", pipeline_version="v",
                    params={}, created_at=0.0, status="RUNNING", artifact_root="art",
                    steps={name: StepRecord(name) for name in steps})  # fmt: skip
    store.create_run(run, list(steps))
    return store, run


def test_the_held_connection_recovers_from_a_failed_write(project: Path) -> None:
    store, run = _store_with_run(project, "a")
    with pytest.raises(Exception, match="UNIQUE"):
        store.create_run(run, ["a"])  # the same run twice: the transaction fails whole
    record = StepRecord("a", status="SUCCEEDED", attempt=1, code_version="x")
    store.finish_step("r1", record)
    store.update_run("r1", status="SUCCEEDED")
    again = store.get_run("r1")
    assert again.status == "SUCCEEDED"
    assert again.steps["a"].status == "SUCCEEDED" and again.steps["a"].code_version == "x"
    with sqlite3.connect(project / "state.db") as conn:  # committed, seen by any reader
        assert conn.execute("select count(*) from stackwise_steps").fetchone() == (1,)


def test_a_forked_child_writes_on_a_connection_of_its_own(project: Path) -> None:
    store, _ = _store_with_run(project, "a", "b")
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            store.finish_step("r1", StepRecord("b", status="SUCCEEDED", attempt=1))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.finish_step("r1", StepRecord("a", status="SUCCEEDED", attempt=1))
    steps = store.get_run("r1").steps
    assert steps["a"].status == steps["b"].status == "SUCCEEDED"


def test_a_run_records_every_step_once_it_ends(project: Path) -> None:
    """Outcomes are written with the next turn of the loop: none may be left unwritten."""
    (project / "chain.py").write_text(CHAIN)
    orchestrator = LocalOrchestrator(StackConfig(base_dir=project, tracking=False))
    record = orchestrator.run(loader.load_pipeline(f"{project / 'chain.py'}:chain"))
    stored = orchestrator.get_run(record.run_id)
    assert stored.status == "SUCCEEDED"
    assert {n: s.status for n, s in stored.steps.items()} == {
        "first": "SUCCEEDED", "second": "SUCCEEDED"
    }  # fmt: skip
    assert all(s.code_version and s.outputs for s in stored.steps.values())


def _entry(run_id: str, key: str) -> CacheEntry:
    return CacheEntry(key=key, pipeline="p", step="a", outputs={}, run_id=run_id)


def test_deferred_cache_entries_commit_with_their_runs_next_write(project: Path) -> None:
    store, _ = _store_with_run(project, "a")
    store.defer_cache("r1")
    store.cache_record(_entry("r1", "k1"))
    store.cache_record(_entry("other-run", "k2"))  # not deferred: written at once
    assert store.cache_lookup("k1") is None and store.cache_lookup("k2") is not None

    store.finish_step("r1", StepRecord("a", status="SUCCEEDED", attempt=1))
    assert store.cache_lookup("k1") is not None  # in the same transaction as the outcome
    store.cache_record(_entry("r1", "k3"))
    store.undefer_cache("r1")  # what still waits is written when deferring stops
    assert store.cache_lookup("k3") is not None
    store.cache_record(_entry("r1", "k4"))
    assert store.cache_lookup("k4") is not None


def test_an_untracked_run_leaves_a_cache_entry_for_every_step(project: Path) -> None:
    (project / "chain.py").write_text(CHAIN)
    orchestrator = LocalOrchestrator(StackConfig(base_dir=project, tracking=False))
    pipeline = loader.load_pipeline(f"{project / 'chain.py'}:chain")
    orchestrator.run(pipeline)
    again = orchestrator.run(pipeline)
    assert {n: s.cached for n, s in orchestrator.get_run(again.run_id).steps.items()} == {
        "first": True, "second": True
    }  # fmt: skip
