"""The run state store: runs, their steps and the step cache, in SQLite (default, WAL mode) or
PostgreSQL, through SQLAlchemy Core. Only the orchestrator's main thread writes, so there is
no locking inside a run; across processes the database's own transactions suffice.

A run records the host and pid that own it, so that a run left RUNNING by a process that was
SIGKILLed is recognised as stale and can be resumed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from stackwise.errors import RunNotFoundError, StateStoreError

RUN_TERMINAL = ("SUCCEEDED", "FAILED", "KILLED")


@dataclasses.dataclass
class StepRecord:
    name: str
    status: str = "PENDING"
    attempt: int = 0
    cached: bool = False
    mlflow_run_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    outputs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None
    cache_key: str | None = None


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    outputs: dict[str, dict[str, Any]]
    metrics: dict[str, float]
    run_id: str
    mlflow_run_id: str | None


@dataclasses.dataclass
class RunRecord:
    run_id: str
    pipeline: str
    pipeline_ref: str
    pipeline_version: str
    params: dict[str, Any]
    status: str
    created_at: float
    interval: dict[str, str] | None = None
    mlflow_run_id: str | None = None
    experiment_id: str | None = None
    tracking_uri: str | None = None
    artifact_root: str = ""
    orchestrator: str = "local"
    compute: str = "local"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    ended_at: float | None = None
    host: str | None = None
    pid: int | None = None
    error: str | None = None
    steps: dict[str, StepRecord] = dataclasses.field(default_factory=dict)

    @property
    def stale(self) -> bool:
        """RUNNING, but its owning process on this host is gone (SIGKILL, power loss)."""
        if self.status != "RUNNING" or self.pid is None:
            return False
        if self.host != socket.gethostname():
            return False
        return not pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class StateStore:
    def __init__(self, url: str) -> None:
        self.url = url
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
                cur.execute("PRAGMA synchronous=NORMAL")
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
        create_tables(md, self.engine)

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, run: RunRecord, step_names: list[str]) -> None:
        row = self._run_row(run)
        with self.engine.begin() as conn:
            conn.execute(self.runs.insert().values(**row))
            conn.execute(
                self.steps.insert(),
                [
                    {
                        **self._step_row(run.steps.get(n) or StepRecord(n)),
                        "run_id": run.run_id,
                        "step": n,
                        "position": i,
                    }
                    for i, n in enumerate(step_names)
                ],
            )

    def update_run(self, run_id: str, **fields: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self.runs.update().where(self.runs.c.run_id == run_id).values(**_encode(fields))
            )

    def claim(self, run: RunRecord) -> bool:
        """Take ownership of a stale, failed or killed run for resuming. Atomic: of two
        processes resuming the same run, exactly one wins."""
        cond = (self.runs.c.run_id == run.run_id) & (self.runs.c.status == run.status)
        if run.pid is not None:
            cond = cond & (self.runs.c.pid == run.pid)
        with self.engine.begin() as conn:
            result = conn.execute(
                self.runs.update()
                .where(cond)
                .values(
                    status="RUNNING",
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    ended_at=None,
                    error=None,
                )
            )
            return bool(result.rowcount == 1)

    def get_run(self, run_id: str) -> RunRecord:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.runs).where(self.runs.c.run_id == run_id)).first()
            if row is None:
                near = conn.execute(
                    sa.select(self.runs.c.run_id)
                    .where(self.runs.c.run_id.like(f"{run_id}%"))
                    .limit(2)
                ).all()
                if len(near) == 1:
                    return self.get_run(near[0][0])
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
        with self.engine.begin() as conn:
            conn.execute(
                self.steps.update()
                .where((self.steps.c.run_id == run_id) & (self.steps.c.step == step))
                .values(**_encode(fields))
            )

    def finish_step(self, run_id: str, record: StepRecord, pipeline: str, cache: bool) -> None:
        """Record a finished step and, when it succeeded with a cache key, its cache entry,
        in one transaction."""

        row = self._step_row(record)
        with self.engine.begin() as conn:
            conn.execute(
                self.steps.update()
                .where((self.steps.c.run_id == run_id) & (self.steps.c.step == record.name))
                .values(**row)
            )
            if cache and record.status == "SUCCEEDED" and record.cache_key and not record.cached:
                entry = {
                    "cache_key": record.cache_key,
                    "pipeline": pipeline,
                    "step": record.name,
                    "outputs": row["outputs"],
                    "metrics": row["metrics"],
                    "run_id": run_id,
                    "mlflow_run_id": record.mlflow_run_id,
                    "created_at": time.time(),
                }
                conn.execute(self._upsert_cache(entry))

    def _upsert_cache(self, entry: dict[str, Any]) -> Any:
        """Insert or replace in one statement: two processes finishing the same cached step
        at once must both succeed (a delete-then-insert races on the primary key)."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(self.cache).values(**entry)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(self.cache).values(**entry)
        updates = {k: v for k, v in entry.items() if k != "cache_key"}
        return stmt.on_conflict_do_update(index_elements=["cache_key"], set_=updates)

    def cache_lookup(self, key: str) -> CacheEntry | None:
        """The earlier success with this cache key, if any."""
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.cache).where(self.cache.c.cache_key == key)).first()
        if row is None:
            return None
        return CacheEntry(
            outputs=json.loads(row.outputs),
            metrics=json.loads(row.metrics) if row.metrics else {},
            run_id=row.run_id,
            mlflow_run_id=row.mlflow_run_id,
        )

    # -- rows ---------------------------------------------------------------------------------
    @staticmethod
    def _run_row(run: RunRecord) -> dict[str, Any]:
        row = dataclasses.asdict(run)
        row.pop("steps")
        return _encode(row)

    @staticmethod
    def _step_row(step: StepRecord) -> dict[str, Any]:
        row = dataclasses.asdict(step)
        row.pop("name")
        return _encode(row)

    @staticmethod
    def _run_from_row(row: Any) -> RunRecord:
        data = dict(row._mapping)
        data["params"] = json.loads(data["params"])
        data["options"] = json.loads(data["options"])
        data["interval"] = json.loads(data["interval"]) if data["interval"] else None
        return RunRecord(**data)

    @staticmethod
    def _step_from_row(row: Any) -> StepRecord:
        data = dict(row._mapping)
        data.pop("run_id")
        data.pop("position")
        name = data.pop("step")
        data["outputs"] = json.loads(data["outputs"])
        data["metrics"] = json.loads(data["metrics"]) if data["metrics"] else {}
        data["cached"] = bool(data["cached"])
        return StepRecord(name=name, **data)


def create_tables(md: Any, engine: Any) -> None:
    """Create the missing tables of `md` once, one process at a time; a new SQLite file
    appears whole or not at all (stackwise.store_creation). Call before `engine` connects."""
    from stackwise.store_creation import StoreLabel, create_tables_once

    create_tables_once(md, engine, StoreLabel("run state store", "state_store in stackwise.yaml",
                                              StateStoreError))  # fmt: skip


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in fields.items():
        if key in ("params", "options", "outputs", "interval", "metrics"):
            out[key] = json.dumps(value, default=str) if value is not None else None
        else:
            out[key] = value
    if "outputs" in out and out["outputs"] is None:
        out["outputs"] = "{}"
    return out
