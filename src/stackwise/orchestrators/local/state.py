"""The run state store: runs, their steps and the step cache, in SQLite (default, WAL mode) or
PostgreSQL, through SQLAlchemy Core. Only the orchestrator's main thread writes, so there is
no locking inside a run; across processes the database's own transactions suffice.

A run records the process that owns it (host, pid and start time), so that a run left RUNNING
by a process that was SIGKILLed is recognised as stale and can be resumed, even when its pid
now belongs to another process. The values of secret-named parameters are never stored.
Columns added by later versions are added to an older store when it is opened.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

from stackwise.caching import CacheEntry
from stackwise.errors import RunNotFoundError, StateStoreError
from stackwise.orchestrators.base import RUN_TERMINAL, RunRecord, StepRecord
from stackwise.orchestrators.local.rows import (
    add_missing_columns,
    create_tables,
    decode_refs,
    dumps,
    encode_fields,
    relative_uri,
    resolved_uri,
)
from stackwise.processes import current_identity
from stackwise.tracking.redaction import masked_params

__all__ = [
    "RUN_TERMINAL", "RunRecord", "StateStore", "StepRecord", "add_missing_columns", "create_tables",
]


def pid_alive(pid: int) -> bool:
    """Kept for callers of stackwise 0.1; see stackwise.processes."""
    from stackwise.processes import pid_alive as alive

    return alive(pid)


class StateStore:
    """`base_dir`: the project folder (default: the current folder). Store locations inside
    it (the tracking store, the artifact store) are kept relative to it, so that a moved or
    renamed project still finds its runs' stores; they are resolved against it again when
    read."""

    def __init__(
        self, url: str, base_dir: Path | None = None, durability: str = "normal"
    ) -> None:
        self.url = url
        self.synchronous = "FULL" if durability == "full" else "NORMAL"
        self.base_dir = (base_dir or Path.cwd()).resolve()
        try:
            self._open()
        except StateStoreError:
            raise
        except Exception as exc:
            raise StateStoreError(
                f"cannot open the state store {url!r} ({type(exc).__name__}: {exc}); check the "
                "URL in state_store (sqlite:///PATH or postgresql://USER@HOST:PORT/DB)."
            ) from None

    def _open(self) -> None:
        import sqlalchemy as sa

        self.engine = sa.create_engine(self.url, future=True)
        if self.engine.dialect.name == "sqlite":

            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(conn: Any, _record: Any) -> None:
                cur = conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={self.synchronous}")  # one of two constants
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

        md = sa.MetaData()
        self.runs = sa.Table(
            "stackwise_runs", md,
            sa.Column("run_id", sa.String(64), primary_key=True),
            sa.Column("pipeline", sa.String(256), nullable=False, index=True),
            sa.Column("pipeline_ref", sa.Text, nullable=False),
            sa.Column("pipeline_version", sa.String(64), nullable=False),
            sa.Column("params", sa.Text, nullable=False),
            sa.Column("interval", sa.Text),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("mlflow_run_id", sa.String(64)),
            sa.Column("experiment_id", sa.String(64)),
            sa.Column("tracking_uri", sa.Text),
            sa.Column("artifact_root", sa.Text, nullable=False),
            sa.Column("orchestrator", sa.String(32), nullable=False),
            sa.Column("compute", sa.String(32), nullable=False),
            sa.Column("options", sa.Text, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False, index=True),
            sa.Column("ended_at", sa.Float),
            sa.Column("host", sa.String(256)),
            sa.Column("pid", sa.Integer),
            sa.Column("pid_start", sa.String(64)),
            sa.Column("error", sa.Text),
        )  # fmt: skip
        self.steps = sa.Table(
            "stackwise_steps", md,
            sa.Column("run_id", sa.String(64), primary_key=True),
            sa.Column("step", sa.String(128), primary_key=True),
            sa.Column("position", sa.Integer, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("attempt", sa.Integer, nullable=False),
            sa.Column("cached", sa.Boolean, nullable=False),
            sa.Column("mlflow_run_id", sa.String(64)),
            sa.Column("started_at", sa.Float),
            sa.Column("ended_at", sa.Float),
            sa.Column("duration_s", sa.Float),
            sa.Column("outputs", sa.Text, nullable=False),
            sa.Column("metrics", sa.Text),
            sa.Column("error", sa.Text),
            sa.Column("cache_key", sa.String(64)),
            sa.Column("code_version", sa.String(64)),
            sa.Column("worker", sa.String(320)),
        )  # fmt: skip
        self.cache = sa.Table(
            "stackwise_cache", md,
            sa.Column("cache_key", sa.String(64), primary_key=True),
            sa.Column("pipeline", sa.String(256), nullable=False),
            sa.Column("step", sa.String(128), nullable=False),
            sa.Column("outputs", sa.Text, nullable=False),
            sa.Column("metrics", sa.Text),
            sa.Column("run_id", sa.String(64), nullable=False),
            sa.Column("mlflow_run_id", sa.String(64)),
            sa.Column("created_at", sa.Float, nullable=False),
        )  # fmt: skip
        #: Prepared step UPDATEs, by the tuple of columns they set (see `_write_step`).
        self._step_updates: dict[tuple[str, ...], Any] = {}
        self._cache_upsert: Any = None
        create_tables(md, self.engine)
        add_missing_columns(self.engine, [self.runs, self.steps])
        from stackwise.orchestrators.local.hotwrite import HotWriter
        from stackwise.store_creation import sqlite_path
        from stackwise.write_turns import write_turns

        sqlite = self.engine.dialect.name == "sqlite"
        #: Held around each write transaction: writers of this store take turns in this
        #: process and, on SQLite, across the processes of this host (stackwise.write_turns).
        self.turns = write_turns(sqlite_path(self.url) if sqlite else None)
        self._hot = HotWriter(self.engine, self.turns)
        #: Single-statement reads (a cache lookup): on PostgreSQL in autocommit, one round
        #: trip each instead of BEGIN, SELECT and ROLLBACK.
        self._reads = (
            self.engine
            if sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        #: Cache rows waiting for their run's next write, by run id (see `defer_cache`).
        self._deferred: dict[str, list[dict[str, Any]]] = {}
        self._deferring = threading.Lock()
        self._inserts = (self.runs.insert(), self.steps.insert())

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, run: RunRecord, step_names: list[str]) -> None:
        """The run's row and its steps' rows, in one transaction."""
        pending = self._step_row(StepRecord(""))
        steps = [
            {
                **(self._step_row(run.steps[n]) if n in run.steps else pending),
                "run_id": run.run_id,
                "step": n,
                "position": i,
            }
            for i, n in enumerate(step_names)
        ]
        self._hot.write([(self._inserts[0], self._run_row(run)), (self._inserts[1], steps)])

    def claim(self, run: RunRecord) -> bool:
        """Take ownership of a stale, failed or killed run for resuming. Atomic: of two
        processes resuming the same run, exactly one wins."""
        cond = (self.runs.c.run_id == run.run_id) & (self.runs.c.status == run.status)
        if run.pid is not None:
            cond = cond & (self.runs.c.pid == run.pid)
        me = current_identity()
        with self.turns, self.engine.begin() as conn:
            result = conn.execute(
                self.runs.update()
                .where(cond)
                .values(status="RUNNING", host=me.host, pid=me.pid, pid_start=me.start,
                        ended_at=None, error=None)  # fmt: skip
            )
            if result.rowcount != 1:
                return False
        run.status, run.host, run.pid, run.pid_start = "RUNNING", me.host, me.pid, me.start
        return True

    def get_run(self, run_id: str) -> RunRecord:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.runs).where(self.runs.c.run_id == run_id)).first()
            if row is None:
                near = conn.execute(
                    sa.select(self.runs.c.run_id)
                    .where(self.runs.c.run_id.startswith(run_id, autoescape=True))
                    .limit(4)
                ).all()
                if len(near) == 1:
                    return self.get_run(near[0][0])
                if near:
                    ids = ", ".join(r[0] for r in near[:3])
                    raise RunNotFoundError(
                        f"{run_id!r} is the start of several run ids ({ids}"
                        f"{', ...' if len(near) > 3 else ''}); give more of the id."
                    )
                raise RunNotFoundError(
                    f"no run {run_id!r} in the state store {self.url}; list runs with "
                    "`stackwise runs list`."
                )
            steps = conn.execute(
                sa.select(self.steps)
                .where(self.steps.c.run_id == row.run_id)
                .order_by(self.steps.c.position)
            ).all()
        run = self._run_from_row(row)
        run.steps = {s.step: self._step_from_row(s) for s in steps}
        return run

    def list_runs(self, limit: int = 50, pipeline: str | None = None) -> list[RunRecord]:
        import sqlalchemy as sa

        query = sa.select(self.runs).order_by(self.runs.c.created_at.desc()).limit(limit)
        if pipeline:
            query = query.where(self.runs.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [self._run_from_row(r) for r in conn.execute(query).all()]

    # -- steps --------------------------------------------------------------------------------
    def update_step(self, run_id: str, step: str, **fields: Any) -> None:
        """One step transition: one UPDATE in one transaction."""
        self._write_step(run_id, step, encode_fields(fields))

    def finish_step(self, run_id: str, record: StepRecord) -> None:
        """Record a step's outcome (its cache entry is the runner's, see stackwise.caching)."""
        self._write_step(run_id, record.name, self._step_row(record))

    def write_steps(self, run_id: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Several step transitions (rows from `step_fields` or `step_row`) in one
        transaction: the orchestrator's writes of one turn of its loop."""
        cache = self._take_deferred(run_id) if self._deferred else []
        try:
            self._hot.write(
                [(self._step_update(row), {**row, "w_run_id": run_id, "w_step": step})
                 for step, row in rows]
                + ([(self._upsert_cache(), cache)] if cache else [])
            )  # fmt: skip
        except BaseException:
            if cache:  # not written: they wait for the next write again
                with self._deferring:
                    self._deferred.get(run_id, []).extend(cache)
            raise

    @staticmethod
    def step_fields(fields: dict[str, Any]) -> dict[str, Any]:
        """Some columns of a step row, encoded for `write_steps`."""
        return encode_fields(fields)

    def step_row(self, record: StepRecord) -> dict[str, Any]:
        """A step's whole row, encoded for `write_steps`."""
        return self._step_row(record)

    def _write_step(self, run_id: str, step: str, row: dict[str, Any]) -> None:
        self.write_steps(run_id, [(step, row)])

    def _step_update(self, row: dict[str, Any]) -> Any:
        """The UPDATE is built once per set of columns and reused (bound parameters), so the
        hot path neither builds nor compiles a statement per call."""
        import sqlalchemy as sa

        columns = tuple(row)
        stmt = self._step_updates.get(columns)
        if stmt is None:
            stmt = self.steps.update().where(
                (self.steps.c.run_id == sa.bindparam("w_run_id"))
                & (self.steps.c.step == sa.bindparam("w_step"))
            )
            self._step_updates[columns] = stmt
        return stmt

    def _upsert_cache(self) -> Any:
        """Insert or replace in one statement: two processes finishing the same cached step
        at once must both succeed (a delete-then-insert races on the primary key). Built
        once; the row comes as bound parameters."""
        if self._cache_upsert is None:
            if self.engine.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                stmt: Any = pg_insert(self.cache)
            else:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                stmt = sqlite_insert(self.cache)
            updates = {c.name: stmt.excluded[c.name] for c in self.cache.c if c.name != "cache_key"}
            self._cache_upsert = stmt.on_conflict_do_update(
                index_elements=["cache_key"], set_=updates
            )
        return self._cache_upsert

    def cache_lookup(self, key: str) -> CacheEntry | None:
        """The earlier success with this cache key, if any."""
        import sqlalchemy as sa

        with self._reads.connect() as conn:
            row = conn.execute(sa.select(self.cache).where(self.cache.c.cache_key == key)).first()
        if row is None:
            return None
        return CacheEntry(
            key=key,
            pipeline=row.pipeline,
            step=row.step,
            outputs=decode_refs(json.loads(row.outputs)),
            metrics=json.loads(row.metrics) if row.metrics else {},
            run_id=row.run_id,
            mlflow_run_id=row.mlflow_run_id,
            created_at=row.created_at,
        )

    def defer_cache(self, run_id: str) -> None:
        """Until `undefer_cache(run_id)`, cache entries of that run recorded in this process
        wait for the run's next `write_steps` and commit with it, the step's outcome among
        them, instead of in a transaction of their own (the executor of an untracked run)."""
        with self._deferring:
            self._deferred[run_id] = []

    def undefer_cache(self, run_id: str) -> None:
        """Stop deferring; entries still waiting are written now."""
        with self._deferring:
            rows = self._deferred.pop(run_id, [])
        if rows:
            self._hot.write([(self._upsert_cache(), rows)])

    def _take_deferred(self, run_id: str) -> list[dict[str, Any]]:
        with self._deferring:
            rows = self._deferred.get(run_id)
            if not rows:
                return []
            self._deferred[run_id] = []
            return rows

    def cache_record(self, entry: CacheEntry) -> None:
        """Insert or replace a cache entry (two processes recording one key both succeed); of
        a run whose entries are deferred (`defer_cache`), with the run's next write."""
        row = {
            "cache_key": entry.key, "pipeline": entry.pipeline, "step": entry.step,
            "outputs": json.dumps({k: v.model_dump() for k, v in entry.outputs.items()}),
            "metrics": dumps(entry.metrics), "run_id": entry.run_id,
            "mlflow_run_id": entry.mlflow_run_id, "created_at": entry.created_at,
        }  # fmt: skip
        with self._deferring:
            waiting = self._deferred.get(entry.run_id)
            if waiting is not None:
                waiting.append(row)
                return
        self._hot.write([(self._upsert_cache(), row)])

    # -- rows ---------------------------------------------------------------------------------
    def _run_row(self, run: RunRecord) -> dict[str, Any]:
        row = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
        row.pop("steps")
        row["params"] = masked_params(run.params)
        return self._portable(encode_fields(row))

    def _portable(self, row: dict[str, Any]) -> dict[str, Any]:
        if row.get("tracking_uri"):
            row["tracking_uri"] = relative_uri(row["tracking_uri"], self.base_dir)
        if row.get("artifact_root"):
            row["artifact_root"] = relative_uri(row["artifact_root"], self.base_dir)
        return row

    def update_run(self, run_id: str, **fields: Any) -> None:
        import sqlalchemy as sa

        row = self._portable(encode_fields(fields))
        columns = ("run",) + tuple(row)
        stmt = self._step_updates.get(columns)  # prepared once per set of columns
        if stmt is None:
            stmt = self.runs.update().where(self.runs.c.run_id == sa.bindparam("w_run_id"))
            self._step_updates[columns] = stmt
        self._hot.write([(stmt, {**row, "w_run_id": run_id})])

    @staticmethod
    def _step_row(step: StepRecord) -> dict[str, Any]:
        return encode_fields({k: getattr(step, k) for k in _STEP_COLUMNS})

    def _run_from_row(self, row: Any) -> RunRecord:
        data = dict(row._mapping)
        data["params"] = json.loads(data["params"])
        data["options"] = json.loads(data["options"])
        data["interval"] = json.loads(data["interval"]) if data["interval"] else None
        for key in ("tracking_uri", "artifact_root"):
            if data.get(key):
                data[key] = resolved_uri(data[key], self.base_dir)
        return RunRecord(**data)

    @staticmethod
    def _step_from_row(row: Any) -> StepRecord:
        data = dict(row._mapping)
        data.pop("run_id")
        data.pop("position")
        name = data.pop("step")
        data["outputs"] = decode_refs(json.loads(data["outputs"]))
        data["metrics"] = json.loads(data["metrics"]) if data["metrics"] else {}
        data["cached"] = bool(data["cached"])
        return StepRecord(name=name, **data)


#: The StepRecord fields a step row stores (all but the name, which is the key).
_STEP_COLUMNS = tuple(f.name for f in dataclasses.fields(StepRecord) if f.name != "name")
