"""The step cache of the local orchestrator: keyed by step code, options and input contents;
hits still get a "(cached)" child run in MLflow; missing artifacts mean a miss, not an error."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orch_support import all_runs, by_name, children_of, lines, parse_json, run_cli
from tests.support import path_of

import stackwise
from stackwise.artifacts.store import ArtifactRef, ArtifactStore
from stackwise.authoring import loader
from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator, RunRecord

WritePipeline = Callable[..., str]

CHAIN = """
    import pathlib
    import time

    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent


    def _mark(name):
        with (HERE / "executions.log").open("a") as fh:
            fh.write(name + "\\n")


    @step
    def a(n: int) -> list:
        _mark("a")
        return list(range(n))


    @step
    def b(xs: list, scale: float) -> float:
        _mark("b")
        time.sleep(1.0)
        return sum(xs) * scale


    @step
    def c(total: float) -> dict:
        _mark("c")
        return {"total": total}


    @step(cache=False)
    def stamp(total: float) -> float:
        _mark("stamp")
        return time.time()


    @pipeline
    def pipe(n: int = 5, scale: float = 1.0):
        total = b(a(n), scale)
        c(total)
        stamp(total)
"""


def _executions(project: Path) -> list[str]:
    return lines(project / "executions.log")


def _value(stack: StackConfig, run: RunRecord, step: str) -> Any:
    ref = ArtifactRef.from_dict(run.steps[step].outputs["output"])
    return ArtifactStore(stack.artifact_store_resolved).get(ref)


def _cached(run: RunRecord) -> dict[str, bool]:
    return {name: s.cached for name, s in run.steps.items()}


def test_second_run_is_served_from_cache(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    pipeline = stackwise.load_pipeline(write_pipeline(CHAIN))
    orchestrator = LocalOrchestrator(stack)
    first = orchestrator.run(pipeline)
    executed = _executions(project)

    second = orchestrator.run(pipeline)

    assert first.status == second.status == "SUCCEEDED"
    assert sorted(executed) == ["a", "b", "c", "stamp"]
    assert _cached(first) == {"a": False, "b": False, "c": False, "stamp": False}
    assert _cached(second) == {"a": True, "b": True, "c": True, "stamp": False}
    assert sorted(_executions(project)) == sorted(executed + ["stamp"])
    for name in ("a", "b", "c"):
        assert second.steps[name].outputs == first.steps[name].outputs
    assert second.steps["stamp"].cache_key is None
    assert _value(stack, second, "c") == {"total": 10.0}

    runs = all_runs(second.tracking_uri or "", second.experiment_id or "")
    assert not [r for r in runs if r.info.status != "FINISHED"]
    first_children = by_name(children_of(runs, first.mlflow_run_id or ""))
    children = by_name(children_of(runs, second.mlflow_run_id or ""))
    assert set(children) == {"a (cached)", "b (cached)", "c (cached)", "stamp"}
    for name in ("a", "b", "c"):
        child = children[f"{name} (cached)"]
        assert child.info.run_id == second.steps[name].mlflow_run_id
        assert child.data.tags["stackwise.cached"] == "true"
        assert child.data.tags["stackwise.cached_from"] == first_children[name].info.run_id
        out = first.steps[name].outputs["output"]
        assert child.data.tags["stackwise.output.output"] == out.uri
    assert "stackwise.cached" not in children["stamp"].data.tags


def test_changed_param_reruns_only_affected_steps(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    pipeline = stackwise.load_pipeline(write_pipeline(CHAIN))
    orchestrator = LocalOrchestrator(stack)
    orchestrator.run(pipeline, {"scale": 1.0})
    (project / "executions.log").unlink()

    second = orchestrator.run(pipeline, {"scale": 2.0})

    assert second.status == "SUCCEEDED", second.error
    assert _cached(second) == {"a": True, "b": False, "c": False, "stamp": False}
    assert sorted(_executions(project)) == ["b", "c", "stamp"]
    assert _value(stack, second, "c") == {"total": 20.0}


def test_use_cache_false_reruns_everything(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    pipeline = stackwise.load_pipeline(write_pipeline(CHAIN))
    orchestrator = LocalOrchestrator(stack)
    orchestrator.run(pipeline)

    second = orchestrator.run(pipeline, use_cache=False)

    assert second.status == "SUCCEEDED", second.error
    assert not any(_cached(second).values())
    assert sorted(_executions(project)) == sorted(["a", "b", "c", "stamp"] * 2)
    # the rerun refreshed the cache, so a third run hits it again
    third = orchestrator.run(pipeline)
    assert _cached(third) == {"a": True, "b": True, "c": True, "stamp": False}


def _rewrite(ref: str, old: str, new: str) -> None:
    path = Path(ref.rpartition(":")[0])
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new))


def test_editing_step_code_in_process_is_a_cache_miss(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(CHAIN)
    orchestrator = LocalOrchestrator(stack)
    first = orchestrator.run(stackwise.load_pipeline(ref))
    assert _value(stack, first, "b") == 10.0

    _rewrite(ref, "return sum(xs) * scale", "return sum(xs) * scale + 1000.0")
    loader.forget()
    edited = stackwise.load_pipeline(ref)
    second = orchestrator.run(edited)

    assert second.status == "SUCCEEDED", second.error
    assert edited.version != first.pipeline_version
    assert second.steps["b"].cached is False
    assert _value(stack, second, "b") == 1010.0
    assert _value(stack, second, "c") == {"total": 1010.0}


def test_editing_step_code_between_cli_runs_is_a_cache_miss(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    ref = write_pipeline(CHAIN)
    first = LocalOrchestrator(stack).run(stackwise.load_pipeline(ref))
    assert first.status == "SUCCEEDED"
    _rewrite(ref, "return sum(xs) * scale", "return sum(xs) * scale + 1000.0")

    result = run_cli(project, "run", ref, "--json")

    assert result.returncode == 0, result.stderr
    data = parse_json(result.stdout)
    steps = {s["name"]: s for s in data["steps"]}
    assert steps["b"]["cached"] is False
    assert steps["c"]["cached"] is False
    assert data["pipeline_version"] != first.pipeline_version
    assert _executions(project).count("b") == 2


def test_deleted_artifacts_are_a_cache_miss_not_an_error(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    pipeline = stackwise.load_pipeline(write_pipeline(CHAIN))
    orchestrator = LocalOrchestrator(stack)
    first = orchestrator.run(pipeline)

    # only a's output gone: a reruns (same content), b still hits (same input digest)
    path_of(first.steps["a"].outputs["output"].uri).unlink()
    second = orchestrator.run(pipeline)
    assert second.status == "SUCCEEDED", second.error
    assert _cached(second) == {"a": False, "b": True, "c": True, "stamp": False}
    assert path_of(first.steps["a"].outputs["output"].uri).exists()

    # the whole artifact store gone: everything reruns
    shutil.rmtree(path_of(stack.artifact_store_resolved))
    third = orchestrator.run(pipeline)
    assert third.status == "SUCCEEDED", third.error
    assert not any(_cached(third).values())
    assert _value(stack, third, "c") == {"total": 10.0}
    assert _executions(project).count("b") == 2


def test_the_cache_can_live_in_the_artifact_store(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    """`cache: artifacts`: what a compiled pipeline on another orchestrator has; the state
    store then holds no cache entry."""
    import sqlite3

    stack = stack.model_copy(update={"cache": "artifacts"})
    pipeline = stackwise.load_pipeline(write_pipeline(CHAIN))
    first = LocalOrchestrator(stack).run(pipeline)
    second = LocalOrchestrator(stack).run(pipeline)
    assert first.status == second.status == "SUCCEEDED"
    assert _cached(second) == {"a": True, "b": True, "c": True, "stamp": False}
    entries = list(path_of(stack.artifact_store_resolved).glob("cache/*/*.json"))
    assert len(entries) == 3
    db = Path(stack.state_store_resolved.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM stackwise_cache").fetchone() == (0,)
