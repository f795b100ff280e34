"""What a running step can know and record: the run context and buffered metric logging.

Metrics are buffered and sent to MLflow in one `log_batch` when the step ends (or when the
buffer fills), so that logging inside a loop costs a list append, not a database write.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import functools
import math
import operator
import os
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

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

_T = TypeVar("_T")

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
    """Passed to a step that declares a parameter annotated `StepContext`.

    A step declared with `workers=N` runs as N workers: `rank` (0..N-1), `world_size` (N)
    and `rendezvous` (`host:port` of rank 0, free for a `torch.distributed`-style init) tell
    each worker who it is; a single worker is rank 0 of 1 with no rendezvous."""

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
    rank: int = 0
    world_size: int = 1
    rendezvous: str | None = None

    def shard(self, items: Sequence[_T]) -> Sequence[_T]:
        """This worker's share of `items` (every `world_size`-th item from `rank`): the
        shares of all ranks together hold each item exactly once."""
        return items[self.rank :: self.world_size]

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
        number = _metric_value(key, value)
        if math.isnan(number):
            number = float("nan")
        index = _metric_step(key, step)
        self.metrics.append(MetricRecord(key, number, int(time.time() * 1000), index))
        self.last_metrics[key] = number
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


# MLflow 3's rule for metric, param and run-tag keys (mlflow/utils/validation.py:
# `validate_param_and_metric_name`, `path_not_unique`, `MAX_ENTITY_KEY_LENGTH`), reproduced here
# so that checking a name does not import mlflow (about a second) in untracked runs. Like
# MLflow's `re.match(...$)`, the pattern lets one trailing newline through; MLflow stores it.
_MLFLOW_KEY = re.compile(r"^[/\w.\- :]*$")
_MLFLOW_KEY_WINDOWS = re.compile(r"^[/\w.\- ]*$")  # MLflow refuses ':' on Windows
MLFLOW_MAX_KEY_LENGTH = 250
_MLFLOW_STEP_RANGE = (-(2**63), 2**63 - 1)  # a metric step is a 64-bit long in MLflow


def mlflow_key_problem(name: object) -> str | None:
    """Why MLflow would refuse `name` as a metric, parameter or run-tag key, or None when it
    accepts it: only letters, digits, `_ - . : /` and spaces (no ':' on Windows); the name must
    stay itself as a POSIX path (no leading '/', trailing '/', '//', or '.'/'..' segments, as
    MLflow may store names as files); at most 250 characters."""
    if not isinstance(name, str):
        return f"it is not a string (got {type(name).__name__})"
    return _str_key_problem(name)


@functools.lru_cache(maxsize=4096)  # a step logs the same few names in its loops
def _str_key_problem(name: str) -> str | None:
    if name == "":
        return "it is empty"
    allowed = _MLFLOW_KEY_WINDOWS if os.name == "nt" else _MLFLOW_KEY
    if not allowed.match(name):
        colon = "" if os.name == "nt" else "':', "
        return f"use only letters, digits, '_', '-', '.', {colon}' ' and '/'"
    normalized = posixpath.normpath(name)
    if normalized.startswith(("..", "/")):
        start = ".." if normalized.startswith("..") else "/"
        return f"MLflow treats names as paths: it must not start with {start!r}"
    if normalized != name or normalized == ".":
        return (
            f"MLflow treats names as paths and would read it as {normalized!r}: no trailing "
            "'/', no '//', and no '.' or '..' path segments"
        )
    if len(name) > MLFLOW_MAX_KEY_LENGTH:
        return f"it has {len(name)} characters; MLflow allows at most {MLFLOW_MAX_KEY_LENGTH}"
    return None


def _check_name(kind: str, key: object) -> None:
    """Raises StackwiseError, naming the fix, for a key MLflow would refuse."""
    problem = mlflow_key_problem(key)
    if problem is not None:
        from stackwise.errors import StackwiseError

        raise StackwiseError(f"{kind} name {key!r} is not valid in MLflow: {problem}.")


def _metric_value(key: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        from stackwise.errors import StackwiseError

        raise StackwiseError(
            f"metric {key!r} value {value!r} is not a number; log a float (or int)."
        ) from None


def _metric_step(key: str, step: object) -> int:
    from stackwise.errors import StackwiseError

    if step is None:
        return 0
    if isinstance(step, bool):
        raise StackwiseError(f"metric {key!r} step {step!r} is not an integer; pass step=N.")
    try:
        number = operator.index(step)  # type: ignore[arg-type]
    except TypeError:
        raise StackwiseError(
            f"metric {key!r} step {step!r} is not an integer; pass step=N."
        ) from None
    low, high = _MLFLOW_STEP_RANGE
    if not low <= number <= high:
        raise StackwiseError(
            f"metric {key!r} step {number} is out of MLflow's range (a 64-bit integer)."
        )
    return number


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
