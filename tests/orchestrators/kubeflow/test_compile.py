"""`stackwise export kubeflow`: the compiled IR YAML loads back as a valid PipelineSpec and
holds what the steps and the stack declare; the KFP SDK's own loader reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from kfp_support import write_project
from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands
from stackwise.contract import RunClose, StepInvocation, parse_invocation

load_commands()


def export(project: Path, target: str, out: str = "out/quoted.yaml") -> Any:
    result = CliRunner().invoke(app, ["export", "kubeflow", target, "--out", out,
                                      "--stack", str(project / "kfp.yaml")])  # fmt: skip
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def compiled(project: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    target, _ = write_project(project)
    result = export(project, target)
    assert result.exit_code == 0, result.output
    spec = project / "out" / "quoted.yaml"
    assert f"wrote {Path('out/quoted.yaml')}" in result.stdout
    documents = list(yaml.safe_load_all(spec.read_text()))
    assert len(documents) == 2
    return documents[0], documents[1], spec


def _tasks(spec: dict[str, Any]) -> dict[str, Any]:
    dags = [spec["root"]] + [c for c in spec["components"].values() if "dag" in c]
    return {name: task for comp in dags for name, task in comp["dag"]["tasks"].items()}


def _invocation(task: dict[str, Any]) -> StepInvocation:
    return parse_invocation(task["inputs"]["parameters"]["invocation"]["runtimeValue"]["constant"])


def test_the_spec_loads_back_as_a_pipeline_spec_with_typed_parameters(
    compiled: tuple[dict[str, Any], dict[str, Any], Path],
) -> None:
    from kfp import components

    spec, platform, path = compiled
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    assert parsed.pipeline_info.name == "quoted"
    assert "'quotes', \"\"\"triple quotes\"\"\" and\n" in parsed.pipeline_info.description
    assert components.load_component_from_file(str(path)).name == "quoted"  # KFP's own loader

    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {k: v["parameterType"] for k, v in params.items()} == {
        "rows": "NUMBER_INTEGER", "rate": "NUMBER_DOUBLE", "label": "STRING",
        "mode": "STRING", "opts": "STRUCT", "flag": "BOOLEAN", "note": "STRING",
    }  # the secret db_password is no KFP parameter  # fmt: skip
    assert params["label"]["defaultValue"] == "it's \"quoted\"\n'''triple''' and\nnewline"
    assert params["rate"]["defaultValue"] == 1.0 and params["opts"]["defaultValue"] == {"a": [1, 2]}
    assert params["note"]["isOptional"] and "defaultValue" not in params["note"]
    assert "s3cr3t-default-value" not in path.read_text()  # secrets never travel in the spec


def test_each_step_is_a_task_running_its_invocation_in_order(
    compiled: tuple[dict[str, Any], dict[str, Any], Path], project: Path,
) -> None:
    spec, _, _ = compiled
    tasks = _tasks(spec)
    assert set(tasks) == {"prepare", "fit", "report", "stackwise-close-run", "exit-handler-1"}
    assert tasks["fit"]["dependentTasks"] == ["prepare"]
    assert tasks["report"]["dependentTasks"] == ["fit"]
    for step in ("prepare", "fit", "report"):
        inv = _invocation(tasks[step])
        assert inv.step == step and inv.run_id == "pending" and inv.orchestrator == "kubeflow"
        assert inv.pipeline.bundle is not None and inv.pipeline.target == "flows/quoted.py"
        assert Path(inv.pipeline.bundle.uri.removeprefix("file://")).is_file()
        assert inv.params == {} and inv.tracking is not None
        assert inv.tracking.run_tags["stackwise.orchestrator"] == "kubeflow"
        inputs = tasks[step]["inputs"]["parameters"]
        assert inputs["kfp_run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
        assert inputs["param_label"] == {"componentInputParameter": "pipelinechannel--label"}
        assert "param_db_password" not in inputs
    assert _invocation(tasks["fit"]).inputs["data"].step == "prepare"
    close = tasks["stackwise-close-run"]
    assert close["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    RunClose.model_validate_json(close["inputs"]["parameters"]["close"]["runtimeValue"]["constant"])


def test_resources_accelerators_retries_caching_and_images(
    compiled: tuple[dict[str, Any], dict[str, Any], Path],
) -> None:
    spec, _, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    prepare = executors["exec-prepare"]["container"]
    assert prepare["image"] == "registry.example.com/ml/stackwise-base:0123abcd"
    res = prepare["resources"]
    assert (res["resourceCpuRequest"], res["resourceCpuLimit"]) == ("500m", "500m")
    assert (res["resourceMemoryRequest"], res["resourceMemoryLimit"]) == ("3Gi", "3Gi")
    assert res["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert res["accelerator"]["resourceCount"] == "2"
    fit = executors["exec-fit"]["container"]
    assert fit["image"] == "registry.example.com:5000/ml/train@sha256:" + "a" * 64
    assert fit["resources"]["accelerator"]["resourceType"] == "amd.com/gpu"
    assert fit["resources"]["resourceCpuLimit"] == "2"
    assert {"name": "STACKWISE_IMAGE", "value": fit["image"]} in fit["env"]
    assert "install" not in " ".join(prepare["command"])  # nothing installed at run time
    tasks = _tasks(spec)
    assert tasks["prepare"]["retryPolicy"] == {
        "maxRetryCount": 3, "backoffDuration": "10s", "backoffFactor": 2.0,
        "backoffMaxDuration": "70s",
    }  # fmt: skip
    assert "retryPolicy" not in tasks["report"]
    # KFP's task cache is off everywhere; the stackwise cache decides (per step and stack).
    assert all(not t.get("cachingOptions", {}).get("enableCaching") for t in tasks.values())
    assert _invocation(tasks["fit"]).cache is not None
    assert _invocation(tasks["prepare"]).cache.read  # type: ignore[union-attr]


def test_node_selectors_tolerations_secrets_and_timeout(
    compiled: tuple[dict[str, Any], dict[str, Any], Path],
) -> None:
    _, platform, _ = compiled
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-prepare", "exec-fit", "exec-report",
                              "exec-stackwise-close-run"}  # fmt: skip
    prepare = executors["exec-prepare"]
    assert prepare["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-nodepool": "gpu-pool", "nvidia.com/gpu.product": "nvidia-tesla-t4",
    }  # the GPU model selects nodes by label  # fmt: skip
    assert executors["exec-fit"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-nodepool": "gpu-pool"}
    assert prepare["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "team", "operator": "Equal", "value": "a", "effect": "NoExecute",
         "tolerationSeconds": "60"},
    ]  # fmt: skip
    envs = {(k["envVar"], s["secretName"], k["secretKey"])
            for s in prepare["secretAsEnv"] for k in s["keyToEnv"]}  # fmt: skip
    assert envs == {("STACKWISE_PARAM_DB_PASSWORD", "db", "password"),
                    ("AWS_SECRET_ACCESS_KEY", "s3-creds", "secret_key")}  # fmt: skip
    assert prepare["activeDeadlineSeconds"] == "630"  # the step's timeout plus a grace period
    assert "activeDeadlineSeconds" not in executors["exec-report"]


def test_the_schedule_becomes_a_recurring_run_definition(
    compiled: tuple[dict[str, Any], dict[str, Any], Path],
) -> None:
    _, _, path = compiled
    recurring = yaml.safe_load(path.with_name("quoted.recurring.yaml").read_text())
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * 1-5",
                                                      "start_time": "2026-01-05T00:00:00Z"}}
    assert recurring["max_concurrency"] == 10  # 20 capped to KFP's limit
    assert recurring["no_catchup"] is True
    assert (recurring["namespace"], recurring["experiment"], recurring["service_account"]) == (
        "team-a", "nightly", "pipeline-runner")
    assert recurring["pipeline_spec_file"] == "quoted.yaml"


def test_a_periodic_schedule_is_an_interval(project: Path) -> None:
    from stackwise.orchestrators.kubeflow.recurring import definition
    from stackwise.orchestrators.kubeflow.settings import KubeflowSettings

    target, _ = write_project(project)
    from stackwise.authoring.loader import load_pipeline

    pipeline = load_pipeline(target)
    import stackwise as sw

    every = pipeline.replace(schedule=sw.Schedule(every="6h", start="2026-01-01", catchup=True,
                                                  end="2026-02-01"))  # fmt: skip
    data = definition(every, KubeflowSettings(), "p.yaml")
    assert data is not None and data["no_catchup"] is False
    assert data["trigger"] == {"periodic_schedule": {
        "interval_second": 21600, "start_time": "2026-01-01T00:00:00Z",
        "end_time": "2026-02-01T00:00:00Z"}}  # fmt: skip


def test_json_output_lists_the_files(project: Path) -> None:
    target, _ = write_project(project)
    result = CliRunner().invoke(app, ["export", "kubeflow", target, "--out", "out",
                                      "--stack", str(project / "kfp.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == ["out/quoted.yaml", "out/quoted.recurring.yaml"]
