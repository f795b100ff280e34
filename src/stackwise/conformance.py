"""Compare what two pipeline runs left in MLflow, field by field: the proof that a pipeline
run on another orchestrator (Airflow, Kubeflow, a foreign scheduler calling the runner) is
recorded exactly as a local run is.

`snapshot` reads one pipeline run (its parent and child runs, their params, metric keys,
artifact names, tag keys, dataset inputs, and the model versions registered from it);
`compare` lists every difference as one line. Tags whose presence depends on the orchestrator
or the process (`stackwise.tracking.tags.ORCHESTRATOR_SPECIFIC`) and values that differ by
nature between two runs (ids, times, artifact locations) are not compared.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stackwise.tracking import tags as T


@dataclasses.dataclass(frozen=True)
class StepSnapshot:
    """The successful (or last) attempt of one step, as MLflow holds it."""

    name: str
    status: str
    cached: bool
    params: dict[str, str]
    metric_keys: frozenset[str]
    artifacts: frozenset[str]
    tag_keys: frozenset[str]
    datasets: frozenset[tuple[str, str, str]]  # (name, digest, context)
    parent_ok: bool


@dataclasses.dataclass(frozen=True)
class RunSnapshot:
    parent_run_id: str
    pipeline: str
    params: dict[str, str]
    tag_keys: frozenset[str]
    artifacts: frozenset[str]
    steps: dict[str, StepSnapshot]
    attempts: dict[str, int]
    model_versions: dict[str, frozenset[str]]  # model name -> tag keys of its new version


def snapshot(tracking_uri: str, parent_run_id: str) -> RunSnapshot:
    """Read a pipeline run's records from the MLflow store at `tracking_uri`."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{T.MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'",
        max_results=5000,
    )
    by_step: dict[str, list[Any]] = {}
    for child in children:
        by_step.setdefault(child.data.tags.get(T.STEP, child.info.run_name), []).append(child)
    steps: dict[str, StepSnapshot] = {}
    attempts: dict[str, int] = {}
    for name, runs in by_step.items():
        attempts[name] = len(runs)
        ok = [r for r in runs if r.info.status == "FINISHED"]
        chosen = (ok or runs)[-1]
        steps[name] = _step(client, name, chosen, parent_run_id)
    return RunSnapshot(
        parent_run_id=parent_run_id,
        pipeline=parent.data.tags.get(T.PIPELINE, ""),
        params=dict(parent.data.params),
        tag_keys=_tag_keys(parent.data.tags),
        artifacts=_artifacts(client, parent_run_id),
        steps=steps,
        attempts=attempts,
        model_versions=_model_versions(client, {r.info.run_id for r in children}),
    )


def compare(expected: RunSnapshot, actual: RunSnapshot) -> list[str]:
    """Every difference between two pipeline runs' records, one line each (empty: conform)."""
    out: list[str] = []
    _diff(out, "pipeline", expected.pipeline, actual.pipeline)
    _diff_map(out, "pipeline run params", expected.params, actual.params)
    _diff_set(out, "pipeline run tag keys", expected.tag_keys, actual.tag_keys)
    _diff_set(out, "pipeline run artifacts", expected.artifacts, actual.artifacts)
    _diff_set(out, "steps", frozenset(expected.steps), frozenset(actual.steps))
    for name in sorted(set(expected.steps) & set(actual.steps)):
        e, a = expected.steps[name], actual.steps[name]
        where = f"step {name!r}"
        _diff(out, f"{where} status", e.status, a.status)
        _diff(out, f"{where} cached", e.cached, a.cached)
        _diff(out, f"{where} is a child of its pipeline run", e.parent_ok, a.parent_ok)
        _diff_map(out, f"{where} params", e.params, a.params)
        _diff_set(out, f"{where} metric keys", e.metric_keys, a.metric_keys)
        _diff_set(out, f"{where} artifacts", e.artifacts, a.artifacts)
        _diff_set(out, f"{where} tag keys", e.tag_keys, a.tag_keys)
        _diff_set(out, f"{where} dataset inputs", e.datasets, a.datasets)
    _diff_set(out, "registered models", frozenset(expected.model_versions),
              frozenset(actual.model_versions))  # fmt: skip
    for model in sorted(set(expected.model_versions) & set(actual.model_versions)):
        _diff_set(out, f"model {model!r} version tag keys", expected.model_versions[model],
                  actual.model_versions[model])  # fmt: skip
    return out


def _step(client: Any, name: str, run: Any, parent_run_id: str) -> StepSnapshot:
    datasets = frozenset(
        (d.dataset.name, d.dataset.digest, _context(d)) for d in (run.inputs.dataset_inputs or [])
    )
    return StepSnapshot(
        name=name,
        status=run.data.tags.get(T.STATUS, run.info.status),
        cached=run.data.tags.get(T.CACHED) == "true",
        params=dict(run.data.params),
        metric_keys=frozenset(run.data.metrics),
        artifacts=_artifacts(client, run.info.run_id) - _PROCESS_SPECIFIC_ARTIFACTS,
        tag_keys=_tag_keys(run.data.tags),
        datasets=datasets,
        parent_ok=run.data.tags.get(T.MLFLOW_PARENT_RUN_ID) == parent_run_id,
    )


#: A step run holds its own environment manifest only when its process's environment differs
#: from the one logged on the parent (another host, image or compute backend: a step on Ray
#: or Kubernetes does); otherwise its `stackwise.environment` tag points at the parent's copy.
#: Either way the tag is there, so only the artifact's presence is process-specific.
_PROCESS_SPECIFIC_ARTIFACTS = frozenset({"stackwise/environment.json"})


def _context(dataset_input: Any) -> str:
    for tag in dataset_input.tags or []:
        if tag.key == T.MLFLOW_DATASET_CONTEXT:
            return str(tag.value)
    return ""


def _tag_keys(tags: dict[str, str]) -> frozenset[str]:
    # MLflow adds its own bookkeeping tags (user, source type, log history) per process.
    mlflow_own = ("mlflow.user", "mlflow.source.type", "mlflow.log-model.history")
    return frozenset(k for k in tags if not T.is_orchestrator_specific(k) and k not in mlflow_own)


def _artifacts(client: Any, run_id: str, path: str | None = None) -> frozenset[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= _artifacts(client, run_id, item.path)
        else:
            found.add(item.path)
    return frozenset(found)


def _model_versions(client: Any, run_ids: set[str]) -> dict[str, frozenset[str]]:
    versions: dict[str, frozenset[str]] = {}
    for version in client.search_model_versions(max_results=10000):
        if version.run_id in run_ids:
            versions[version.name] = frozenset(version.tags)
    return versions


def _diff(out: list[str], what: str, expected: Any, actual: Any) -> None:
    if expected != actual:
        out.append(f"{what}: expected {expected!r}, got {actual!r}")


def _diff_map(out: list[str], what: str, expected: dict[str, str], actual: dict[str, str]) -> None:
    for key in sorted(set(expected) | set(actual)):
        if expected.get(key) != actual.get(key):
            out.append(f"{what} {key!r}: expected {expected.get(key)!r}, got {actual.get(key)!r}")


def _diff_set(out: list[str], what: str, expected: frozenset[Any], actual: frozenset[Any]) -> None:
    missing, extra = sorted(map(str, expected - actual)), sorted(map(str, actual - expected))
    if missing:
        out.append(f"{what} missing: {', '.join(missing)}")
    if extra:
        out.append(f"{what} unexpected: {', '.join(extra)}")
