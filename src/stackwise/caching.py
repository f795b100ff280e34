"""Step caching, a runner feature: the runner computes a step's cache key, looks it up before
running, and records its result after, through a small `CacheStore`.

A step is a cache hit when its code (its source and its project-local modules, see
`stackwise.authoring.codehash`), its options, the digests of its inputs, the parameters and
constants it receives (all parameters when it takes a `StepContext`) and the data interval
are unchanged, and every output still exists in the artifact store.

Two stores: `ArtifactStoreCache` (entries as JSON in the artifact store: all a compiled
pipeline on Airflow or Kubeflow has) and the local orchestrator's state store
(`stackwise.orchestrators.local.cache`), found by name through `stackwise.plugins`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stackwise.artifacts.hashing import cache_key, stable_json
from stackwise.artifacts.store import ArtifactRef, ArtifactStore

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import StepNode
    from stackwise.interval import Interval


class CacheEntry(BaseModel):
    """An earlier success: its outputs and metrics, the pipeline run and MLflow run it came
    from (`cached_from` in MLflow), and when it was recorded (epoch seconds)."""

    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="constants")

    key: str
    pipeline: str
    step: str
    outputs: dict[str, ArtifactRef]
    metrics: dict[str, float] = Field(default_factory=dict)
    run_id: str
    mlflow_run_id: str | None = None
    created_at: float = Field(default_factory=time.time)


class CacheStore(Protocol):
    def lookup(self, key: str) -> CacheEntry | None:
        """The entry recorded under `key`, or None."""
        ...

    def record(self, entry: CacheEntry) -> None:
        """Record (or replace) the entry under `entry.key`; concurrent writers both succeed."""
        ...


class ArtifactStoreCache:
    """Entries as `cache/<key[:2]>/<key>.json` in the artifact store (atomic writes)."""

    def __init__(self, artifact_root: str) -> None:
        self.store = ArtifactStore(artifact_root)

    def lookup(self, key: str) -> CacheEntry | None:
        data = self.store.read(self._rel(key))
        if data is None:
            return None
        try:
            return CacheEntry.model_validate_json(data)
        except ValidationError:
            return None  # an unreadable entry is a miss, never a wrong hit

    def record(self, entry: CacheEntry) -> None:
        self.store.write(self._rel(entry.key), entry.model_dump_json().encode())

    @staticmethod
    def _rel(key: str) -> str:
        return f"cache/{key[:2]}/{key}.json"


def step_cache_key(
    node: StepNode,
    inputs: Mapping[str, ArtifactRef],
    params: Mapping[str, Any],
    interval: Interval | None,
) -> str:
    """The cache key (hex sha256) of one step of one run."""
    from stackwise.authoring.codehash import step_code_hash

    params = _hidden_secrets(params)
    values: dict[str, str] = {name: ref.digest for name, ref in inputs.items()}
    for input_name, b in node.bindings.items():
        if b.kind == "param":
            values[input_name] = stable_json(params.get(b.param or ""))
        elif b.kind == "const":
            values[input_name] = stable_json(b.value)
    if node.definition.context_param:  # the step can read every parameter
        values["__params__"] = stable_json(dict(params))
    return cache_key(
        step_code_hash(node.definition.fn),
        node.definition.options.to_dict(),
        values,
        interval.to_dict() if interval else None,
    )


def _hidden_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """Secret-named parameters enter the key (and `stackwise.cache_key` in MLflow) only as a
    deliberately slow hash (scrypt), so the key cannot be used to guess them offline."""
    import hashlib

    from stackwise.tracking.redaction import is_secret_name

    out = dict(params)
    for name, value in params.items():
        if is_secret_name(name):
            digest = hashlib.scrypt(
                stable_json(value).encode(), salt=b"stackwise-cache-key:" + name.encode(),
                n=2**14, r=8, p=1,
            )  # fmt: skip
            out[name] = "scrypt:" + digest.hex()
    return out


def usable(entry: CacheEntry, store: ArtifactStore) -> bool:
    """A hit only counts when every output it names still exists."""
    return all(store.exists(ref) for ref in entry.outputs.values())


_opened: dict[tuple[str, str], CacheStore] = {}


def open_cache(store: str, location: str) -> CacheStore:
    """The cache store named `store` (`artifacts`: at the artifact root `location`; `state`:
    the state store at the SQLAlchemy URL `location`), opened once per process."""
    key = (store, location)
    cache = _opened.get(key)
    if cache is None:
        if store == "artifacts":
            cache = ArtifactStoreCache(location)
        else:
            from stackwise.plugins import CACHE_STORES, resolve

            cache = resolve(CACHE_STORES, "cache store", store)(location)
        _opened[key] = cache
    return cache
