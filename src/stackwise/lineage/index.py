"""Read-only access to the MLflow entities lineage is built from, fetched on demand and cached
for one query. Everything is derived from what the runner records (see README, "What lands in
MLflow"): `mlflow.parentRunId`, `stackwise.input.*` / `stackwise.output.*` tags, dataset
inputs and `stackwise.cached_from`. So lineage works for any orchestrator that runs steps
through the step runner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from stackwise.tracking import tags as T

#: Artifacts that hold a fitted model, as the artifact store names them.
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")
STACKWISE_ARTIFACT = "stackwise-artifact"


@dataclasses.dataclass(frozen=True)
class DatasetRef:
    name: str
    digest: str
    source: str
    source_type: str
    context: str

    @property
    def is_raw(self) -> bool:
        """Declared with `log_dataset` (a source outside stackwise), not a step's artifact."""
        return self.source_type != STACKWISE_ARTIFACT

    @property
    def producer_step(self) -> str | None:
        """Artifacts read as datasets are named `<step>.<output>` by the runner."""
        if self.is_raw or "." not in self.name:
            return None
        return self.name.rsplit(".", 1)[0]


@dataclasses.dataclass(frozen=True)
class RunSnapshot:
    run_id: str
    experiment_id: str
    name: str
    status: str
    start_ms: int
    end_ms: int | None
    tags: dict[str, str]
    metrics: dict[str, float]
    datasets: tuple[DatasetRef, ...]

    @property
    def parent_id(self) -> str | None:
        return self.tags.get(T.MLFLOW_PARENT_RUN_ID)

    @property
    def step(self) -> str | None:
        return self.tags.get(T.STEP)

    @property
    def cached_from(self) -> str | None:
        return self.tags.get(T.CACHED_FROM)

    @property
    def inputs(self) -> dict[str, str]:
        prefix = T.INPUT_PREFIX
        return {k[len(prefix) :]: v for k, v in self.tags.items() if k.startswith(prefix)}

    @property
    def outputs(self) -> dict[str, tuple[str, str]]:
        """Output name -> (artifact URI, sha256)."""
        prefix = T.OUTPUT_PREFIX
        out: dict[str, tuple[str, str]] = {}
        for key, uri in self.tags.items():
            if key.startswith(prefix) and not key.endswith(".digest"):
                name = key[len(prefix) :]
                out[name] = (uri, self.tags.get(f"{key}.digest", ""))
        return out


def _declared_producer(datasets: tuple[DatasetRef, ...], uri: str) -> str | None:
    """The step that produced `uri`, when it was read as a dataset: exact, unlike a URI match
    (two steps can produce identical content, hence the same URI)."""
    for ds in datasets:
        if ds.source == uri and ds.producer_step:
            return ds.producer_step
    return None


def snapshot(run: Any) -> RunSnapshot:
    datasets = []
    for item in run.inputs.dataset_inputs if run.inputs else []:
        context = next((t.value for t in item.tags if t.key == T.MLFLOW_DATASET_CONTEXT), "")
        d = item.dataset
        datasets.append(DatasetRef(d.name, d.digest, d.source, d.source_type, context))
    info = run.info
    return RunSnapshot(
        run_id=info.run_id,
        experiment_id=str(info.experiment_id),
        name=info.run_name or "",
        status=info.status,
        start_ms=int(info.start_time or 0),
        end_ms=int(info.end_time) if info.end_time else None,
        tags=dict(run.data.tags),
        metrics=dict(run.data.metrics),
        datasets=tuple(datasets),
    )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


class RunIndex:
    """One query's view of MLflow: runs by id, children by parent, producers and consumers of
    artifacts, and the model versions registered from a run."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._runs: dict[str, RunSnapshot | None] = {}
        self._children: dict[str, list[RunSnapshot]] = {}
        self._versions: dict[str, list[Any]] = {}

    # -- fetching ---------------------------------------------------------------------------
    def get(self, run_id: str) -> RunSnapshot | None:
        if run_id not in self._runs:
            from mlflow.exceptions import MlflowException

            try:
                self._runs[run_id] = snapshot(self.client.get_run(run_id))
            except MlflowException:
                self._runs[run_id] = None
        return self._runs[run_id]

    def search(self, experiment_ids: list[str], filter_string: str) -> list[RunSnapshot]:
        found = [
            snapshot(r) for r in self._pages(self.client.search_runs, experiment_ids, filter_string)
        ]
        for run in found:
            self._runs.setdefault(run.run_id, run)
        return found

    def _pages(self, fn: Callable[..., Any], experiment_ids: list[str], flt: str) -> Iterator[Any]:
        token = None
        while True:
            page = fn(experiment_ids, filter_string=flt, max_results=1000, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def experiment_ids(self) -> list[str]:
        ids, token = [], None
        while True:
            page = self.client.search_experiments(max_results=1000, page_token=token)
            ids += [str(e.experiment_id) for e in page]
            token = page.token
            if not token:
                return ids

    def pipeline_runs(self, limit: int = 100) -> list[RunSnapshot]:
        """The newest pipeline runs (parent runs, `stackwise.run_kind=pipeline`) of every
        experiment, whichever orchestrator ran them, newest first; at most `limit`."""
        flt = f"tags.`{T.RUN_KIND}` = {_quote(T.RUN_KIND_PIPELINE)}"
        page = self.client.search_runs(
            self.experiment_ids(), filter_string=flt, max_results=limit,
            order_by=["attributes.start_time DESC"],
        )  # fmt: skip
        found = [snapshot(r) for r in page]
        for run in found:
            self._runs.setdefault(run.run_id, run)
        return found

    def pipeline_run(self, stackwise_run_id: str) -> RunSnapshot | None:
        """The parent MLflow run of a stackwise pipeline run, in any experiment."""
        flt = f"tags.`{T.RUN_ID}` = {_quote(stackwise_run_id)}"
        parents = [r for r in self.search(self.experiment_ids(), flt) if r.parent_id is None]
        return parents[0] if parents else None

    def children(self, parent: RunSnapshot) -> list[RunSnapshot]:
        if parent.run_id not in self._children:
            flt = f"tags.`mlflow.parentRunId` = {_quote(parent.run_id)}"
            runs = self.search([parent.experiment_id], flt)
            self._children[parent.run_id] = sorted(runs, key=lambda r: r.start_ms)
        return self._children[parent.run_id]

    def siblings(self, run: RunSnapshot) -> list[RunSnapshot]:
        parent = self.get(run.parent_id) if run.parent_id else None
        return [r for r in self.children(parent) if r.run_id != run.run_id] if parent else []

    def source(self, run: RunSnapshot) -> RunSnapshot:
        """The run that really computed `run`'s outputs: a cache hit points at its origin."""
        seen = {run.run_id}
        while run.cached_from and run.cached_from not in seen:
            origin = self.get(run.cached_from)
            if origin is None:
                break
            seen.add(origin.run_id)
            run = origin
        return run

    def inputs_of(self, run: RunSnapshot) -> dict[str, str]:
        """A cache hit records no inputs, but it stands for a run that read the very same
        (content-addressed) artifacts, so it has that run's inputs."""
        return self.source(run).inputs if run.cached_from else run.inputs

    def datasets_of(self, run: RunSnapshot) -> tuple[DatasetRef, ...]:
        return self.source(run).datasets if run.cached_from else run.datasets

    def cached_copies(self, run: RunSnapshot) -> list[RunSnapshot]:
        flt = f"tags.`stackwise.cached_from` = {_quote(run.run_id)}"
        return self.search([run.experiment_id], flt)

    def readers_of(self, digest: str) -> list[RunSnapshot]:
        """Every run, in any experiment, that logged a dataset input with this digest."""
        return self.search(self.experiment_ids(), f"dataset.digest = {_quote(digest)}")

    def step_runs(self, pipeline_run: RunSnapshot) -> list[RunSnapshot]:
        """The last attempt of each step of a pipeline run (earlier attempts failed)."""
        latest: dict[str, RunSnapshot] = {}
        for run in self.children(pipeline_run):
            latest[run.step or run.name] = run
        return list(latest.values())

    def versions_from(self, run_id: str) -> list[Any]:
        """Model versions registered from a run, with their current aliases."""
        if run_id not in self._versions:
            found = self.client.search_model_versions(f"run_id = {_quote(run_id)}")
            # search results may omit aliases; get_model_version always has them
            self._versions[run_id] = [
                self.client.get_model_version(v.name, v.version) for v in found
            ]
        return self._versions[run_id]

    # -- artifact flow between steps ---------------------------------------------------------
    def producer(self, consumer: RunSnapshot, uri: str) -> RunSnapshot | None:
        """The sibling step run that wrote the artifact `consumer` read at `uri`."""
        declared = _declared_producer(self.datasets_of(consumer), uri)
        candidates = [
            r
            for r in self.siblings(consumer)
            if uri in (u for u, _ in r.outputs.values())
            and r.start_ms <= consumer.start_ms
            and (declared is None or r.step == declared)
        ]
        return max(candidates, key=lambda r: r.start_ms) if candidates else None

    def consumers(self, producer: RunSnapshot, uri: str) -> list[RunSnapshot]:
        """Sibling step runs that read the artifact `producer` wrote at `uri`."""
        found = []
        for run in self.siblings(producer):
            datasets = self.datasets_of(run)
            reads = uri in self.inputs_of(run).values() or uri in (d.source for d in datasets)
            declared = _declared_producer(datasets, uri)
            if reads and (declared is None or declared == producer.step):
                found.append(run)
        return found

    def training_run(self, run: RunSnapshot) -> RunSnapshot:
        """Where the model `run` registered was fitted: the producer of a model artifact it
        read, else the run itself (it trained and registered in one step)."""
        for uri in self.inputs_of(run).values():
            if uri.endswith(MODEL_SUFFIXES):
                producer = self.producer(run, uri)
                if producer is not None:
                    return self.source(producer)
        return run
