"""What a foreign orchestrator hands the runner can be wrong in many ways; each is one clear
line, exit 2 and `retryable: false` (no orchestrator should retry it), never a traceback. And
the parent run is found by the run id even when the caller's tracking target names no tags."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from stackwise.bundles import build_bundle
from stackwise.contract import BundleRef, InputRef, PipelineRef, StepInvocation, TrackingTarget
from stackwise.runner import run_step
from stackwise.tracking import step_run

PIPE = """
import stackwise as sw

@sw.step
def first(n: int) -> int:
    print("first sees", n)
    return n + 1

@sw.step
def second(x: int) -> int:
    return x * 2

@sw.pipeline
def pipe(n: int = 1):
    second(first(n))
"""


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "flow.py").write_text(PIPE)
    return root


def _inv(proj: Path, **change: object) -> dict:
    inv = StepInvocation(
        pipeline=PipelineRef(target="flow.py", name="pipe", root=proj.as_uri()),
        step="first", run_id="r1", params={"n": 1},
        artifact_root=(proj / "artifacts").as_uri(),
    ).model_dump(mode="json")  # fmt: skip
    inv.update(change)
    return inv


def _runner(tmp_path: Path, payload: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stackwise.runner", *extra], input=payload, cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _bad_bundle(proj: Path) -> dict:
    ref, _, _ = build_bundle(proj, (proj / "artifacts").as_uri())
    wrong = BundleRef(uri=ref.uri, digest="e" * 64).model_dump()
    return {"target": "flow.py", "name": "pipe", "bundle": wrong}


CASES: dict[str, tuple[Callable[[Path], dict], str]] = {
    "unknown step": (lambda p: _inv(p, step="third"), "has no step 'third'"),
    "missing upstream output": (lambda p: _inv(p, step="second", inputs={
        "x": {"step": "first", "output": "output"}}), "run the upstream step first"),
    "missing input": (lambda p: _inv(p, step="second"), "has no input 'x'"),
    "wrong parameter type": (lambda p: _inv(p, params={"n": "abc"}), "expects int"),
    "unknown parameter": (lambda p: _inv(p, params={"n": 1, "zz": 2}), "unknown parameter"),
    "bundle digest": (lambda p: _inv(p, pipeline=_bad_bundle(p)), "does not match its digest"),
    "unknown protocol": (lambda p: _inv(p, artifact_root="nosuchproto://x/y"), "cannot open"),
    "missing pipeline file": (lambda p: _inv(p, pipeline={"target": "gone.py", "name": "pipe",
                                                          "root": p.as_uri()}), "does not exist"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_wrong_invocation_is_one_line_exit_2_and_not_retryable(
    case: str, proj: Path, tmp_path: Path
) -> None:
    make, says = CASES[case]
    proc = _runner(tmp_path, json.dumps(make(proj)), "--invocation", "-")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["retryable"] is False and result["status"] == "FAILED"
    assert says in result["error"]
    assert says in proc.stderr


@pytest.mark.parametrize(
    ("args", "payload", "says"),
    [
        (["--invocation", "/nonexistent/inv.json"], "", "cannot read"),
        (["--invocation", "-", "--result", "/nonexistent/dir/out.json"], "{}", "--result"),
        (["--invocation", "-"], json.dumps({"schema_version": True}), "schema_version"),
    ],
)
def test_unreadable_input_and_unwritable_result_fail_before_anything_runs(
    args: list[str], payload: str, says: str, proj: Path, tmp_path: Path
) -> None:
    if payload == "{}":
        payload = json.dumps(_inv(proj))
    proc = _runner(tmp_path, payload, *args)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert not (proj / "artifacts").exists()  # nothing ran


def test_a_run_id_cannot_climb_out_of_the_run_index(proj: Path, tmp_path: Path) -> None:
    proc = _runner(tmp_path, json.dumps(_inv(proj, run_id="../../escape")),
                   "--invocation", "-")  # fmt: skip
    assert proc.returncode == 2 and "run_id" in proc.stderr


def test_the_parent_is_found_by_run_id_without_any_tags_from_the_caller(
    proj: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    target = TrackingTarget(uri=uri, experiment="bare")
    first = run_step(StepInvocation.model_validate(_inv(proj, tracking=target.model_dump())))
    assert first.status == "SUCCEEDED", first.error
    step_run._parents.clear()  # as if the next step ran in another worker process
    upstream = {"x": InputRef(step="first", output="output").model_dump()}
    second_inv = _inv(proj, step="second", tracking=target.model_dump(), inputs=upstream)
    second = run_step(StepInvocation.model_validate(second_inv))
    assert second.status == "SUCCEEDED", second.error
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("bare")
    parents = client.search_runs(
        [experiment.experiment_id], "tags.`stackwise.run_kind` = 'pipeline'"
    )
    assert len(parents) == 1
    assert parents[0].data.tags["stackwise.run_id"] == "r1"
    assert parents[0].data.tags["stackwise.pipeline"] == "pipe"
