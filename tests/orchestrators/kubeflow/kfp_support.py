"""Shared by the Kubeflow tests: a project folder with a pipeline that uses every option the
compiler translates, and a stack file pointing at the project's own stores."""

from __future__ import annotations

import textwrap
from pathlib import Path

from stackwise.config import StackConfig, load_stack

#: A pipeline using every step option and parameter kind the compiler translates; names and
#: defaults hold quotes, triple quotes and newlines.
PIPELINE = '''
from typing import Literal

import stackwise as sw


@sw.step(resources=sw.Resources(cpu=0.5, memory="3Gi", gpu=2, gpu_type="nvidia-tesla-t4"),
         retries=sw.Retries(count=3, backoff_s=10, factor=2), timeout=600)
def prepare(rows: int, label: str, db_password: str) -> list[int]:
    return list(range(rows))


@sw.step(resources=sw.Resources(cpu=2, gpu=1, gpu_type="amd.com/gpu"), cache=False,
         image="registry.example.com:5000/ml/train@sha256:" + "a" * 64)
def fit(data: list[int], rate: float, mode: str, opts: dict, flag: bool) -> int:
    return sum(data)


@sw.step
def report(total: int, note: str | None) -> str:
    return f"{total} {note}"


@sw.pipeline(schedule=sw.Schedule("30 2 * * 1-5", start="2026-01-05", max_active_runs=20))
def quoted(
    rows: int = 5,
    rate: float = 1,
    label: str = 'it\\'s "quoted"\\n\\'\\'\\'triple\\'\\'\\' and\\nnewline',
    mode: Literal["fast", "slow"] = "fast",
    opts: dict = {"a": [1, 2]},
    flag: bool = True,
    note: str | None = None,
    db_password: str = "s3cr3t-default-value",
) -> None:
    """A pipeline whose doc has 'quotes', \\"\\"\\"triple quotes\\"\\"\\" and
    a newline."""
    data = prepare(rows, label, db_password)
    total = fit(data, rate, mode, opts, flag)
    report(total, note)
'''

STACK = """\
tracking_uri: sqlite:///.stackwise/mlflow.db
artifact_store: .stackwise/artifacts
orchestrator: kubeflow
kubeflow:
  image: registry.example.com/ml/stackwise-base:0123abcd
  namespace: team-a
  service_account: pipeline-runner
  experiment: nightly
  host_local_stores: true
  node_selector: {cloud.google.com/gke-nodepool: gpu-pool}
  tolerations:
    - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
    - {key: team, operator: Equal, value: a, effect: NoExecute, toleration_seconds: 60}
  secrets:
    STACKWISE_PARAM_DB_PASSWORD: {secret: db, key: password}
    AWS_SECRET_ACCESS_KEY: {secret: s3-creds, key: secret_key}
"""


def write_project(root: Path, pipeline: str = PIPELINE, stack: str = STACK,
                  extra: str = "") -> tuple[str, StackConfig]:
    """The project under `root`; returns the pipeline TARGET and the loaded stack."""
    (root / "flows").mkdir(parents=True, exist_ok=True)
    (root / "flows" / "quoted.py").write_text(textwrap.dedent(pipeline))
    (root / "kfp.yaml").write_text(stack + extra)
    return str(root / "flows" / "quoted.py") + ":quoted", load_stack(root / "kfp.yaml")
