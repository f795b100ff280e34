"""An MLflow tracking store made ready before anything runs: every kind of URI is checked
(`prepare_tracking_store`), and the database stores are created once, atomically.

What each kind of URI gets (anything wrong raises TrackingError, exit 2, naming the fix):

- `http(s)://HOST[:PORT]` its syntax; `MlflowTracker.check_reachable` then probes `/health`.
- `file://PATH` or a bare folder: refused, because MLflow 3 refuses its filesystem backend
  ("maintenance mode", mlflow/store/tracking/file_store.py) unless MLFLOW_ALLOW_FILE_STORE=true.
- `sqlite:///PATH`: folder and file writable; a new store is built by MLflow's own first-time
  creation (`_initialize_tables`: initial tables, then every alembic migration), or copied
  from the empty schema kept after the first such creation (schema_template), into a
  temporary file under a file lock, then moved into place (see stackwise.store_creation).
- `postgresql://`, `mysql://`, `mssql://`: reachable within CONNECT_TIMEOUT_S; on PostgreSQL
  MLflow's first-time creation runs under an advisory lock (two fresh starts raced on
  `alembic_version`).
- `databricks`, `uc`, and schemes of MLflow plugins (entry point group `mlflow.tracking_store`):
  left to MLflow. Any other scheme: an error listing the known ones.

An existing store is checked against the schema this MLflow expects (MLflow's own check is
`mlflow.store.db.utils._verify_schema`): a store left half-migrated (`_alembic_tmp_*` tables,
`alembic_version` without exactly one row, missing tables) or at another revision is repaired
only when it provably holds no data (a SQLite file is then moved aside as a backup and created
anew); otherwise the error says how to upgrade, restore or move it.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from stackwise.errors import TrackingError, did_you_mean
from stackwise.store_creation import (
    StoreLabel,
    check_sqlite_writable,
    copy_sqlite,
    create_sqlite_file,
    file_lock,
    first_line,
    move_aside,
    remove_leftovers,
    server_lock,
    sqlite_path,
)

LABEL = StoreLabel(
    "MLflow tracking store", "tracking_uri in stackwise.yaml (or MLFLOW_TRACKING_URI)",
    TrackingError,
)  # fmt: skip
_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")  # mlflow.store.db.db_types
_LEFT_TO_MLFLOW = ("databricks", "databricks-uc", "uc", "http", "https")
#: Rows a brand-new store holds (MLflow seeds them): anything else is somebody's data.
_SEEDED = {"alembic_version": None, "workspaces": None, "experiments": "experiment_id <> 0"}

_prepared: set[str] = set()
_prepared_lock = threading.Lock()


def prepare_tracking_store(uri: str) -> None:
    """Check `uri` and create or verify its store, once per process. Raises TrackingError."""
    with _prepared_lock:
        if uri in _prepared:
            return
        _prepare(uri)
        _prepared.add(uri)


def _prepare(uri: str) -> None:
    import urllib.parse

    if uri in _LEFT_TO_MLFLOW:
        return
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and scheme.isalpha()):  # C:\ is a path
        _refuse_file_store(uri)
        return
    if scheme.startswith(_DATABASES):
        _prepare_database(uri)
    elif scheme in ("http", "https"):
        try:
            urllib.parse.urlsplit(uri).port  # noqa: B018  (raises on a bad port)
        except ValueError as exc:
            raise LABEL.fail(_masked(uri), f"is not a valid URL ({exc})", "fix the port") from None
    elif scheme not in _LEFT_TO_MLFLOW and scheme not in _plugin_schemes():
        known = [*_DATABASES, "http", "https", "databricks", *_plugin_schemes()]
        hint = did_you_mean(scheme, known).strip()
        raise LABEL.fail(
            _masked(uri),
            f"has an unknown scheme {scheme!r}" + (f" ({hint.lower()})" if hint else ""),
            f"use one of {', '.join(s + '://' for s in known)} in {LABEL.setting}",
        )


def _masked(uri: str) -> str:
    """`uri` with the password of `scheme://user:password@host` replaced by ***."""
    import re

    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", uri)


def _plugin_schemes() -> list[str]:
    from importlib.metadata import entry_points

    return [ep.name for ep in entry_points(group="mlflow.tracking_store")]


def _refuse_file_store(uri: str) -> None:
    import os

    if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("true", "1"):
        return
    folder = uri.removeprefix("file://") or "."
    raise LABEL.fail(
        uri,
        "is a folder (MLflow's filesystem backend), which MLflow 3 refuses: it is in "
        "maintenance mode",
        f"use a database, e.g. sqlite:///{Path(folder).absolute().parent / 'mlflow.db'} in "
        f"{LABEL.setting} (`mlflow migrate-filestore` moves existing runs), or set "
        "MLFLOW_ALLOW_FILE_STORE=true",
    )


def _prepare_database(uri: str) -> None:
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
    except Exception as exc:  # ArgumentError, or ValueError for a non-numeric port
        raise LABEL.fail(
            _masked(uri),
            f"is not a valid database URL ({first_line(exc)})",
            "write it as sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE",
        ) from None
    location = url.render_as_string(hide_password=True)
    _quiet_mlflow()
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            _prepare_sqlite(uri, path, location)
        return
    with server_lock(url, "stackwise:create:mlflow", LABEL, location) as conn:
        state = _SchemaState.read(conn, server=True)
        # What MLflow itself does on first use, now one process at a time: create, upgrade,
        # or finish a creation whose migrations (one transaction on PostgreSQL) never ran.
        if state.fresh or state.upgradable or (not state.revisions and not state.holds_data(conn)):
            _initialize(uri)
            _notify_upgrade(location, state, None)
            state = _SchemaState.read(conn, server=True)
        if not state.complete:
            db = url.database
            fix = (
                f"restore database {db} from a backup, or point {LABEL.setting} at a new database"
                if state.holds_data(conn)
                else f"it holds no runs: recreate it (dropdb {db}; createdb {db}) and run again"
            )
            raise LABEL.fail(location, state.problem, state.fix(location) or fix)


def _prepare_sqlite(uri: str, path: Path, location: str) -> None:
    check_sqlite_writable(path, LABEL, location)
    if path.exists() and _read_sqlite(path, location).complete:
        return  # the usual case: no lock needed to use a whole store
    with file_lock(path, LABEL, location):
        remove_leftovers(path)
        state = _read_sqlite(path, location) if path.exists() else None
        if state is None or state.fresh:
            create_sqlite_file(path, _create)
        elif state.upgradable:
            backup = path.with_name(f"{path.name}.pre-upgrade-{state.revisions[0]}")
            copy_sqlite(path, backup)
            _initialize(uri)  # in place, as MLflow would; a kill midway is caught next time
            upgraded = _read_sqlite(path, location)
            if not upgraded.complete:
                raise LABEL.fail(location, upgraded.problem, f"restore it (cp {backup} {path})")
            _notify_upgrade(location, state, backup)
        elif not state.complete:  # else created by another process while this one waited
            if _sqlite_holds_data(path, state):
                backups = sorted(path.parent.glob(f"{path.name}.pre-upgrade-*"))
                restore = f"cp {backups[-1]} {path}" if backups else "from a backup"
                raise LABEL.fail(
                    location,
                    state.problem,
                    state.fix(location)
                    or f"restore it ({restore}), or move it aside (mv {path} {path}.broken) "
                    "so that a new store is created",
                )
            backup = move_aside(path)
            create_sqlite_file(path, _create)
            print(
                f"stackwise: the MLflow tracking store {path} {state.problem} and held no "
                f"runs; moved it to {backup} and created a new one.",
                file=sys.stderr,
            )


def _sqlite_holds_data(path: Path, state: _SchemaState) -> bool:
    engine = _engine(path)
    try:
        with engine.connect() as conn:
            return state.holds_data(conn)
    finally:
        engine.dispose()


def _notify_upgrade(location: str, state: _SchemaState, backup: Path | None) -> None:
    if not state.revisions or state.revisions[0] == state.head:
        return
    kept = f"; the previous file is kept as {backup}" if backup else ""
    print(
        f"stackwise: upgraded the MLflow tracking store {location} from schema revision "
        f"{state.revisions[0]} to {state.head}, as MLflow does on first use{kept}.",
        file=sys.stderr,
    )


def _create(uri: str) -> None:
    """A new store: a copy of the empty schema kept for this MLflow release, or MLflow's own
    creation (see stackwise.tracking.schema_template)."""
    from stackwise.tracking import schema_template

    schema_template.build(uri, _initialize, lambda path: _read_sqlite(path, str(path)).complete)


def _initialize(uri: str) -> None:
    """MLflow's own first-time creation (what `mlflow db upgrade` runs on an empty database)."""
    from mlflow.store.db.utils import _initialize_tables, create_sqlalchemy_engine

    engine = create_sqlalchemy_engine(uri)  # type: ignore[no-untyped-call]
    try:
        _initialize_tables(engine)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise LABEL.fail(
            _masked(uri),
            f"could not be created by MLflow ({first_line(exc)})",
            f"check that it is writable, or point {LABEL.setting} at another store",
        ) from None
    finally:
        engine.dispose()


def _engine(path: Path) -> Any:
    import sqlalchemy as sa

    return sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)


def _read_sqlite(path: Path, location: str) -> _SchemaState:
    engine = _engine(path)
    try:
        with engine.connect() as conn:
            return _SchemaState.read(conn, server=False)
    except TrackingError:
        raise
    except Exception as exc:  # "file is not a database", "database is locked"
        raise LABEL.fail(
            location,
            f"cannot be read ({first_line(exc)})",
            f"move it aside (mv {path} {path}.broken) or point {LABEL.setting} at another file",
        ) from None
    finally:
        engine.dispose()


def _quiet_mlflow() -> None:
    for noisy in ("mlflow.store.db.utils", "alembic.runtime.migration", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclasses.dataclass(frozen=True)
class _SchemaState:
    """What an MLflow database holds, against what this MLflow expects."""

    tables: frozenset[str]
    revisions: tuple[str, ...]  # rows of alembic_version
    expected: frozenset[str]  # MLflow's ORM tables
    head: str  # the latest alembic revision this MLflow knows

    @classmethod
    def read(cls, conn: Any, *, server: bool) -> _SchemaState:
        import sqlalchemy as sa
        from mlflow.store.db.base_sql_model import Base
        from mlflow.store.db.utils import _get_latest_schema_revision

        tables = frozenset(sa.inspect(conn).get_table_names())
        revisions: tuple[str, ...] = ()
        if "alembic_version" in tables:
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            revisions = tuple(str(r[0]) for r in rows)
        expected = frozenset(Base.metadata.tables)
        if server:  # a server database may hold other applications' tables
            tables = frozenset(t for t in tables if t in expected or _is_mlflow_extra(t))
        return cls(tables, revisions, expected, _get_latest_schema_revision())  # type: ignore[no-untyped-call]

    @property
    def leftovers(self) -> list[str]:
        return sorted(t for t in self.tables if t.startswith("_alembic_tmp_"))

    @property
    def fresh(self) -> bool:
        """Nothing of MLflow's here yet: create the store."""
        return not self.tables

    @property
    def upgradable(self) -> bool:
        """Whole, at an older revision this MLflow knows, without the tables later migrations
        add: MLflow upgrades such a store on first use (SqlAlchemyStore.__init__ runs
        `_initialize_tables` when a table is missing), so stackwise does too, serialized."""
        return (
            len(self.revisions) == 1
            and self.revisions[0] != self.head
            and not self.leftovers
            and not self.expected <= self.tables
            and _known_revision(self.revisions[0])
        )

    @property
    def complete(self) -> bool:
        return (
            self.expected <= self.tables and self.revisions == (self.head,) and not self.leftovers
        )

    @property
    def problem(self) -> str:
        if self.leftovers:
            shown = ", ".join(self.leftovers[:3])
            return f"was left half-migrated (leftover tables {shown})"
        if len(self.revisions) != 1:
            return (
                f"was left half-migrated (alembic_version holds {len(self.revisions)} rows; "
                "MLflow expects exactly one)"
            )
        if self.revisions[0] != self.head:
            if _known_revision(self.revisions[0]):
                return (
                    f"has an out-of-date schema (revision {self.revisions[0]}; this MLflow "
                    f"expects {self.head})"
                )
            return (
                f"has schema revision {self.revisions[0]}, unknown to this MLflow "
                f"({_mlflow_version()}): a newer MLflow wrote it"
            )
        missing = sorted(self.expected - self.tables)
        return f"was left half-created (missing tables {', '.join(missing[:3])})"

    def fix(self, uri: str) -> str | None:
        """The fix when the schema is whole but of another version; None when it is broken."""
        if self.leftovers or len(self.revisions) != 1 or self.revisions[0] == self.head:
            return None
        if _known_revision(self.revisions[0]):
            return f"back it up, then run: mlflow db upgrade {uri}"
        return "upgrade MLflow (pip install -U mlflow), or point tracking_uri at another store"

    def holds_data(self, conn: Any) -> bool:
        """True unless every table holds only what MLflow seeds into a new store (the Default
        experiment, the default workspace, the schema revision). Unreadable counts as data."""
        import sqlalchemy as sa

        for table in sorted(self.tables):
            base = table.removeprefix("_alembic_tmp_")
            if base in _SEEDED and _SEEDED[base] is None:
                continue
            where = f" WHERE {_SEEDED[base]}" if base in _SEEDED else ""
            try:
                row = conn.execute(sa.text(f'SELECT 1 FROM "{table}"{where} LIMIT 1')).first()
            except Exception:
                return True
            if row is not None:
                return True
        return False


def _is_mlflow_extra(table: str) -> bool:
    return table == "alembic_version" or table.startswith("_alembic_tmp_")


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    try:
        ScriptDirectory.from_config(_get_alembic_config("")).get_revision(revision)  # type: ignore[no-untyped-call]
    except Exception:
        return False
    return True


def _mlflow_version() -> str:
    from importlib.metadata import version

    return f"mlflow {version('mlflow')}"
