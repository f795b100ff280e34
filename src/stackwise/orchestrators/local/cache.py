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


class StateStoreCache:
    def __init__(self, url: str) -> None:
        self.store = state_store(url)

    def lookup(self, key: str) -> CacheEntry | None:
        return self.store.cache_lookup(key)

    def record(self, entry: CacheEntry) -> None:
        self.store.cache_record(entry)
