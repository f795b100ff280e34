"""Content hashes: artifacts, step code, pipeline versions, cache keys and dataset digests.

Hashes are hex sha256. Code hashes cover a step's own source and the source of the module it
is defined in, so that a change to a helper in the same file invalidates the cache too
(conservative: a false miss costs a rerun, a false hit returns wrong results).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))


@functools.lru_cache(maxsize=1024)
def step_code_hash(fn: Callable[..., Any]) -> str:
    h = hashlib.sha256()
    try:
        h.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        h.update(fn.__code__.co_code if hasattr(fn, "__code__") else repr(fn).encode())
    module = inspect.getmodule(fn)
    if module is not None:
        with contextlib.suppress(OSError, TypeError):
            h.update(inspect.getsource(module).encode())
    return h.hexdigest()


def pipeline_version(pipeline: Pipeline) -> str:
    parts = []
    for name in pipeline.order:
        node = pipeline.nodes[name]
        parts.append(
            {
                "step": name,
                "code": step_code_hash(node.definition.fn),
                "bindings": {k: b.describe() for k, b in sorted(node.bindings.items())},
                "options": node.definition.options.to_dict(),
            }
        )
    return sha256_bytes(stable_json({"name": pipeline.name, "steps": parts}).encode())[:16]


def cache_key(
    code_hash: str,
    options: Mapping[str, Any],
    inputs: Mapping[str, str],
    interval: Mapping[str, str] | None,
) -> str:
    """Same code, same input contents (digests or constant values), same interval: same key."""
    payload = {"code": code_hash, "options": options, "inputs": inputs, "interval": interval}
    return sha256_bytes(stable_json(payload).encode())


def dataset_digest(data: Any) -> str:
    """A short content digest of a DataFrame, array, bytes, or file path."""
    from pathlib import Path

    if isinstance(data, bytes):
        return sha256_bytes(data)[:16]
    if isinstance(data, str | Path) and Path(data).is_file():
        h = hashlib.sha256()
        with open(data, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()[:16]
    mod = type(data).__module__
    if mod.startswith("pandas"):
        import pandas as pd

        hashed = pd.util.hash_pandas_object(data, index=True).values.tobytes()
        cols = (
            stable_json([str(c) for c in data.columns]).encode()
            if hasattr(data, "columns")
            else b""
        )
        return sha256_bytes(hashed + cols)[:16]
    if mod.startswith("numpy"):
        return sha256_bytes(data.tobytes() + str(data.shape).encode() + str(data.dtype).encode())[
            :16
        ]
    return sha256_bytes(stable_json(data).encode())[:16]


def dataset_schema(data: Any) -> str | None:
    mod = type(data).__module__
    if mod.startswith("pandas") and hasattr(data, "dtypes"):
        return stable_json({str(c): str(t) for c, t in data.dtypes.items()})
    if mod.startswith("numpy"):
        return stable_json({"shape": list(data.shape), "dtype": str(data.dtype)})
    return None
