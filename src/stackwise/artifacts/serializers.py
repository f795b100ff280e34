"""How step outputs become bytes and back. Picked by the value's type, in this order: JSON for
plain values, parquet for pandas DataFrames, .npy for numpy arrays, joblib for scikit-learn
estimators, and pickle (with a warning) for anything else.

Type checks look at `type(value).__module__` before importing pandas/numpy/sklearn, so that a
pipeline that never uses them never imports them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import warnings
from collections.abc import Callable
from typing import Any


class PickleFallbackWarning(UserWarning):
    """An output had no dedicated serializer and was pickled (fragile across versions)."""


@dataclasses.dataclass(frozen=True)
class Serializer:
    name: str
    filename: str
    accepts: Callable[[Any], bool]
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


def _is_plain_json(value: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return all(_is_plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_json(v, depth + 1) for k, v in value.items())
    return False


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _is_dataframe(value: Any) -> bool:
    return type(value).__module__.startswith("pandas") and type(value).__name__ == "DataFrame"


def _parquet_dumps(value: Any) -> bytes:
    buf = io.BytesIO()
    value.to_parquet(buf, index=True)
    return buf.getvalue()


def _parquet_loads(data: bytes) -> Any:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data))


def _is_ndarray(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _npy_dumps(value: Any) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=False)
    return buf.getvalue()


def _npy_loads(data: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def _is_sklearn(value: Any) -> bool:
    if not type(value).__module__.startswith("sklearn"):
        return False
    from sklearn.base import BaseEstimator

    return isinstance(value, BaseEstimator)


def _joblib_dumps(value: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(value, buf)
    return buf.getvalue()


def _joblib_loads(data: bytes) -> Any:
    import joblib

    return joblib.load(io.BytesIO(data))


def _pickle_dumps(value: Any) -> bytes:
    warnings.warn(
        f"no serializer for {type(value).__module__}.{type(value).__qualname__}; it was pickled, "
        "which breaks across library versions. Return a JSON value, DataFrame, ndarray or "
        "scikit-learn model instead.",
        PickleFallbackWarning,
        stacklevel=4,
    )
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


SERIALIZERS: tuple[Serializer, ...] = (
    Serializer("json", "value.json", _is_plain_json, _json_dumps, json.loads),
    Serializer("parquet", "data.parquet", _is_dataframe, _parquet_dumps, _parquet_loads),
    Serializer("npy", "array.npy", _is_ndarray, _npy_dumps, _npy_loads),
    Serializer("joblib", "model.joblib", _is_sklearn, _joblib_dumps, _joblib_loads),
    Serializer("pickle", "object.pkl", lambda v: True, _pickle_dumps, pickle.loads),
)
BY_NAME = {s.name: s for s in SERIALIZERS}


def serializer_for(value: Any) -> Serializer:
    return next(s for s in SERIALIZERS if s.accepts(value))
