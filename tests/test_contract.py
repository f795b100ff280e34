"""The invocation contract: StepInvocation v1, its published schema, version refusal, and the
runner's import footprint."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stackwise.contract import (
    SCHEMA_VERSION,
    PipelineRef,
    StepInvocation,
    json_schema,
    parse_invocation,
)
from stackwise.errors import InvocationError

ROOT = Path(__file__).resolve().parents[1]


def _valid() -> dict:
    return StepInvocation(
        pipeline=PipelineRef(target="flows/daily.py", name="daily"),
        step="train",
        run_id="r1",
        artifact_root="file:///tmp/artifacts",
    ).model_dump(mode="json")


def test_published_schema_is_the_models_schema() -> None:
    published = json.loads((ROOT / "docs" / "invocation.schema.json").read_text())
    assert published == json.loads(json.dumps(json_schema())), (
        "docs/invocation.schema.json is stale: regenerate it with "
        "`python -m stackwise.contract > docs/invocation.schema.json`"
    )


def test_round_trip_keeps_every_field() -> None:
    data = _valid()
    data["inputs"] = {"x": {"step": "features", "output": "train"}}
    data["interval"] = {
        "logical_date": "2026-01-01T00:00:00+00:00",
        "data_interval_start": "2026-01-01T00:00:00+00:00",
        "data_interval_end": "2026-01-02T00:00:00+00:00",
    }
    data["resources"] = {"cpu": 2, "memory": "4Gi", "gpu": 1, "gpu_type": "nvidia-tesla-t4"}
    inv = parse_invocation(json.dumps(data))
    assert inv.inputs["x"].step == "features" and inv.inputs["x"].artifact is None
    assert inv.interval is not None and inv.interval.data_interval_end.day == 2
    assert inv.resources.gpu == 1
    assert parse_invocation(inv.model_dump_json()) == inv


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"schema_version": None}, "stackwise 0.1"),
        ({"schema_version": SCHEMA_VERSION + 1}, "upgrade stackwise where the step runs"),
        ({"schema_version": "one"}, "reads only 1"),
        ({"surprise": 1}, "surprise"),
        ({"attempt": 0}, "attempt"),
    ],
)
def test_other_versions_and_unknown_fields_are_refused(change: dict, says: str) -> None:
    data = {**_valid(), **change}
    if data.get("schema_version") is None:
        data.pop("schema_version")
    with pytest.raises(InvocationError, match=says):
        parse_invocation(json.dumps(data))


def test_a_stackwise_0_1_invocation_is_refused_by_the_runner_with_exit_2(tmp_path: Path) -> None:
    old = {"pipeline_ref": "/abs/pipe.py:pipe", "step": "s", "run_id": "r", "artifact_root": "/a"}
    file = tmp_path / "inv.json"
    file.write_text(json.dumps(old))
    proc = subprocess.run(
        [sys.executable, "-m", "stackwise.runner", "--invocation", str(file)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "stackwise 0.1" in proc.stderr and "Traceback" not in proc.stderr


def test_portability_of_references() -> None:
    assert PipelineRef(target="pkg.flows", name="daily").is_portable
    assert not PipelineRef(target="flows/daily.py", name="daily").is_portable
    bundle = {"uri": "memory://b.tar.gz", "digest": "0" * 64}
    assert PipelineRef(target="flows/daily.py", name="daily", bundle=bundle).is_portable
    assert not PipelineRef(target="/abs/daily.py", name="daily", bundle=bundle).is_portable


def test_importing_the_runner_pulls_in_no_orchestrator_scheduler_cli_or_state_store() -> None:
    code = (
        "import sys, stackwise.runner\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    forbidden = [
        m for m in out
        if m.startswith(("stackwise.orchestrators", "stackwise.scheduling", "stackwise.cli",
                         "stackwise.governance", "stackwise.advisor", "sqlalchemy"))
    ]  # fmt: skip
    assert "stackwise.runner" in out
    assert forbidden == []


def test_what_only_this_host_has_is_named_before_a_remote_submit() -> None:
    from stackwise.contract import CachePolicy, TrackingTarget, remote_problems

    local = StepInvocation(
        pipeline=PipelineRef(target="flows/daily.py", name="daily", root="file:///proj"),
        step="train", run_id="r1", artifact_root="file:///proj/.stackwise/artifacts",
        tracking=TrackingTarget(uri="sqlite:////proj/.stackwise/mlflow.db", experiment="e"),
        cache=CachePolicy(store="state", state_store="sqlite:////proj/.stackwise/state.db"),
    )  # fmt: skip
    problems = remote_problems(local)
    assert len(problems) == 4
    assert "stackwise bundle" in problems[0] and "s3://" in problems[1]
    assert "MLflow server" in problems[2] and "cache: artifacts" in problems[3]
    bundle = {"uri": "s3://b/bundles/x.tar.gz", "digest": "0" * 64}
    shared = local.model_copy(
        update={
            "pipeline": PipelineRef(target="flows/daily.py", name="daily", bundle=bundle),
            "artifact_root": "s3://b/artifacts",
            "tracking": TrackingTarget(uri="http://mlflow:5000", experiment="e"),
            "cache": CachePolicy(store="artifacts"),
        }
    )
    assert remote_problems(shared) == []
