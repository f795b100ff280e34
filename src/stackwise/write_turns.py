"""Writers of one SQLite database taking turns without SQLite's busy handler.

SQLite takes one writer at a time. A writer that finds the database locked waits in SQLite's
busy handler, which sleeps between tries (1, 2, 5, 10, 15, 20, 25 ms and on up to 100 ms:
`sqliteDefaultBusyCallback` in SQLite's main.c), so two processes writing the same store, a
backfill's worker processes say, lose most of their time asleep. Here the threads of a
process take turns on a lock, and the processes on `flock(2)` of a lock file beside the
database (`.NAME.writes`): a waiter wakes as soon as the holder lets go. A backfill's
processes claim their intervals the same way.

`flock` locks are advisory and independent of the POSIX locks SQLite itself takes, so this
adds ordering and takes nothing away: a writer that does not take its turn here (another
program, MLflow's own fluent API in a step) is still ordered by SQLite as before. Where the
lock file cannot be opened (a read-only folder) or the platform has no `flock` (Windows),
only the threads of this process take turns.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def write_turns(database: Path | None) -> Turns:
    """Turns for the writers of the SQLite database file `database` (None: a database without
    a file, where only threads take turns), on `.NAME.writes` beside it."""
    return Turns(None if database is None else database.parent / f".{database.name}.writes")


class Turns:
    """A lock held by one thread of one process at a time, across the processes of this host
    that use the same `lock_file` (None: this process's threads only). Blocking: unlike
    `filelock.FileLock`, which retries every 50 ms by default, a waiter wakes when the holder
    lets go. Not reentrant."""

    def __init__(self, lock_file: Path | None) -> None:
        self._threads = threading.Lock()
        self._path = lock_file
        self._fd: int | None = None
        self._pid = 0
        self._held: int | None = None
        _all.add(self)

    def _forked(self) -> None:
        """In a forked child: another thread of the parent may have held the turn at the
        fork, and the child shares the parent's open lock file (and with it the parent's
        lock, for as long as any copy of the descriptor is open), so it closes its copy and
        starts afresh."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # the parent's own copy keeps the parent's lock
        self._threads = threading.Lock()
        self._fd, self._pid, self._held = None, 0, None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fd = self._held = self._descriptor()  # before the flock: released on any error
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError:  # a file system without flock (some network mounts)
                    self._held = None
                    self._abandon(fd)
        except BaseException:
            self._release()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        try:
            if self._held is not None:
                fcntl.flock(self._held, fcntl.LOCK_UN)  # harmless when not (yet) taken
        finally:
            self._held = None
            self._threads.release()

    def _abandon(self, fd: int) -> None:
        """The lock file cannot be locked here: this process's threads take turns only."""
        with contextlib.suppress(OSError):
            os.close(fd)
        self._fd = None

    def _descriptor(self) -> int | None:
        """This process's descriptor of the lock file, opened once per process (a forked child
        opens its own, see `_forked`)."""
        if self._path is None or fcntl is None:
            return None
        if self._pid != os.getpid():
            self._fd, self._pid = None, os.getpid()
            with contextlib.suppress(OSError):  # a read-only folder: threads take turns only
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._fd


_all: weakref.WeakSet[Turns] = weakref.WeakSet()


def _after_fork() -> None:
    for turns in list(_all):
        turns._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
