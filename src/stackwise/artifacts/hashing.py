"""Content hashes: artifacts, cache keys and dataset digests (hex sha256). Code versions are
`stackwise.authoring.codehash`. This module imports nothing of stackwise."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: Built once: json.dumps with options builds an encoder per call (cache keys, versions).
_STABLE = json.JSONEncoder(sort_keys=True, default=repr, separators=(",", ":"))


def stable_json(value: Any) -> str:
    return _STABLE.encode(value)


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
