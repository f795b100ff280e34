"""What runs inside an Airflow task: one step through the step runner, or closing the run.

A step task builds the `StepInvocation` from the DAG's spec and the Airflow context (logical
date and data interval, the run's params, the try number) and calls `stackwise.runner.run_step`
in the task's own process: Airflow already gives every task a process, its execution timeout
and termination reach the step as they would any Python code, and the runner closes the
step's MLflow run on every way out. Inputs are resolved by the runner through the artifact
store; the task returns (to XCom) only the references of its outputs.

The pipeline run id is derived from the DAG and the logical interval
(`airflow-<dag_id>-<start>`), not from Airflow's run id alone (backfills and clears reuse or
rename those): all attempts and all tasks of one interval share one MLflow parent run. A run
without a data interval (a manual run of an unscheduled pipeline, or one triggered without a
logical date) is keyed on Airflow's run id.

A failure the runner calls retryable raises `AirflowException` (Airflow retries while retries
remain); one it does not (a bad invocation, a missing upstream output) raises
`AirflowFailException`, which fails the task without retries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from typing import Any

from stackwise.interval import Interval
from stackwise.orchestrators.airflow.spec import DagSpec

#: Secret parameters reach tasks only from the worker's environment (never the DAG or conf).
SECRET_ENV_PREFIX = "STACKWISE_PARAM_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:+@=-]")


def pipeline_run_id(dag_id: str, interval: Interval | None, airflow_run_id: str) -> str:
    """The stackwise run id of an Airflow DAG run (matches contract.NAME_PATTERN)."""
    if interval is not None:
        start = interval.start.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"airflow-{dag_id}-{start}"
    digest = hashlib.sha256(airflow_run_id.encode()).hexdigest()[:10]
    readable = _UNSAFE.sub("_", airflow_run_id)[:40]
    return f"airflow-{dag_id}-{readable}-{digest}"


def interval_from(spec: DagSpec, context: Any) -> Interval | None:
    """The run's data interval, when the pipeline has a schedule and Airflow gave one that is
    not empty (a manual run without a logical date has none)."""
    if spec.schedule is None:
        return None
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None or end <= start:
        return None
    # stackwise's logical date is the interval's start (as Airflow's for scheduled and backfill
    # runs; a manual run of a data-interval timetable has its trigger time instead).
    return Interval(_aware(start), _aware(start), _aware(end))


def params_from(spec: DagSpec, context: Any) -> dict[str, Any]:
    """The run's parameters: the DAG's Params (defaults overlaid with the run's conf), then the
    secret ones from `STACKWISE_PARAM_<NAME>` in this worker's environment. Raises
    ParameterError for a secret given in the run's conf (Airflow stores conf in clear)."""
    from stackwise.errors import ParameterError

    conf = _conf(context)
    given = [k for k in conf if k in spec.secret_params]
    if given:
        raise ParameterError(
            f"secret parameter {given[0]!r} was given in the DAG run's conf, which Airflow "
            f"stores in clear; set {SECRET_ENV_PREFIX}{given[0].upper()} in the workers' "
            "environment instead."
        )
    raw = context.get("params") or {}
    names = [p.name for p in spec.params]
    params = {name: raw[name] for name in names if name in raw}
    unknown = [k for k in conf if k not in names]
    if unknown:
        params[unknown[0]] = conf[unknown[0]]  # the runner refuses it, naming the known ones
    for name in spec.secret_params:
        value = os.environ.get(SECRET_ENV_PREFIX + name.upper())
        if value is not None:
            params[name] = value
    return params


def run_step_task(spec: DagSpec, step: str, context: Any) -> dict[str, Any]:
    """Run one attempt of `step`; returns {output: {uri, digest}} (the XCom value)."""
    from stackwise.bundles import load_pipeline_ref
    from stackwise.contract import CachePolicy
    from stackwise.errors import StackwiseError
    from stackwise.invocations import build_invocation
    from stackwise.runner import run_step

    try:
        interval = interval_from(spec, context)
        run_id = _run_id(spec, context, interval)
        pipeline = load_pipeline_ref(spec.pipeline_ref)
        inv = build_invocation(
            pipeline, step, ref=spec.pipeline_ref, run_id=run_id,
            params=params_from(spec, context), artifact_root=spec.artifact_root,
            interval=interval, attempt=_try_number(context),
            tracking=_tracking(spec, context, pipeline, run_id, interval),
            cache=CachePolicy(store="artifacts"), orchestrator="airflow",
            default_compute=spec.compute,
        )  # fmt: skip
    except StackwiseError as exc:
        _fail(f"{exc.headline}: {exc.message}", retry=False)
    inv = inv.model_copy(update={"compute": spec.compute})
    result = run_step(inv)
    if result.logs:
        print(result.logs)
    if result.status != "SUCCEEDED":
        _fail(f"step {step} {result.status}: {result.error or ''}".strip(),
              retry=result.retryable and result.status == "FAILED")  # fmt: skip
    return {name: {"uri": ref.uri, "digest": ref.digest} for name, ref in result.outputs.items()}


def close_run_task(spec: DagSpec, context: Any) -> str:
    """Close the pipeline run's MLflow parent (children left RUNNING closed too): FINISHED when
    every step task succeeded in this DAG run, FAILED otherwise; then fail this task (the DAG
    run's only leaf) when a step did not succeed, so that the DAG run fails too."""
    from stackwise.bundles import load_pipeline_ref
    from stackwise.tracking.layout import RunLayout, manifest_folder

    interval = interval_from(spec, context)
    run_id = _run_id(spec, context, interval)
    states = _step_states(spec, context)
    bad = {s: st for s, st in states.items() if st != "success"}
    status = "FAILED" if bad else "SUCCEEDED"
    if spec.tracking is not None:
        pipeline = load_pipeline_ref(spec.pipeline_ref)
        target = _tracking(spec, context, pipeline, run_id, interval)
        layout = RunLayout.for_target(target)
        opened = layout.open_parent(
            target, run_id, {}, pipeline=pipeline.name,
            source_folder=manifest_folder(pipeline.source_file),
        )  # fmt: skip
        layout.close_parent(opened, status, sweep=True)
    if bad:
        listed = ", ".join(f"{s} ({st})" for s, st in sorted(bad.items()))
        _fail(f"pipeline run {run_id} FAILED: steps that did not succeed: {listed}", retry=False)
    return status


def _step_states(spec: DagSpec, context: Any) -> dict[str, str]:
    """Each step task's state in this DAG run, asked of Airflow (not of the run index, which a
    rerun of the same interval shares with earlier runs)."""
    ti = context["ti"]
    dag_run = context["dag_run"]
    found = ti.get_task_states(dag_id=spec.dag_id, task_ids=spec.steps, run_ids=[dag_run.run_id])
    states: dict[str, Any] = found.get(dag_run.run_id, found) if isinstance(found, dict) else {}
    return {step: str(states.get(step) or "none") for step in spec.steps}


def _tracking(
    spec: DagSpec, context: Any, pipeline: Any, run_id: str, interval: Interval | None
) -> Any:
    from stackwise.invocations import tracking_target
    from stackwise.tracking import tags as T
    from stackwise.tracking.layout import PipelineRunInfo, manifest_folder

    if spec.tracking is None:
        return None
    extra = {T.AIRFLOW_DAG_ID: spec.dag_id, T.AIRFLOW_RUN_ID: context["dag_run"].run_id}
    info = PipelineRunInfo(
        pipeline=pipeline.name, version=pipeline.version, ref=str(spec.pipeline_ref),
        run_id=run_id, orchestrator="airflow", compute=spec.compute, interval=interval,
        source_folder=manifest_folder(pipeline.source_file), extra_tags={**spec.git, **extra},
    )  # fmt: skip
    return tracking_target(
        os.environ.get("MLFLOW_TRACKING_URI") or spec.tracking.uri, spec.tracking.experiment,
        info, artifact_location=spec.tracking.artifact_location,
    )  # fmt: skip


def _run_id(spec: DagSpec, context: Any, interval: Interval | None) -> str:
    return pipeline_run_id(spec.dag_id, interval, str(context["dag_run"].run_id))


def _conf(context: Any) -> dict[str, Any]:
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    return dict(conf)


def _try_number(context: Any) -> int:
    return max(1, int(getattr(context["ti"], "try_number", 1) or 1))


def _aware(moment: Any) -> dt.datetime:
    value = dt.datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    # pendulum's datetimes are datetime subclasses: keep a plain one
    return dt.datetime.fromtimestamp(value.timestamp(), tz=dt.UTC)


def _fail(message: str, *, retry: bool) -> Any:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    raise (AirflowException if retry else AirflowFailException)(message)
