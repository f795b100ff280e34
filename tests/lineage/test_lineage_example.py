"""Lineage of the shipped example, run twice in a fresh project (the second run changes only
`n_estimators`, so validate and features come from the cache): upstream from the model in
`staging` down to the raw partitions, downstream from one raw partition up to every model
version and alias, and every output format."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands
from stackwise.lineage.graph import LineageGraph, build_lineage
from stackwise.lineage.index import RunIndex
from stackwise.lineage.refs import resolve_ref

REPO = Path(__file__).resolve().parents[2]
REF = f"{REPO / 'examples/breast_cancer/pipeline.py'}:training"
MODEL = "breast_cancer_classifier"

load_commands()


@dataclasses.dataclass
class ExampleRuns:
    folder: Path
    client: MlflowClient
    first: dict[str, Any]
    second: dict[str, Any]

    def step(self, run: dict[str, Any], name: str) -> str:
        return str(next(s["mlflow_run_id"] for s in run["steps"] if s["name"] == name))

    def graph(self, ref: str, direction: Any = None) -> LineageGraph:
        index = RunIndex(self.client)
        return build_lineage(index, resolve_ref(index, ref), direction)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> ExampleRuns:
    folder = tmp_path_factory.mktemp("example")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    runs = []
    for extra in ([], ["-p", "n_estimators=60"]):
        proc = subprocess.run(
            [sys.executable, "-m", "stackwise", "run", REF, "--json", *extra],
            cwd=folder, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    uri = f"sqlite:///{folder / '.stackwise/mlflow.db'}"
    (folder / "stackwise.yaml").write_text(f"tracking_uri: {uri}\n")
    return ExampleRuns(folder, MlflowClient(uri), runs[0], runs[1])


@pytest.fixture(autouse=True)
def _no_tracking_uri_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlflow.set_tracking_uri` (called by any earlier in-process run) also exports
    MLFLOW_TRACKING_URI, which would override the example's stack file."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _reachable(graph: LineageGraph, start: str, end: str) -> bool:
    todo, seen = [start], {start}
    while todo:
        node = todo.pop()
        if node == end:
            return True
        for edge in graph.successors(node):
            if edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return False


def _staging(example: ExampleRuns) -> tuple[str, dict[str, Any]]:
    version = str(example.client.get_registered_model(MODEL).aliases["staging"])
    run_id = example.client.get_model_version(MODEL, version).tags["stackwise.run_id"]
    run = example.first if example.first["run_id"] == run_id else example.second
    return version, run


def test_upstream_from_the_staging_model_to_raw_partitions(example: ExampleRuns) -> None:
    version, run = _staging(example)
    graph = example.graph(f"models:/{MODEL}@staging")
    assert graph.direction == "upstream" and graph.root == f"alias:{MODEL}@staging"
    assert graph.node(f"version:{MODEL}/{version}").attrs["training_run_id"] == example.step(
        run, "train"
    )
    pipeline = graph.node(f"pipeline_run:{run['mlflow_run_id']}")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    assert pipeline.attrs["orchestrator"] == "local"
    assert pipeline.attrs["code_version"] == run["pipeline_version"]
    assert pipeline.attrs["git_commit"] == commit
    raw = graph.of_kind("raw_data")
    assert len(raw) == 30
    ingest = example.client.get_run(example.step(run, "ingest"))
    logged = {d.dataset.digest: d.dataset.source for d in ingest.inputs.dataset_inputs}
    assert {n.attrs["digest"]: n.attrs["source"] for n in raw} == logged
    assert all(n.attrs["source"].startswith("file://") for n in raw)
    for node in raw:  # every raw partition leads to the alias
        assert _reachable(graph, node.id, graph.root)
    features = {n.label.split(" ")[0] for n in graph.of_kind("dataset")}
    assert {"features.train", "validate.output", "ingest.output"} <= features
    train = f"run:{example.step(run, 'train')}"
    assert _reachable(graph, train, graph.root)
    assert _reachable(graph, f"data:{example.step(run, 'features')}:train", train)


def test_upstream_of_a_version_built_from_cached_steps(example: ExampleRuns) -> None:
    second = example.second
    cached = {s["name"] for s in second["steps"] if s["cached"]}
    assert {"validate", "features"} <= cached
    graph = example.graph(f"models:/{MODEL}/2")
    features = f"run:{example.step(second, 'features')}"
    origin = f"run:{example.step(example.first, 'features')}"
    assert any(e.source == origin and e.target == features and e.relation == "reused from cache"
               for e in graph.edges)  # fmt: skip
    # the cached step still reads this run's ingest output (same content, same artifact)
    assert _reachable(graph, f"run:{example.step(second, 'ingest')}", features)
    assert len(graph.of_kind("raw_data")) == 30


def test_downstream_from_one_raw_partition(example: ExampleRuns) -> None:
    ingest = example.client.get_run(example.step(example.first, "ingest"))
    partition = next(d.dataset for d in ingest.inputs.dataset_inputs
                     if d.dataset.name == "raw/dt=2026-10-15")  # fmt: skip
    graph = example.graph(partition.digest)
    assert graph.direction == "downstream" and graph.root == f"raw:{partition.digest}"
    versions = {n.attrs["version"] for n in graph.of_kind("model_version")}
    assert versions == {"1", "2"}
    held = {n.label for n in graph.of_kind("alias")}
    assert f"models:/{MODEL}@staging" in held
    for run in (example.first, example.second):
        for step in ("ingest", "train", "register"):
            assert f"run:{example.step(run, step)}" in {n.id for n in graph.nodes}
        assert _reachable(graph, graph.root, f"run:{example.step(run, 'register')}")
    assert {"features.train", "features.test"} <= {
        n.label.split(" ")[0] for n in graph.of_kind("dataset")
    }


def test_run_references(example: ExampleRuns) -> None:
    train = example.step(example.first, "train")
    both = example.graph(train)
    assert both.direction == "both" and both.root == f"run:{train}"
    assert both.of_kind("raw_data") and both.of_kind("model_version")
    pipeline = example.graph(example.first["run_id"], "upstream")
    assert pipeline.root == f"pipeline_run:{example.first['mlflow_run_id']}"
    assert len(pipeline.of_kind("raw_data")) == 30


def test_registered_version_carries_its_lineage(example: ExampleRuns) -> None:
    tags = example.client.get_model_version(MODEL, "1").tags
    first = example.first
    assert tags["stackwise.training_run_id"] == example.step(first, "train")
    assert tags["stackwise.pipeline_run_id"] == first["mlflow_run_id"]
    assert tags["stackwise.pipeline_version"] == first["pipeline_version"]
    datasets = json.loads(tags["stackwise.datasets"])
    assert len([d for d in datasets if d["kind"] == "raw"]) == 30
    assert "features.train" in {d["name"] for d in datasets if d["kind"] == "feature"}


def _cli(example: ExampleRuns, *args: str) -> tuple[int, str, str]:
    stack = str(example.folder / "stackwise.yaml")
    result = CliRunner().invoke(app, ["lineage", *args, "--stack", stack])
    return result.exit_code, result.stdout, result.stderr


def test_every_format(example: ExampleRuns, tmp_path: Path) -> None:
    ref = f"models:/{MODEL}@staging"
    code, tree, err = _cli(example, ref)
    assert code == 0, err
    assert tree.startswith(f"alias models:/{MODEL}@staging")
    assert "[registered] step run register" in tree and "[read] raw data raw/dt=" in tree
    code, text, _ = _cli(example, ref, "--format", "json")
    graph = LineageGraph.model_validate_json(text)
    assert graph == example.graph(ref)
    code, dot, _ = _cli(example, ref, "-f", "dot")
    assert dot.startswith("digraph lineage {") and dot.count(" -> ") == len(graph.edges)
    code, mermaid, _ = _cli(example, ref, "-f", "mermaid")
    assert mermaid.startswith("flowchart LR") and mermaid.count("-->|") == len(graph.edges)
    out = tmp_path / "lineage.html"
    code, _, err = _cli(example, ref, "-f", "html", "-o", str(out))
    page = out.read_text()
    assert code == 0 and "wrote html lineage" in err
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert page.count("<rect") == len(graph.nodes) and page.count("marker-end=") == len(graph.edges)
    code, down, _ = _cli(example, ref, "--downstream")
    assert code == 0 and down.count("\n") == 1  # an alias is where lineage ends


def test_bad_references_exit_2(example: ExampleRuns) -> None:
    code, _, err = _cli(example, "models:/nope@staging")
    assert code == 2 and "lineage error: models:/nope@staging" in err
    code, _, err = _cli(example, "0" * 32)
    assert code == 2 and "no MLflow run" in err
    code, _, err = _cli(example, "not a ref")
    assert code == 2 and "cannot read 'not a ref'" in err
    code, _, err = _cli(example, f"models:/{MODEL}/1", "--upstream", "--downstream")
    assert code == 2 and "exclude each other" in err
    code, _, err = _cli(example, f"models:/{MODEL}/1", "-f", "svg")
    assert code == 2 and "unknown format 'svg'" in err
