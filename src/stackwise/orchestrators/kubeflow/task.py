"""What runs inside a KFP task: the compiled invocation completed with what only the run
knows, then the step runner.

At compile time each step's `StepInvocation` is written into the spec as a JSON string whose
run id is a placeholder. In the task, the run id is derived from the KFP run id, the pipeline's
parameters are read from the task's executor input (KFP hands it to every lightweight
component as `--executor_input JSON`, the inputs `param_<name>`), secret parameters from
`STACKWISE_PARAM_<NAME>` (mounted from Kubernetes secrets), and the attempt number from the
markers this module leaves in the artifact store (KFP retries a failed task in a fresh pod).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from stackwise.contract import NAME_PATTERN, StepInvocation, TrackingTarget
from stackwise.tracking import tags as T

PARAM_PREFIX = "param_"  # as component.PARAM_PREFIX (that module imports kfp)
#: The run id of a compiled invocation, replaced at run time.
PENDING_RUN_ID = "pending"


class StepFailed(RuntimeError):
    """The step did not succeed: the task fails, so KFP retries it or fails the run."""


def run_id_for(kfp_run_id: str) -> str:
    """The stackwise run id of a KFP run: `kfp-<KFP run id>`, reduced to the contract's
    NAME_PATTERN (anything else becomes '-')."""
    run_id = "kfp-" + re.sub(r"[^A-Za-z0-9_.:+@=-]", "-", kfp_run_id.strip())[:200]
    assert re.match(NAME_PATTERN, run_id)
    return run_id


def executor_params(argv: list[str] | None = None) -> dict[str, Any]:
    """The pipeline parameters in this task's executor input (`--executor_input` on the
    command line of every KFP lightweight component)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--executor_input", default="{}")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    values = json.loads(args.executor_input).get("inputs", {}).get("parameterValues", {})
    return {k[len(PARAM_PREFIX):]: v for k, v in values.items() if k.startswith(PARAM_PREFIX)}


def _run_tags(target: TrackingTarget, run_id: str, kfp_run_id: str) -> TrackingTarget:
    tags = {**target.run_tags, T.RUN_ID: run_id, T.KUBEFLOW_RUN_ID: kfp_run_id}
    return target.model_copy(update={"run_tags": tags})


def complete(inv: StepInvocation, kfp_run_id: str, values: dict[str, Any]) -> StepInvocation:
    """The compiled invocation with this run's id, parameters, attempt and tags."""
    from stackwise.bundles import load_pipeline_ref
    from stackwise.orchestrators.kubeflow.validation import kfp_type
    from stackwise.orchestrators.local.resumption import secrets_from_env

    pipeline = load_pipeline_ref(inv.pipeline)
    given: dict[str, Any] = {}
    for name, value in values.items():
        spec = pipeline.params.get(name)
        if spec is not None and kfp_type(spec)[0] is int and isinstance(value, float):
            value = int(value) if value.is_integer() else value  # JSON numbers come as floats
        given[name] = value
    params = pipeline.resolve_params({**given, **secrets_from_env(pipeline)})
    run_id = run_id_for(kfp_run_id)
    tracking = _run_tags(inv.tracking, run_id, kfp_run_id) if inv.tracking else None
    attempt = _next_attempt(inv.artifact_root, run_id, inv.step)
    return inv.model_copy(
        update={"run_id": run_id, "params": params, "attempt": attempt, "tracking": tracking}
    )


def _next_attempt(artifact_root: str, run_id: str, step: str) -> int:
    """1 + the attempts of this step already started in this run (KFP runs retries one after
    another, so a marker per attempt is enough)."""
    from stackwise.artifacts.store import ArtifactStore

    store = ArtifactStore(artifact_root)
    attempt = 1
    while store.exists_at(f"kubeflow/{run_id}/{step}/attempt-{attempt}"):
        attempt += 1
    store.write(f"kubeflow/{run_id}/{step}/attempt-{attempt}", b"")
    return attempt


def run_task(invocation: str, kfp_run_id: str, kfp_task: str) -> None:
    """Run the step; raise StepFailed (the task fails) when it does not succeed."""
    from stackwise.contract import parse_invocation
    from stackwise.runner import run_step
    from stackwise.tracking.redaction import masked_params

    inv = complete(parse_invocation(invocation), kfp_run_id, executor_params())
    print(f"stackwise: step {inv.step} of run {inv.run_id} (KFP run {kfp_run_id}, task "
          f"{kfp_task}), attempt {inv.attempt}, params {json.dumps(masked_params(inv.params))}",
          flush=True)  # fmt: skip
    result = run_step(inv)
    print(f"stackwise: step {inv.step} {result.status}"
          + (" (cached)" if result.cached else ""), flush=True)  # fmt: skip
    if result.status != "SUCCEEDED":
        raise StepFailed(f"step {inv.step} {result.status}: {result.error}")


def close_task(close: str, kfp_run_id: str, state: str) -> str:
    """Close the pipeline run's parent in MLflow (the exit handler); KILLED when KFP says the
    run was cancelled, else SUCCEEDED or FAILED by the steps' records."""
    from stackwise.contract import parse_run_close
    from stackwise.runner import close_run

    spec = parse_run_close(close)
    run_id = run_id_for(kfp_run_id)
    cancelled = state.upper() in ("CANCELLED", "CANCELED", "CANCELING")
    spec = spec.model_copy(
        update={"run_id": run_id, "tracking": _run_tags(spec.tracking, run_id, kfp_run_id),
                "status": "KILLED" if cancelled else None}
    )  # fmt: skip
    status = close_run(spec)
    print(f"stackwise: run {run_id} closed {status}", flush=True)
    return status
