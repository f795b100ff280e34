"""The state store's per-step writes (a step's row, a cache entry) on one held connection.

A run writes a few rows per step; through SQLAlchemy's engine each transaction cost about
three times what SQLite itself spends (connection checkout, statement cache key, result
setup, reset on return). Here each statement is compiled once by SQLAlchemy for the store's
dialect (SQLite or PostgreSQL) and run on one DBAPI connection the store keeps, several
statements per commit. Writers take turns (`turns`: this process's threads, and on SQLite the
processes of this host, see stackwise.write_turns); another process has its own connection. A
forked child opens its own connection; a failed transaction discards the connection (the next
write opens a new one) and raises as before.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackwise.write_turns import Turns


class HotWriter:
    def __init__(self, engine: Any, turns: Turns) -> None:
        self.engine = engine
        self._lock = turns
        self._conn: Any = None
        self._pid = 0
        #: (statement id, column keys) -> (SQL text, parameter order when positional); the
        #: statements are the store's own, built once.
        self._sql: dict[tuple[int, tuple[str, ...]], tuple[str, tuple[str, ...] | None]] = {}
        self._statements: list[Any] = []  # keeps compiled statements' ids stable

    def write(self, items: Sequence[tuple[Any, dict[str, Any] | list[dict[str, Any]]]]) -> None:
        """Run each (statement, parameters) and commit them together; a list of parameters
        (all with the same keys) runs the statement once per item."""
        with self._lock:
            conn = self._connection()
            try:
                cursor = conn.cursor()
                try:
                    for stmt, params in items:
                        many = params if isinstance(params, list) else [params]
                        if not many:
                            continue
                        sql, order = self._compiled(stmt, many[0])
                        args = [tuple(p[k] for k in order) for p in many] if order else many
                        if isinstance(params, list):
                            cursor.executemany(sql, args)
                        else:
                            cursor.execute(sql, args[0])
                finally:
                    cursor.close()
                conn.commit()
            except BaseException:
                self._discard()
                raise

    def _connection(self) -> Any:
        if self._conn is None or self._pid != os.getpid():
            self._conn = self.engine.raw_connection()  # never the parent's, after a fork
            self._pid = os.getpid()
        return self._conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        with contextlib.suppress(Exception):  # already broken: nothing left to close
            conn.invalidate()

    def _compiled(self, stmt: Any, params: dict[str, Any]) -> tuple[str, tuple[str, ...] | None]:
        key = (id(stmt), tuple(params))
        known = self._sql.get(key)
        if known is None:
            compiled = stmt.compile(dialect=self.engine.dialect, column_keys=list(params))
            order = tuple(compiled.positiontup) if compiled.positional else None
            known = self._sql[key] = (compiled.string, order)
            self._statements.append(stmt)
        return known
