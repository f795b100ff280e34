"""A new SQLite tracking store as a copy of an empty MLflow schema kept per MLflow release.

MLflow's first-time creation of a store (`_initialize_tables`: the initial tables, then every
alembic migration, ~50) takes 1-2 s of a new project's first `stackwise run`; copying the
same empty schema takes milliseconds. The first store created with a given MLflow release on
this machine is built by MLflow itself, then copied (SQLite's online backup, before anything
else is written to it) to `mlflow-schema-<release>.db` in stackwise's cache folder
(`$STACKWISE_CACHE_DIR`, else `$XDG_CACHE_HOME/stackwise`, else `~/.cache/stackwise`). Later
stores start as a copy of it, used only if it reads as complete at this MLflow's head
revision; anything wrong with it (unreadable, another schema) means MLflow builds the store as
before and the copy is replaced. A cache folder that cannot be written keeps no copy.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

from stackwise.store_creation import copy_sqlite, remove_leftovers, sqlite_path


def template_path() -> Path | None:
    """The kept schema of this MLflow release; None where no home folder can be found."""
    import mlflow.version

    from stackwise.bundles import cache_dir  # where fetched code bundles are kept too

    try:
        folder = cache_dir()
    except RuntimeError:  # Path.home(): no HOME and no password entry
        return None
    return folder / f"mlflow-schema-{mlflow.version.VERSION}.db"


def build(uri: str, initialize: Callable[[str], None], complete: Callable[[Path], bool]) -> None:
    """Create the empty store at `uri` (a new `sqlite:///` file): from the kept schema when it
    is `complete`, else by `initialize(uri)` (MLflow's creation), keeping a copy for next
    time. Errors of `initialize` propagate; the copy's never do."""
    target = sqlite_path(uri)
    template = template_path()
    if target is None or template is None:
        initialize(uri)
        return
    if template.is_file() and _readable(template, complete):
        read_only = f"{template.as_uri()}?mode=ro"  # one removed meanwhile is not made empty
        try:
            with (
                contextlib.closing(sqlite3.connect(read_only, uri=True)) as src,
                contextlib.closing(sqlite3.connect(target)) as dst,
            ):
                src.backup(dst)
        except sqlite3.Error:
            pass
        if _readable(target, complete):  # what was copied, checked (not only what was read)
            return
        target.unlink(missing_ok=True)  # MLflow builds it whole below
    initialize(uri)
    with contextlib.suppress(Exception):  # a read-only or full cache folder: no copy kept
        template.parent.mkdir(parents=True, exist_ok=True)
        # A killed keeper's temporary file goes (and so may a concurrent one's, whose keeping
        # then fails quietly: one copy is enough).
        remove_leftovers(template)
        copy_sqlite(target, template)


def _readable(template: Path, complete: Callable[[Path], bool]) -> bool:
    try:
        return complete(template)
    except Exception:  # not a database, locked, another schema: MLflow builds the store
        return False
