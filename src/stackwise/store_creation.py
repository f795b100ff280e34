"""First-time creation of the embedded database stores (MLflow's tracking store and the run
state store): once, serialized across processes, and atomic; and a short, early probe of each.

SQLite (a file):
- the folder is probed by writing a file in it, the file (when it exists) with access(2), so
  a read-only mount or an immutable (`chattr +i`) folder or file is caught even for root, who
  passes every permission-bit check;
- a cross-process lock (`filelock`: an flock on `.NAME.lock` beside the file, which the kernel
  releases when its holder dies, even by SIGKILL) serializes creation;
- a new store is built under a temporary name (`.NAME.tmp-PID-RANDOM`) and moved into place
  with `os.replace` only when complete, so a kill at any moment leaves no store or a whole
  one; the next creator removes the leftovers of killed ones, under the lock.

PostgreSQL: the server is probed with a connect timeout of CONNECT_TIMEOUT_S seconds, then a
session-level advisory lock (`pg_try_advisory_lock`, released by the server when the holder's
connection ends) serializes creation; PostgreSQL's DDL is transactional.

Errors name the store, the problem and the fix, as the caller's `StackwiseError` subclass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stackwise.errors import StackwiseError

#: Seconds to wait for a database server to accept a connection (libpq's `connect_timeout`,
#: whose minimum is 2), instead of the drivers' and MLflow's retries (about 105 s).
CONNECT_TIMEOUT_S = 5
#: Seconds to wait for another process to finish creating a store (MLflow's schema takes about
#: 3 s on a local disk).
LOCK_TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class StoreLabel:
    """How messages name a kind of store and where the user changes it."""

    what: str  # "MLflow tracking store"
    setting: str  # "tracking_uri in stackwise.yaml (or MLFLOW_TRACKING_URI)"
    error: type[StackwiseError]

    def fail(self, location: object, problem: str, fix: str) -> StackwiseError:
        """`the WHAT LOCATION PROBLEM; FIX.` as one line."""
        text = f"the {self.what} {location} {problem}; {fix}."
        return self.error(" ".join(text.split()))


def first_line(exc: BaseException) -> str:
    """The driver's own words, without SQLAlchemy's statement dump and background link."""
    inner = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return lines[0] if lines else type(inner).__name__


# -- SQLite -----------------------------------------------------------------------------------
def sqlite_path(url: Any) -> Path | None:
    """The file of a `sqlite:///PATH` URL (a string or SQLAlchemy URL); None when in memory."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).absolute()


def check_sqlite_writable(path: Path, label: StoreLabel, location: str) -> None:
    """Create the folder and prove it writable by writing in it; check the file (when it
    exists) is writable. Raises `label.error`."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise label.fail(
            location,
            f"cannot be created: its folder {folder} cannot be made ({exc.strerror})",
            f"point {label.setting} at a writable folder",
        ) from None
    # Not named like a creator's leftover (`.NAME.tmp-*`): another process cleaning those up
    # must not delete this probe under our feet.
    probe = folder / f".{path.name}-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink(missing_ok=True)
    except OSError as exc:
        raise label.fail(
            location,
            f"is in a read-only folder: {folder} ({exc.strerror})",
            f"make {folder} writable or point {label.setting} at a writable folder",
        ) from None
    # Not open()+close(): closing any descriptor of a file drops every POSIX lock this process
    # holds on it, SQLite's included ("How To Corrupt An SQLite Database File", 2.2). access(2)
    # goes through the same inode_permission as open, so it fails for root too on an
    # immutable file (EPERM) or a read-only mount (EROFS).
    if path.exists() and not os.access(path, os.W_OK):
        raise label.fail(
            location,
            "is read-only",
            f"make {path} writable (chmod u+w, chattr -i) or point {label.setting} at another file",
        )


@contextlib.contextmanager
def file_lock(path: Path, label: StoreLabel, location: str) -> Iterator[None]:
    """Hold `.NAME.lock` beside `path`: one creator at a time, across processes."""
    import filelock

    lock_path = path.parent / f".{path.name}.lock"
    try:
        with filelock.FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S):
            yield
    except filelock.Timeout:
        raise label.fail(
            location,
            f"is being created by another process that has held {lock_path} for "
            f"over {LOCK_TIMEOUT_S:.0f} s",
            "wait for it to finish, or stop it (`fuser " + str(lock_path) + "` shows which)",
        ) from None


def remove_leftovers(path: Path) -> list[Path]:
    """Delete temporary files of creators that were killed (call under `file_lock`): the
    store's own (`.NAME.tmp-*`) and those of copies beside it (`.NAME.SUFFIX.tmp-*`)."""
    removed = []
    found = [*path.parent.glob(f".{path.name}.tmp-*"), *path.parent.glob(f".{path.name}.*.tmp-*")]
    for leftover in found:
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed.append(leftover)
    return removed


def create_sqlite_file(path: Path, build: Callable[[str], None]) -> None:
    """Run `build(URL)` on a temporary SQLite file beside `path`, then move it into place.
    Call under `file_lock`; `build` must close every connection it opened."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        build(f"sqlite:///{tmp}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def copy_sqlite(path: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (its online backup API), written under a
    temporary name and moved into place, so `target` is whole or absent."""
    import sqlite3
    from contextlib import closing

    def backup(url: str) -> None:
        copy = url.removeprefix("sqlite:///")
        with (
            contextlib.closing(sqlite3.connect(path)) as src,
            closing(sqlite3.connect(copy)) as dst,
        ):
            src.backup(dst)

    create_sqlite_file(target, backup)


def move_aside(path: Path) -> Path:
    """Rename a store (and its SQLite journal files) to `NAME.broken-YYYYmmdd-HHMMSS`."""
    target = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("-wal", "-shm", "-journal", ""):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, target.with_name(target.name + suffix))
    return target


# -- database servers -------------------------------------------------------------------------
def connect_args(url: Any) -> dict[str, Any]:
    """Driver arguments that bound the time to connect, per dialect."""
    from sqlalchemy.engine import make_url

    backend = make_url(url).get_backend_name()
    if backend in ("postgresql", "mysql"):
        return {"connect_timeout": CONNECT_TIMEOUT_S}
    if backend == "mssql":
        return {"timeout": CONNECT_TIMEOUT_S}
    return {}


@contextlib.contextmanager
def server_lock(url: Any, name: str, label: StoreLabel, location: str) -> Iterator[Any]:
    """Connect within CONNECT_TIMEOUT_S (or fail with the fix), then, on PostgreSQL, hold the
    advisory lock `name` until the block ends. Yields the (autocommit) connection."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args(url))
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise label.fail(
            location,
            f"needs a database driver that is not installed ({first_line(exc)})",
            "install it (PostgreSQL: pip install 'stackwise[postgres]')",
        ) from None
    try:
        try:
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception as exc:
            raise label.fail(
                location,
                f"cannot be reached ({first_line(exc)})",
                f"start the database server, check the host, port, user and database name, or "
                f"point {label.setting} at a reachable one. Nothing was run",
            ) from None
        with conn:
            if engine.dialect.name != "postgresql":
                yield conn
                return
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() > deadline:
                    raise label.fail(
                        location,
                        f"is being created by another session holding the advisory "
                        f"lock {name!r} for over {LOCK_TIMEOUT_S:.0f} s",
                        "wait for it to finish, or end that session (pg_stat_activity shows it)",
                    )
                time.sleep(0.1)
            try:
                yield conn
            finally:
                with contextlib.suppress(Exception):
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


# -- tables of a store that needs no migrations ----------------------------------------------
def create_tables_once(md: Any, engine: Any, label: StoreLabel) -> None:
    """Create the missing tables of `md` (SQLAlchemy MetaData) in `engine`'s database, one
    process at a time; a new SQLite file appears whole or not at all. Call before `engine`
    first connects (connecting creates an empty SQLite file)."""
    location = engine.url.render_as_string(hide_password=True)
    if engine.dialect.name == "sqlite":
        path = sqlite_path(engine.url)
        if path is None:
            md.create_all(engine)
            return
        check_sqlite_writable(path, label, location)
        with file_lock(path, label, location):
            remove_leftovers(path)
            if not path.exists():
                create_sqlite_file(path, lambda url: _create_all(md, url))
            md.create_all(engine, checkfirst=True)
        return
    with server_lock(engine.url, f"stackwise:create:{label.what}", label, location):
        md.create_all(engine, checkfirst=True)


def _create_all(md: Any, url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        md.create_all(engine)
    finally:
        engine.dispose()
