"""The step cache kept in the local orchestrator's state store (SQLite or PostgreSQL): the
`CacheStore` of `stackwise.caching` that `cache: state` (the default) selects. Shared by
every process using the same state store, so a PostgreSQL state store shares the cache
between machines."""

from __future__ import annotations

import threading
from pathlib import Path

from stackwise.caching import CacheEntry
from stackwise.orchestrators.local.state import StateStore

_stores: dict[tuple[str, Path | None], StateStore] = {}
_lock = threading.Lock()


def state_store(url: str, base_dir: Path | None = None, durability: str = "normal") -> StateStore:
    """One StateStore (one engine) per URL and project folder per process; `durability` (the
    stack's: normal or full) picks SQLite's synchronous setting when the store is created."""
    with _lock:
        store = _stores.get((url, base_dir))
        if store is None:
            store = _stores[(url, base_dir)] = StateStore(url, base_dir, durability)
        return store


def any_state_store(url: str) -> StateStore:
    """A StateStore of this process for `url` (the orchestrator's when it has one open, so
    that its step writes and the runner's cache writes share one connection and take turns
    in this process rather than in SQLite's busy handler); a new one otherwise."""
    with _lock:
        store = next((s for (u, _), s in _stores.items() if u == url), None)
    return store if store is not None else state_store(url)


class StateStoreCache:
    def __init__(self, url: str) -> None:
        self.store = any_state_store(url)

    def lookup(self, key: str) -> CacheEntry | None:
        return self.store.cache_lookup(key)

    def record(self, entry: CacheEntry) -> None:
        self.store.cache_record(entry)
