"""How hard the embedded SQLite MLflow store syncs to disk.

MLflow opens SQLite in rollback-journal mode with `synchronous=FULL`: every one of the three
calls of a tracked step waits for the disk twice. For the store stackwise owns (the default
`sqlite:///.stackwise/mlflow.db`, chosen when neither `tracking_uri` nor MLFLOW_TRACKING_URI
names one), stackwise switches the file to write-ahead logging (`journal_mode=WAL`, kept in the
file) and the connections of its own MLflow engine to `synchronous=NORMAL`. SQLite documents
the trade (https://www.sqlite.org/pragma.html#pragma_synchronous, /wal.html): in WAL mode with
NORMAL the database stays consistent after a crash of the process or the machine; a power loss
can drop the last commits before a checkpoint, never corrupt the file. `durability: full` in
stackwise.yaml keeps MLflow's full sync. A store the user names (a `sqlite:///` URI given
explicitly, a database server, a tracking server) is left exactly as configured.

Worker processes a run starts (the subprocess compute backend) inherit the choice through the
environment variable STACKWISE_RELAXED_SQLITE (a JSON list of URIs).
"""

from __future__ import annotations

import json
import os
from typing import Any

ENV = "STACKWISE_RELAXED_SQLITE"


def relax(uri: str) -> None:
    """Mark `uri` (a `sqlite:///` URI stackwise owns) for WAL and synchronous=NORMAL in this
    process and the worker processes it starts. Other URIs are ignored."""
    if not uri.startswith("sqlite:///") or relaxed(uri):
        return
    os.environ[ENV] = json.dumps([*_relaxed(), uri])


def relaxed(uri: str) -> bool:
    return uri in _relaxed()


def _relaxed() -> list[str]:
    try:
        value = json.loads(os.environ.get(ENV) or "[]")
    except ValueError:
        return []
    return [u for u in value if isinstance(u, str)] if isinstance(value, list) else []


def apply(engine: Any) -> None:
    """Make every connection `engine` opens from now on use WAL and synchronous=NORMAL (the
    pool is emptied so that no connection opened before keeps the old setting)."""
    import contextlib
    import sqlite3

    from sqlalchemy import event

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # Switching to WAL needs a moment alone with the file; another process holding it
        # leaves the mode as it is for this connection (the next one tries again).
        with contextlib.suppress(sqlite3.OperationalError):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()
