"""What a running step can know and record: the run context and buffered metric logging.

Metrics are buffered and sent to MLflow in one `log_batch` when the step ends (or when the
buffer fills), so that logging inside a loop costs a list append, not a database write.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from stackwise.interval import Interval

__all__ = [
    "DatasetRecord",
    "Interval",
    "MetricRecord",
    "StepContext",
    "current_context",
    "log_dataset",
    "log_metric",
    "log_metrics",
]

_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "stackwise_step_context", default=None
)

#: MLflow accepts at most 1000 metrics in one batch.
METRIC_BATCH_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class MetricRecord:
    key: str
    value: float
    timestamp_ms: int
    step: int


@dataclasses.dataclass(frozen=True)
class DatasetRecord:
    """A dataset the step read, logged with `mlflow.log_input`-equivalent records."""

    name: str
    digest: str
    source: str
    source_type: str
    context: str
    schema: str | None = None
    profile: str | None = None


@dataclasses.dataclass
class StepContext:
    """Passed to a step that declares a parameter annotated `StepContext`."""

    pipeline: str
    step: str
    run_id: str
    attempt: int
    params: Mapping[str, Any]
    interval: Interval | None = None
    mlflow_run_id: str | None = None
    metrics: list[MetricRecord] = dataclasses.field(default_factory=list)
    datasets: list[DatasetRecord] = dataclasses.field(default_factory=list)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    flush: Any = None  # callable(list[MetricRecord]) set by the runner; None when untracked
    last_metrics: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def logical_date(self) -> dt.datetime | None:
        return self.interval.logical_date if self.interval else None

    @property
    def data_interval_start(self) -> dt.datetime | None:
        return self.interval.data_interval_start if self.interval else None

    @property
    def data_interval_end(self) -> dt.datetime | None:
        return self.interval.data_interval_end if self.interval else None

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        _check_name("metric", key)
        value = float(value)
        if math.isnan(value):
            value = float("nan")
        self.metrics.append(MetricRecord(key, value, int(time.time() * 1000), step or 0))
        self.last_metrics[key] = value
        if len(self.metrics) >= METRIC_BATCH_LIMIT and self.flush is not None:
            pending, self.metrics = self.metrics, []
            self.flush(pending)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def set_tag(self, key: str, value: str) -> None:
        _check_name("tag", key)
        self.tags[key] = str(value)

    def log_dataset(
        self, data: Any, name: str, source: str, *, context: str = "raw", digest: str | None = None
    ) -> None:
        """Record a dataset this step read (for lineage): a DataFrame, array, bytes or a path."""
        from stackwise.artifacts.hashing import dataset_digest, dataset_schema

        self.datasets.append(
            DatasetRecord(
                name=name,
                digest=digest or dataset_digest(data),
                source=source,
                source_type="local" if "://" not in source else source.split("://")[0],
                context=context,
                schema=dataset_schema(data),
            )
        )


# MLflow's rule for metric, param and tag names; checked when logged, so a bad name fails the
# call that made it rather than the whole step's batch at the end.
_MLFLOW_NAME = re.compile(r"^[/\w.\- :]{1,250}$")


def _check_name(kind: str, key: str) -> None:
    if not isinstance(key, str) or not _MLFLOW_NAME.match(key) or ".." in key:
        from stackwise.errors import StackwiseError

        raise StackwiseError(
            f"{kind} name {key!r} is not valid in MLflow: use letters, digits, '_', '-', '.', "
            "' ', ':' and '/' (at most 250 characters)."
        )


class UndeclaredParams(Mapping[str, Any]):
    """`params` of a context the step did not declare. Its cache key only covers the
    parameters passed as inputs, so reading others here would return stale cached results."""

    def __init__(self, step: str) -> None:
        self._step = step

    def _refuse(self) -> Any:
        from stackwise.errors import StackwiseError

        raise StackwiseError(
            f"step {self._step!r} reads run parameters through current_context() but does not "
            "declare a StepContext parameter; add `ctx: stackwise.StepContext` to its "
            "signature (so caching accounts for them) or pass the parameter as an input."
        )

    def __getitem__(self, key: str) -> Any:
        return self._refuse()

    def __iter__(self) -> Any:
        return self._refuse()

    def __len__(self) -> int:
        return int(self._refuse())


def current_context() -> StepContext | None:
    """The context of the step running in this thread, or None outside a run."""
    return _current.get()


def set_context(ctx: StepContext | None) -> contextvars.Token[StepContext | None]:
    return _current.set(ctx)


def reset_context(token: contextvars.Token[StepContext | None]) -> None:
    _current.reset(token)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log a metric to the current step's MLflow run (buffered). A no-op outside a run."""
    ctx = _current.get()
    if ctx is not None:
        ctx.log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    ctx = _current.get()
    if ctx is not None:
        ctx.log_metrics(metrics, step)


def log_dataset(data: Any, name: str, source: str, *, context: str = "raw") -> None:
    """Record a dataset the current step read, as an MLflow dataset input. No-op outside a run."""
    ctx = _current.get()
    if ctx is not None:
        ctx.log_dataset(data, name, source, context=context)
