"""Values Kubeflow Pipelines or Kubernetes would reject are refused before anything is
written (no spec, no bundle), with one line naming the step or stack key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from kfp_support import STACK, write_project
from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands
from stackwise.orchestrators.kubeflow.validation import (
    cpu_quantity,
    is_image_reference,
    k8s_name,
    memory_problem,
)

load_commands()

SOURCE = '''
from typing import Any

import stackwise as sw


@sw.step({options})
def head(x: int) -> int:
    return x


@sw.step({tail_options})
def tail(y: int) -> int:
    return y


@sw.pipeline({pipeline_options})
def quoted(x: int = 1{params}) -> None:
    tail(head(x))
'''


def refuse(project: Path, stack: str = STACK, **parts: str) -> str:
    fields = {"options": "", "tail_options": "", "pipeline_options": "", "params": "", **parts}
    target, _ = write_project(project, SOURCE.format(**fields), stack)
    result = CliRunner().invoke(app, ["export", "kubeflow", target, "--out", "out/q.yaml",
                                      "--stack", str(project / "kfp.yaml")])  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert not (project / "out").exists() and not (project / ".stackwise/artifacts").exists()
    return " ".join(result.stderr.split())


@pytest.mark.parametrize(("options", "expected"), [
    ("resources=sw.Resources(memory='4 GB')", "step 'head': memory '4 GB' is not a quantity"),
    ("resources=sw.Resources(memory='1.5Gi')", "step 'head': memory '1.5Gi' is not a quantity"),
    ("resources=sw.Resources(memory='1K')", "step 'head': memory '1K' is not a quantity"),
    ("resources=sw.Resources(memory='0Mi')", "step 'head': memory '0Mi' asks for nothing"),
    ("resources=sw.Resources(cpu=0.0001)", "step 'head': cpu 0.0001 is not a CPU quantity"),
    ("resources=sw.Resources(gpu=1, gpu_type='NVIDIA Tesla T4')",
     "step 'head': accelerator type 'NVIDIA Tesla T4' is neither an extended resource name"),
    ("resources=sw.Resources(gpu=1, gpu_type='kubernetes.io/gpu')",
     "step 'head': accelerator type 'kubernetes.io/gpu' is not an extended resource name"),
    ("resources=sw.Resources(gpu=2, gpu_type='nvidia.com/')",
     "step 'head': accelerator type 'nvidia.com/' is not an extended resource name"),
    ("image='Registry.example.com/ML/Train:latest'",
     "step 'head': image 'Registry.example.com/ML/Train:latest' is not a valid image reference"),
    ("image='ml/train:bad tag'", "step 'head': image 'ml/train:bad tag' is not a valid image"),
    ("compute='ray'", "step 'head': compute 'ray' is not available on Kubeflow"),
    ("name='h' * 70", "step '" + "h" * 70 + "': its Kubernetes task name"),
    ("name='stackwise_close_run'", "step 'stackwise_close_run': the task name "
                                   "'stackwise-close-run' is used by stackwise"),
])  # fmt: skip
def test_a_step_value_kubeflow_would_reject_names_the_step(
    project: Path, options: str, expected: str
) -> None:
    message = refuse(project, options=options)
    assert message.startswith("invalid pipeline: kubeflow cannot take pipeline 'quoted': ")
    assert expected in message


def test_two_steps_that_become_the_same_task_name(project: Path) -> None:
    message = refuse(project, options="name='Fit_Model'", tail_options="name='fit-model'")
    assert "step 'fit-model' and step 'Fit_Model' both become task 'fit-model'" in message


@pytest.mark.parametrize(("extra", "expected"), [
    ("  namespace: Team_A\n", "kubeflow.namespace 'Team_A' is not a Kubernetes namespace"),
    ("  service_account: 'runner account'\n",
     "kubeflow.service_account 'runner account' is not a service account name"),
    ("  token_env: 'eyJhbGciOi-token'\n", "must be the NAME of an environment variable"),
    ("  gpu_label: 'bad label/'\n", "kubeflow.gpu_label 'bad label/' is not a label key"),
])  # fmt: skip
def test_a_stack_value_kubernetes_would_reject_names_the_key(
    project: Path, extra: str, expected: str
) -> None:
    assert expected in refuse(project, stack=STACK + extra)


@pytest.mark.parametrize(("stack", "expected"), [
    (STACK.replace("  node_selector: {cloud.google.com/gke-nodepool: gpu-pool}",
                   "  node_selector: {pool: 'gpu pool'}"),
     "kubeflow.node_selector 'pool': 'gpu pool' is not a Kubernetes label"),
    (STACK.replace("AWS_SECRET_ACCESS_KEY: {secret: s3-creds",
                   "'1AWS': {secret: S3_Creds"),
     "kubeflow.secrets '1AWS' is not an environment variable name"),
    (STACK.replace("{key: team, operator: Equal, value: a,", "{key: team, operator: Exists, "
                   "value: a,"), "kubeflow.tolerations[1]: operator Exists takes no value"),
    (STACK.replace("  image: registry.example.com/ml/stackwise-base:0123abcd\n", ""),
     "steps 'head', 'tail': no image: set kubeflow.image"),  # said once for both
    (STACK.replace("  host_local_stores: true\n", ""),
     "the artifact store file://"),
])  # fmt: skip
def test_stack_problems(project: Path, stack: str, expected: str) -> None:
    assert expected in refuse(project, stack=stack)


def test_a_host_local_store_says_what_workers_need(project: Path) -> None:
    message = refuse(project, stack=STACK.replace("  host_local_stores: true\n", ""))
    assert "use a store the workers reach (s3://" in message
    assert "the tracking store sqlite:///" in message
    assert "kubeflow.host_local_stores: true to run with kfp.local" in message


def test_parameters_kfp_cannot_take(project: Path) -> None:
    message = refuse(project, params=", *, api_token: str, blob: Any = None")
    assert "parameter 'blob' has type Any, which KFP cannot type" in message
    assert ("secret parameter 'api_token' has no default and no Kubernetes secret: add "
            "kubeflow.secrets.STACKWISE_PARAM_API_TOKEN") in message  # fmt: skip


def test_a_schedule_in_another_timezone(project: Path) -> None:
    message = refuse(project, pipeline_options="schedule=sw.Schedule('@daily', "
                     "start='2026-01-01', timezone='Europe/Amsterdam')")  # fmt: skip
    assert "schedule timezone 'Europe/Amsterdam': Kubeflow recurring runs follow" in message


def test_unknown_kubeflow_key_names_the_file_and_key(project: Path) -> None:
    message = refuse(project, stack=STACK + "  namepsace: x\n")
    assert message.startswith("invalid stack config: ")
    assert "unknown key 'kubeflow.namepsace'. Did you mean 'namespace'?" in message


def test_the_grammars() -> None:
    assert k8s_name("Fit_Model..v2") == "fit-model-v2"
    assert [cpu_quantity(c) for c in (2, 0.5, 1.25, 0.001)] == ["2", "500m", "1250m", "1m"]
    for good in ("512Mi", "4Gi", "1G", "100M", "2Ti", "1000"):
        assert memory_problem(good) is None, good
    for bad in ("4 GB", "-1Gi", "1.5Gi", "1k", "1K", "1e3", "Gi", "4gi"):
        assert memory_problem(bad) is not None, bad
    for good in ("python:3.11", "ubuntu", "ghcr.io/org/repo/img:v1.2_3",
                 "localhost:5000/a__b/c-d", "UPPER.io/x", "[::1]:5000/x", "x@sha256:" + "0" * 64):
        assert is_image_reference(good), good
    for bad in ("x/UPPER", "x:", ":tag", "x y", "x@sha256:abc", "-x", "x:" + "t" * 129,
                "a" * 256 + ":v", "x\n:y"):
        assert not is_image_reference(bad), bad
