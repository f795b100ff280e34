"""Reproduce a registered model version from its lineage (`stackwise reproduce`).

Everything is read from MLflow: the version's lineage tags (`stackwise.pipeline_run_id`,
`stackwise.pipeline_version`, `stackwise.git_commit`; see `governance.registration`), and the
pipeline run they point at (its params, data interval tags, pipeline reference, environment
manifest `stackwise/environment.json`, and the raw dataset inputs of its steps, logged with
`stackwise.log_dataset`). Then:

1. `read_recipe` gathers what the rerun needs into a `Recipe`.
2. `check_recipe` verifies it is all still there: each raw dataset's source file exists and
   hashes to the recorded digest (`artifacts.hashing.dataset_digest`, the function
   `log_dataset` used); the pipeline loads from its reference and its code hash equals the
   recorded pipeline version. What cannot be verified (a non-file source, another git commit,
   package versions that moved) is listed as a note, not a failure.
3. `rerun` runs the pipeline again on the stack's orchestrator with the recorded parameters
   and data interval, cache off, every run tagged `stackwise.reproduces=models:/NAME/VERSION`
   (a reproduction registers a version but is never auto-promoted).
4. `compare_metrics` lists every step metric that differs by more than the tolerance.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from stackwise.errors import ReproduceError, StackwiseError
from stackwise.tracking import tags as T

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.config import StackConfig
    from stackwise.interval import Interval
    from stackwise.lineage.index import DatasetRef, RunIndex
    from stackwise.orchestrators.base import EventSink, RunRecord


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a model version was made from, as MLflow recorded it."""

    model_uri: str
    pipeline_run_id: str  # MLflow run id of the pipeline (parent) run
    stackwise_run_id: str
    pipeline: str
    pipeline_ref: str  # `target:name`, target relative to the project folder
    pipeline_version: str  # the code hash
    git_commit: str
    orchestrator: str
    params: dict[str, str]
    interval: Interval | None
    raw_datasets: tuple[DatasetRef, ...]
    metrics: dict[str, dict[str, float]]  # step -> metric -> value
    environment: dict[str, Any]  # the recorded manifest ({} when absent)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One result of `check_recipe`: `ok` False is a failure (reproduction refused)."""

    what: str
    ok: bool
    detail: str


def parse_model_ref(text: str) -> tuple[str, str]:
    """`models:/NAME/VERSION` -> (NAME, VERSION). Raises ReproduceError otherwise."""
    rest = text.strip().removeprefix("models:/")
    name, _, version = rest.rpartition("/")
    if not text.strip().startswith("models:/") or not name or not version.isdigit():
        raise ReproduceError(
            f"cannot read {text!r}: give models:/NAME/VERSION (a version number, not an "
            "alias; `stackwise models list` shows them)."
        )
    return name, version


def read_recipe(index: RunIndex, name: str, version: str) -> Recipe:
    """The recipe of model version `name`/`version`. Raises ReproduceError when the version
    does not exist or its lineage tags do not name a pipeline run that is still in MLflow."""
    from mlflow.exceptions import MlflowException

    uri = f"models:/{name}/{version}"
    try:
        mv = index.client.get_model_version(name, version)
    except MlflowException as exc:
        raise ReproduceError(
            f"{uri}: {exc.message}; check it with `stackwise models list`."
        ) from None
    parent_id = mv.tags.get(T.PIPELINE_RUN_ID, "")
    parent = index.get(parent_id) if parent_id else None
    if parent is None:
        raise ReproduceError(
            f"{uri} has no pipeline run in its lineage (tag {T.PIPELINE_RUN_ID} is "
            f"{parent_id or 'missing'}): only versions registered by `stackwise.register_model` "
            "in a pipeline step can be reproduced."
        )
    raw: dict[tuple[str, str], DatasetRef] = {}
    metrics: dict[str, dict[str, float]] = {}
    for run in index.step_runs(parent):
        source = index.source(run)
        metrics[run.step or run.name] = dict(source.metrics)
        for ds in index.datasets_of(run):
            if ds.is_raw:
                raw.setdefault((ds.name, ds.digest), ds)
    tags = parent.tags
    return Recipe(
        model_uri=uri,
        pipeline_run_id=parent.run_id,
        stackwise_run_id=tags.get(T.RUN_ID, ""),
        pipeline=tags.get(T.PIPELINE, ""),
        pipeline_ref=tags.get(T.PIPELINE_REF, ""),
        pipeline_version=tags.get(T.PIPELINE_VERSION, ""),
        git_commit=mv.tags.get(T.GIT_COMMIT, tags.get(T.MLFLOW_GIT_COMMIT, "")),
        orchestrator=tags.get(T.ORCHESTRATOR, ""),
        params=_params(index.client, parent.run_id),
        interval=_interval(tags),
        raw_datasets=tuple(sorted(raw.values(), key=lambda d: d.name)),
        metrics=metrics,
        environment=_environment(index.client, parent.run_id),
    )


def _params(client: Any, run_id: str) -> dict[str, str]:
    return dict(client.get_run(run_id).data.params)


def _interval(tags: dict[str, str]) -> Interval | None:
    from stackwise.interval import Interval

    start, end = tags.get(T.DATA_INTERVAL_START), tags.get(T.DATA_INTERVAL_END)
    if not start or not end:
        return None
    logical = tags.get(T.LOGICAL_DATE, start)
    return Interval(*(dt.datetime.fromisoformat(v) for v in (logical, start, end)))


def _environment(client: Any, run_id: str) -> dict[str, Any]:
    import tempfile

    from mlflow.exceptions import MlflowException

    from stackwise.tracking.layout import MANIFEST_PATH

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, MANIFEST_PATH, tmp)
        except (MlflowException, OSError):
            return {}
        data = json.loads(Path(path).read_text())
    return data if isinstance(data, dict) else {}


def load_recorded_pipeline(recipe: Recipe, stack: StackConfig) -> Pipeline:
    """The pipeline named by the recorded reference, from the stack's project folder."""
    from stackwise.authoring.loader import load_pipeline

    target, _, name = recipe.pipeline_ref.rpartition(":")
    if not target or not name:
        raise ReproduceError(f"{recipe.model_uri}: its pipeline run records no pipeline reference.")
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        target = str(path if path.is_absolute() else stack.base_dir / path)
    return load_pipeline(f"{target}:{name}")


def check_recipe(recipe: Recipe, stack: StackConfig) -> list[Finding]:
    """Verify that the data and code `recipe` needs are still there and unchanged."""
    findings = [_check_dataset(ds) for ds in recipe.raw_datasets]
    if not recipe.raw_datasets:
        findings.append(Finding("raw data", True, "the pipeline run logged no raw dataset"))
    try:
        pipeline = load_recorded_pipeline(recipe, stack)
    except StackwiseError as exc:
        findings.append(Finding(f"code {recipe.pipeline_ref}", False, f"missing: {exc.message}"))
    else:
        same = pipeline.version == recipe.pipeline_version
        detail = (f"pipeline version {recipe.pipeline_version} (code hash) matches" if same else
                  f"changed: recorded pipeline version {recipe.pipeline_version}, "
                  f"the code here is {pipeline.version}")  # fmt: skip
        findings.append(Finding(f"code {recipe.pipeline_ref}", same, detail))
    findings += _notes(recipe, stack)
    return findings


def _check_dataset(ds: DatasetRef) -> Finding:
    from stackwise.artifacts.hashing import dataset_digest

    what = f"raw dataset {ds.name}"
    url = urlparse(ds.source)
    if url.scheme not in ("file", ""):
        return Finding(what, True, f"not checked: source {ds.source} is not a local file")
    path = Path(unquote(url.path) if url.scheme == "file" else ds.source)
    if not path.is_file():
        return Finding(what, False, f"missing: {path} (recorded digest {ds.digest})")
    now = dataset_digest(path)
    if now != ds.digest:
        return Finding(what, False, f"digest mismatch: {path} was {ds.digest}, is now {now}")
    return Finding(what, True, f"digest {ds.digest} matches ({path})")


def _notes(recipe: Recipe, stack: StackConfig) -> list[Finding]:
    """What may explain a difference but does not stop a reproduction."""
    from stackwise.tracking.manifest import git_info, installed_packages

    notes = []
    head = git_info(str(stack.base_dir)).get("commit", "")
    if recipe.git_commit and head and head != recipe.git_commit:
        notes.append(Finding("git commit", True,
                             f"note: recorded {recipe.git_commit[:12]}, checkout is {head[:12]} "
                             "(the code hash above decides)"))  # fmt: skip
    recorded = recipe.environment.get("packages") or {}
    if isinstance(recorded, dict) and recorded:
        current = installed_packages()
        moved = sorted(k for k in recorded if current.get(k) != recorded[k])
        if moved:
            shown = ", ".join(f"{k} {recorded[k]} -> {current.get(k, 'absent')}"
                              for k in moved[:8])  # fmt: skip
            more = f" and {len(moved) - 8} more" if len(moved) > 8 else ""
            notes.append(Finding("environment", True, f"note: packages differ: {shown}{more}"))
        else:
            notes.append(Finding("environment", True, "packages match the recorded manifest"))
    return notes


def rerun(recipe: Recipe, stack: StackConfig, on_event: EventSink) -> RunRecord:
    """Run the recorded pipeline again on the stack's orchestrator with the recorded params
    and interval, cache off. Returns the finished run record (check `.status`)."""
    from stackwise.plugins import ORCHESTRATORS, resolve
    from stackwise.tracking.redaction import REDACTED

    pipeline = load_recorded_pipeline(recipe, stack)
    params = {k: v for k, v in recipe.params.items() if v != REDACTED and k in pipeline.params}
    tags = {T.REPRODUCES: recipe.model_uri}
    if stack.orchestrator in ORCHESTRATORS:
        orchestrator = resolve(ORCHESTRATORS, "orchestrator", stack.orchestrator)(stack)
        record: RunRecord = orchestrator.run(pipeline, params, use_cache=False,
                                             interval=recipe.interval, on_event=on_event,
                                             tags=tags)  # fmt: skip
        return record
    from stackwise.orchestrators.targets import check, follow, open_target

    target = open_target(stack, stack.orchestrator)
    check(target, pipeline)
    deployment = target.deploy(pipeline)
    run = target.trigger(deployment, pipeline.resolve_params(params), recipe.interval)
    return follow(target, deployment, run, on_event)


def new_metrics(stack: StackConfig, record: RunRecord) -> dict[str, dict[str, float]]:
    """Step -> metrics of a finished run, read back from MLflow."""
    from stackwise.lineage.index import RunIndex
    from stackwise.tracking.mlflow_tracker import tracker_for

    if not record.mlflow_run_id:
        return {s.name: dict(s.metrics) for s in record.steps.values()}
    index = RunIndex(tracker_for(stack.tracking_uri_resolved).client)
    parent = index.get(record.mlflow_run_id)
    if parent is None:
        return {}
    return {r.step or r.name: dict(r.metrics) for r in index.step_runs(parent)}


def compare_metrics(
    recorded: dict[str, dict[str, float]], new: dict[str, dict[str, float]], tolerance: float
) -> list[str]:
    """Every metric that is missing, new, or differs by more than `tolerance` (absolute;
    0 means exactly equal), one line each; empty when the reproduction matches."""
    out = []
    for step in sorted(set(recorded) | set(new)):
        old, now = recorded.get(step, {}), new.get(step, {})
        for key in sorted(set(old) | set(now)):
            if key not in now:
                out.append(f"{step}.{key}: recorded {old[key]!r}, missing in the reproduction")
            elif key not in old:
                out.append(f"{step}.{key}: not recorded, reproduction has {now[key]!r}")
            elif not _close(old[key], now[key], tolerance):
                diff = abs(now[key] - old[key])
                out.append(f"{step}.{key}: recorded {old[key]!r}, reproduced {now[key]!r} "
                           f"(off by {diff:.3g}, tolerance {tolerance:g})")  # fmt: skip
    return out


def _close(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return a == b or abs(a - b) <= tolerance
