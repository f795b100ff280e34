"""The one place that talks to MLflow. Run layout: a pipeline run is a parent run; each step
attempt is a nested child run (`mlflow.parentRunId`). A step costs exactly three tracking
calls (create_run, log_batch, set_terminated), plus one log_inputs when it read datasets.

MLflow is imported here, lazily, and only when a run is tracked.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from stackwise.authoring.context import DatasetRecord, MetricRecord
from stackwise.errors import TrackingError

# MLflow's limits per log_batch call.
_MAX_PARAMS = 100
_MAX_TAGS = 100
_MAX_METRICS = 1000
_MAX_TAG_LEN = 8000
_MAX_PARAM_LEN = 6000

_trackers: dict[str, MlflowTracker] = {}
_trackers_lock = threading.Lock()
#: Serializes switching MLflow's fluent API between stores (a process-wide setting).
_activate_lock = threading.Lock()


def tracker_for(uri: str) -> MlflowTracker:
    """One tracker (and so one MLflow client and DB engine) per URI per process."""
    with _trackers_lock:
        tracker = _trackers.get(uri)
        if tracker is None:
            tracker = _trackers[uri] = MlflowTracker(uri)
        return tracker


class MlflowTracker:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._experiments: dict[str, str] = {}
        #: SQLite takes one writer at a time: this process's step threads take turns here
        #: instead of in SQLite's busy handler, which sleeps (1 ms to 100 ms) between tries.
        self._writing: Any = (
            threading.Lock() if uri.startswith("sqlite:") else contextlib.nullcontext()
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:  # intervals of a backfill start at once, on threads
                if self._client is None:
                    self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        """The MLflow client, made once: a second one would register the durability settings
        again on MLflow's shared engine (and empty its pool) while another thread uses it."""
        self.check_reachable()
        import logging

        from mlflow import MlflowClient

        # A remote server makes MLflow print "View run" links to stdout, which would corrupt
        # `--json` output; stackwise prints its own summary.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        for noisy in ("mlflow.store.db.utils", "alembic.runtime.migration", "mlflow.store"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        client = MlflowClient(self.uri)
        from stackwise.tracking import durability

        if durability.relaxed(self.uri):
            engine = getattr(getattr(client._tracking_client, "store", None), "engine", None)
            if engine is not None:
                durability.apply(engine)
        return client

    def activate(self) -> None:
        """Point MLflow's fluent API (plain `mlflow.log_*` in a step) at this store; a process
        that tracks to several stores (tests, notebooks) switches before each step."""
        import mlflow

        if self._client is None:
            _ = self.client
        with _activate_lock:
            if mlflow.get_tracking_uri() != self.uri:
                _set_fluent_uri(self.uri)

    def check_reachable(self) -> None:
        """Fail fast with a fix, instead of MLflow's long retry loop on a dead server; create
        or verify an embedded store (stackwise.tracking.stores)."""
        from stackwise.tracking.stores import prepare_tracking_store

        prepare_tracking_store(self.uri)
        if self.uri.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=5) as resp:
                    if resp.status != 200:
                        raise OSError(f"HTTP {resp.status}")
            except (OSError, urllib.error.URLError) as exc:
                raise TrackingError(
                    f"cannot reach the MLflow tracking server at {self.uri} ({exc}); start it "
                    "(mlflow server ...) or point tracking_uri / MLFLOW_TRACKING_URI at a "
                    "running one. Nothing was run."
                ) from None

    def experiment_id(self, name: str, artifact_location: str | None) -> str:
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        client = self.client
        try:
            exp = client.get_experiment_by_name(name)
            if exp is None:
                try:
                    exp_id = client.create_experiment(name, artifact_location=artifact_location)
                except Exception:  # created concurrently by another process
                    exp = client.get_experiment_by_name(name)
                    if exp is None:
                        raise
                    exp_id = exp.experiment_id
            else:
                exp_id = exp.experiment_id
        except TrackingError:
            raise
        except Exception as exc:
            raise TrackingError(
                f"MLflow at {self.uri} failed to open experiment {name!r}: {exc}"
            ) from exc
        self._experiments[name] = exp_id
        return str(exp_id)

    def start_run(
        self,
        experiment_id: str,
        name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> Any:
        all_tags = {"mlflow.runName": name, **tags}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        tags = {k: v[:_MAX_TAG_LEN] for k, v in all_tags.items()}
        client = self.client
        with self._writing:
            return client.create_run(experiment_id, tags=tags, run_name=name)

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        metrics: Iterable[MetricRecord] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """One log_batch (split only past MLflow's per-call limits). A parameter value longer
        than MLflow's limit (6000 characters, cut silently by MLflow) is kept whole as the
        artifact `stackwise/params/<key>.txt`, truncated in the parameter, listed in the tag
        `stackwise.truncated_params`, and reported with a warning."""
        from mlflow.entities import Metric, Param, RunTag

        params = dict(params or {})
        long = sorted(k for k, v in params.items() if len(v) > _MAX_PARAM_LEN)
        if long:
            tags = {**(tags or {}), "stackwise.truncated_params": ",".join(long)}
            self._keep_long_params(run_id, {k: params[k] for k in long})
        p = [Param(k, v[:_MAX_PARAM_LEN]) for k, v in params.items()]
        m = [Metric(r.key, r.value, r.timestamp_ms, r.step) for r in metrics]
        t = [RunTag(k, str(v)[:_MAX_TAG_LEN]) for k, v in (tags or {}).items()]
        # Almost always one call; split only when MLflow's per-call limits require it.
        client = self.client
        while p or m or t:
            with self._writing:
                client.log_batch(
                    run_id, metrics=m[:_MAX_METRICS], params=p[:_MAX_PARAMS], tags=t[:_MAX_TAGS]
                )
            p, m, t = p[_MAX_PARAMS:], m[_MAX_METRICS:], t[_MAX_TAGS:]

    def log_datasets(self, run_id: str, datasets: Iterable[DatasetRecord]) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [
            DatasetInput(
                Dataset(
                    name=d.name,
                    digest=d.digest,
                    source_type=d.source_type,
                    source=d.source,
                    schema=d.schema,
                    profile=d.profile,
                ),
                tags=[InputTag("mlflow.data.context", d.context)],
            )
            for d in datasets
        ]
        if inputs:
            client = self.client
            with self._writing:
                client.log_inputs(run_id, datasets=inputs)

    def _keep_long_params(self, run_id: str, values: Mapping[str, str]) -> None:
        import warnings

        for key, value in values.items():
            self.client.log_text(run_id, value, f"stackwise/params/{key}.txt")
        warnings.warn(
            f"parameter(s) {', '.join(values)} are longer than MLflow's limit of "
            f"{_MAX_PARAM_LEN} characters: logged truncated, full values kept as artifacts "
            "stackwise/params/<name>.txt of the run.",
            stacklevel=3,
        )

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def search(self, experiment_id: str, filter_string: str, max_results: int = 1000) -> Any:
        """Active runs of one experiment matching an MLflow search filter."""
        return self.client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=max_results
        )

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def log_json(self, run_id: str, data: Any, path: str) -> None:
        self.client.log_dict(run_id, data, path)

    def end_run(self, run_id: str, status: str, *, release_connection: bool = False) -> None:
        """Terminate `run_id`. `release_connection` (a pipeline run's parent): a tracking
        server is asked to close this process's connection after this request, so the next
        pipeline run may go to another server worker (see `stackwise.tracking.reconnect`)."""
        client = self.client
        if release_connection and self.uri.startswith(("http://", "https://")):
            from stackwise.tracking.reconnect import let_go_after_next_request

            let_go_after_next_request()
        with self._writing:
            client.set_terminated(run_id, status=status, end_time=int(time.time() * 1000))

    def reopen(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def close_open_children(self, experiment_id: str, parent_run_id: str, status: str) -> list[str]:
        """Terminate child runs still RUNNING (left by a killed process or a stuck step)."""
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' "
            "and attributes.status = 'RUNNING'",
            max_results=1000,
        )
        for run in runs:  # the status tag says what the run says, as for closed steps
            self.log(run.info.run_id, tags={"stackwise.status": status})
            self.end_run(run.info.run_id, status)
        return [r.info.run_id for r in runs]


def _set_fluent_uri(uri: str) -> None:
    """What `mlflow.set_tracking_uri` does, but for its export of MLFLOW_TRACKING_URI to the
    environment, which would override every later stack config in this process (a notebook, a
    test run). Undoing the export deletes the variable, and a deletion while another thread
    iterates `os.environ` (every step does, to redact secrets) fails that thread (KeyError)."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    if not hasattr(utils, "_tracking_uri"):  # another MLflow: its own call, export undone
        previous = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(uri)
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
        return
    utils._tracking_uri = uri  # type: ignore[assignment]
    from mlflow.tracing.provider import reset

    reset()  # type: ignore[no-untyped-call]  # as set_tracking_uri: traces go to the new store


class ActiveRun:
    """Makes plain `mlflow.log_*` calls inside a step land in the step's run, in this thread,
    without the extra get_run/update_run calls of `mlflow.start_run(run_id=...)`."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self._pushed: Any = None

    def __enter__(self) -> ActiveRun:
        from mlflow.tracking import fluent

        stack = getattr(fluent, "_active_run_stack", None)
        if stack is not None and hasattr(stack, "get"):
            self._pushed = fluent.ActiveRun(self.run)  # type: ignore[no-untyped-call]
            stack.get().append(self._pushed)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pushed is None:
            return
        from mlflow.tracking import fluent

        stack = fluent._active_run_stack.get()  # type: ignore[no-untyped-call]
        if stack and stack[-1] is self._pushed:
            stack.pop()
        elif self._pushed in stack:
            stack.remove(self._pushed)
