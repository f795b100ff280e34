"""What every generated DAG file calls: `build_dag(spec_file)` builds the `airflow.sdk.DAG` of a
pipeline from its `DagSpec` (plain JSON data).

One `StepOperator` per step (running `task.run_step_task`), with the pipeline's dependencies,
retries and timeouts; a final `stackwise_close` task with trigger rule ALL_DONE closes the
pipeline run's MLflow parent and fails when a step did not succeed, so that the DAG run fails
too (it is the only leaf). Data intervals come from `CronDataIntervalTimetable` /
`DeltaDataIntervalTimetable`, exactly the intervals `stackwise backfill` plans. Operators have
no templated fields: a `{{ ... }}` in a description or a default is never rendered by Jinja.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.sdk import (
    DAG,
    BaseOperator,
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    Param,
    TriggerRule,
)

from stackwise.orchestrators.airflow.spec import CLOSE_TASK, DagSpec, PodSpec, TaskSpec, read_spec


class StepOperator(BaseOperator):
    """Runs one step of a stackwise pipeline through the step runner (see `task`)."""

    template_fields = ()
    ui_color = "#d9ecf7"

    def __init__(self, *, spec_file: str, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_file = spec_file
        self.step = step

    def execute(self, context: Any) -> Any:
        from stackwise.orchestrators.airflow.task import close_run_task, run_step_task

        spec = read_spec(Path(self.spec_file))
        if self.step == CLOSE_TASK:
            return close_run_task(spec, context)
        return run_step_task(spec, self.step, context)


def build_dag(spec_file: Path) -> DAG:
    """The DAG described by `spec_file`. Raises ValueError naming the file when the spec is
    unreadable or of another version (Airflow shows it as the file's import error)."""
    spec = read_spec(spec_file)
    kwargs: dict[str, Any] = {}
    if spec.schedule is not None:
        s = spec.schedule
        kwargs.update(
            schedule=_timetable(spec),
            start_date=dt.datetime.fromisoformat(s.start),
            end_date=dt.datetime.fromisoformat(s.end) if s.end else None,
            catchup=s.catchup,
            max_active_runs=s.max_active_runs,
        )
    else:
        kwargs["schedule"] = None
    dag = DAG(
        spec.dag_id,
        description=spec.description or None,
        doc_md=_doc(spec.doc_md),
        tags=set(spec.tags),
        params={p.name: _param(p) for p in spec.params},
        is_paused_upon_creation=True,
        **kwargs,
    )
    operators: dict[str, BaseOperator] = {}
    for task in spec.tasks:
        operators[task.task_id] = StepOperator(
            task_id=task.task_id, spec_file=str(spec_file), step=task.task_id, dag=dag,
            **_task_kwargs(task, spec),
        )  # fmt: skip
    for task in spec.tasks:
        for upstream in task.upstream:
            operators[upstream] >> operators[task.task_id]
    close = StepOperator(
        task_id=CLOSE_TASK, spec_file=str(spec_file), step=CLOSE_TASK, dag=dag,
        trigger_rule=TriggerRule.ALL_DONE, retries=0,
        doc_md="Closes the pipeline run in MLflow; fails when a step did not succeed.",
    )  # fmt: skip
    for op in operators.values():
        op >> close
    return dag


def _timetable(spec: DagSpec) -> Any:
    s = spec.schedule
    assert s is not None
    if s.kind == "cron":
        assert s.cron is not None
        return CronDataIntervalTimetable(s.cron, timezone=s.timezone)
    assert s.every_s is not None
    return DeltaDataIntervalTimetable(dt.timedelta(seconds=s.every_s))


def _param(p: Any) -> Param:
    schema = dict(p.schema_)
    if p.required:
        return Param(description=p.description or None, **schema)
    return Param(p.default, description=p.description or None, **schema)


def _doc(text: str) -> str | None:
    """Airflow reads `doc_md` ending in '.md' as a file path: a docstring must stay text."""
    if not text:
        return None
    return text + "\n" if text.rstrip().endswith(".md") else text


def _task_kwargs(task: TaskSpec, spec: DagSpec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "retries": task.retries,
        "retry_delay": dt.timedelta(seconds=task.retry_delay_s),
        "retry_exponential_backoff": task.retry_backoff,
        "pool_slots": task.pool_slots,
    }
    if task.max_retry_delay_s is not None:
        kwargs["max_retry_delay"] = dt.timedelta(seconds=task.max_retry_delay_s)
    if task.timeout_s is not None:
        kwargs["execution_timeout"] = dt.timedelta(seconds=task.timeout_s)
    if task.pool:
        kwargs["pool"] = task.pool
    if task.queue:
        kwargs["queue"] = task.queue
    if task.doc:
        kwargs["doc_md"] = _doc(task.doc)
    if task.pod is not None and spec.executor == "kubernetes":
        kwargs["executor_config"] = {"pod_override": pod_override(task.pod)}
    return kwargs


def pod_override(pod: PodSpec) -> Any:
    """A `kubernetes.client.V1Pod` for the KubernetesExecutor's `pod_override`: the `base`
    container's requests/limits, node selector and tolerations. Raises ImportError naming the
    package when the Kubernetes client is not installed in the Airflow environment."""
    try:
        from kubernetes.client import models as k8s
    except ImportError as exc:
        raise ImportError(
            "executor: kubernetes needs the Kubernetes client where Airflow parses DAGs: "
            "pip install 'apache-airflow-providers-cncf-kubernetes' (or 'kubernetes')"
        ) from exc
    container = k8s.V1Container(
        name="base",
        resources=k8s.V1ResourceRequirements(
            requests=pod.requests or None, limits=pod.limits or None
        ),
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(namespace=pod.namespace) if pod.namespace else None,
        spec=k8s.V1PodSpec(
            containers=[container],
            node_selector=pod.node_selector or None,
            tolerations=[k8s.V1Toleration(**t) for t in pod.tolerations] or None,
        ),
    )
