"""Creating the MLflow tracking store is atomic and serialized: processes starting together in
a fresh project all succeed, a SIGKILL at any moment of the first creation leaves no store or a
whole one (and the next run succeeds), and a store left half-migrated by an older version is
repaired when it holds nothing, or reported with the exact fix when it does."""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tests.stores_support import (
    PIPE,
    error_lines,
    mlflow_head,
    run_cli,
    schema_revisions,
    state_runs,
)
from tests.support import stackwise_cmd, start_together

WritePipeline = Callable[..., str]
PG_HOST = ["-h", "127.0.0.1", "-U", "postgres"]


def _parents(uri: str, experiment: str = "pipe") -> list[object]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def _fresh_project(root: Path, write_pipeline: WritePipeline) -> tuple[Path, str]:
    """A new project folder under `root` (no stores yet) with the pipeline in it."""
    folder = root / f"p-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    ref = write_pipeline(PIPE)
    shutil.copy(ref.split(":")[0], folder / "pipe.py")
    return folder, "pipe.py:pipe"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / ".stackwise").glob(".mlflow.db.tmp-*"))


@pytest.mark.slow
def test_two_first_runs_at_once_both_succeed(project: Path, write_pipeline: WritePipeline) -> None:
    for _ in range(3):
        folder, ref = _fresh_project(project, write_pipeline)
        results = start_together(folder, stackwise_cmd("run", ref), stackwise_cmd("run", ref))
        assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
        db = folder / ".stackwise" / "mlflow.db"
        assert schema_revisions(db) == [mlflow_head()]
        assert len(_parents(f"sqlite:///{db}")) == 2
        assert _leftovers(folder) == []


@pytest.mark.slow
def test_two_first_backfills_at_once_both_succeed(
    project: Path, write_pipeline: WritePipeline
) -> None:
    for _ in range(2):
        folder, ref = _fresh_project(project, write_pipeline)
        backfill = stackwise_cmd("backfill", ref, "--start", "2026-01-01", "--end", "2026-01-03",
                                 "--json")  # fmt: skip
        results = start_together(folder, backfill, backfill)
        assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
        for _, out, _ in results:
            statuses = {i["status"] for i in json.loads(out)["intervals"]}
            assert "FAILED" not in statuses, out
        db = folder / ".stackwise" / "mlflow.db"
        assert schema_revisions(db) == [mlflow_head()]
        assert len(_parents(f"sqlite:///{db}")) == 3  # one per interval, whoever ran it


@pytest.mark.slow
def test_sigkill_during_first_creation_leaves_no_store_or_a_whole_one(
    project: Path, write_pipeline: WritePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten SIGKILLs at random moments after creation began (MLflow's tables take 1-6 s here).
    After a kill that left no store, the next start in the same folder is again a first
    creation and must first clear the killed one's leftovers."""
    rng = random.Random()
    folder, ref = _fresh_project(project, write_pipeline)
    db = folder / ".stackwise" / "mlflow.db"
    seen = []
    for kill in range(10):
        # A cache of its own each time: MLflow builds the store (no kept schema to copy), and
        # some kills land while the built schema is being kept.
        monkeypatch.setenv("STACKWISE_CACHE_DIR", str(project / f"cache-{kill}"))
        proc = subprocess.Popen(
            stackwise_cmd("run", ref),
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            began = f".mlflow.db.tmp-{proc.pid}-*"
            while not (db.exists() or any(db.parent.glob(began))) and proc.poll() is None:
                assert time.monotonic() < deadline, "creation never began"
                time.sleep(0.01)
            delay = rng.uniform(0.0, 2.0)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        finally:
            _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err
        seen.append((kill, round(delay, 2), db.exists()))
        if db.exists():  # the kill landed after the store was moved into place: whole
            assert schema_revisions(db) == [mlflow_head()], seen
            MlflowClient(f"sqlite:///{db}").search_experiments()
            folder, ref = _fresh_project(project, write_pipeline)
            db = folder / ".stackwise" / "mlflow.db"
    code, _, err, _ = run_cli(folder, "run", ref)
    assert code == 0, (err, seen)
    assert schema_revisions(db) == [mlflow_head()]
    assert _leftovers(folder) == []
    assert any(not existed for _, _, existed in seen), seen  # some kills hit the creation


@pytest.fixture
def fresh_pg_db(pg_url: str) -> Iterator[str]:
    name = f"sw_mlflow_{uuid.uuid4().hex[:10]}"
    subprocess.run(["createdb", *PG_HOST, name], check=True)
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        subprocess.run(["dropdb", *PG_HOST, "--force", name], check=True)


@pytest.mark.slow
def test_fresh_postgres_store_two_first_runs_at_once(
    project: Path, write_pipeline: WritePipeline, fresh_pg_db: str
) -> None:
    folder, ref = _fresh_project(project, write_pipeline)
    (folder / "stackwise.yaml").write_text(f"tracking_uri: '{fresh_pg_db}'\n")
    results = start_together(folder, stackwise_cmd("run", ref), stackwise_cmd("run", ref))
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert len(_parents(fresh_pg_db)) == 2


# -- stores left half-migrated by an older version --------------------------------------------
def _store(project: Path, template: Path, with_run: bool) -> Path:
    db = project / ".stackwise" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, db)
    if with_run:
        client = MlflowClient(f"sqlite:///{db}")
        run = client.create_run(client.create_experiment("earlier"))
        client.set_terminated(run.info.run_id)
    return db


def _sql(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def test_half_migrated_store_without_runs_is_moved_aside_and_recreated(
    project: Path, write_pipeline: WritePipeline, mlflow_db_template: Path
) -> None:
    """The state two racing first starts left (3 of 3 tries): a leftover batch-migration table
    and no schema revision, so every later run died ("table _alembic_tmp_tags already exists",
    "Online migration expected to match one row")."""
    db = _store(project, mlflow_db_template, with_run=False)
    _sql(db, "CREATE TABLE _alembic_tmp_tags AS SELECT * FROM tags", "DELETE FROM alembic_version")
    code, _, err, _ = run_cli(project, "run", write_pipeline(PIPE))
    assert code == 0, err
    assert schema_revisions(db) == [mlflow_head()]
    backups = list(db.parent.glob("mlflow.db.broken-*"))
    assert len(backups) == 1
    assert "_alembic_tmp_tags" in {
        r[0] for r in sqlite3.connect(backups[0]).execute("SELECT name FROM sqlite_master")
    }
    notices = [line for line in err.splitlines() if "half-migrated" in line]
    assert len(notices) == 1 and str(backups[0]) in notices[0], err


def test_half_migrated_store_with_runs_is_reported_not_touched(
    project: Path, write_pipeline: WritePipeline, mlflow_db_template: Path
) -> None:
    db = _store(project, mlflow_db_template, with_run=True)
    _sql(db, "INSERT INTO alembic_version VALUES ('451aebb31d03')")  # two rows
    before = db.read_bytes()
    code, _, err, _ = run_cli(project, "run", write_pipeline(PIPE))
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1, err
    assert "half-migrated" in lines[0] and "alembic_version holds 2 rows" in lines[0]
    assert f"mv {db} {db}.broken" in lines[0]
    assert db.read_bytes() == before
    assert state_runs(project) == 0


def _revisions() -> list[str]:
    """MLflow's schema revisions, newest first."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    return [
        r.revision for r in ScriptDirectory.from_config(_get_alembic_config("")).walk_revisions()
    ]


def test_older_store_is_upgraded_as_mlflow_does_keeping_a_copy(
    project: Path, write_pipeline: WritePipeline
) -> None:
    """A whole store of an older schema, without the tables newer migrations add: MLflow
    upgrades such a store on first use; stackwise does too, one process at a time, after a
    copy of the old file."""
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config, create_sqlalchemy_engine
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    db = project / ".stackwise" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    old = _revisions()[8]
    config = _get_alembic_config(uri)
    engine = create_sqlalchemy_engine(uri)
    InitialBase.metadata.create_all(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, old)
    engine.dispose()
    _sql(db, "INSERT INTO experiments (name, artifact_location, lifecycle_stage) "
             "VALUES ('earlier', '/tmp/earlier', 'active')")  # fmt: skip

    code, _, err, _ = run_cli(project, "run", write_pipeline(PIPE))
    assert code == 0, err
    assert schema_revisions(db) == [mlflow_head()]
    assert MlflowClient(uri).get_experiment_by_name("earlier") is not None
    copy = db.with_name(f"mlflow.db.pre-upgrade-{old}")
    assert schema_revisions(copy) == [old]
    notices = [line for line in err.splitlines() if "upgraded the MLflow tracking store" in line]
    assert len(notices) == 1 and str(copy) in notices[0], err


def test_out_of_date_store_with_every_table_names_the_upgrade_command(
    project: Path, write_pipeline: WritePipeline, mlflow_db_template: Path
) -> None:
    """All tables there but an older revision: MLflow refuses ("Detected out-of-date database
    schema") and asks for `mlflow db upgrade`; stackwise says so as a user error."""
    db = _store(project, mlflow_db_template, with_run=True)
    old = _revisions()[1]
    _sql(db, f"UPDATE alembic_version SET version_num = '{old}'")
    before = db.read_bytes()
    code, _, err, _ = run_cli(project, "run", write_pipeline(PIPE))
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1, err
    assert f"out-of-date schema (revision {old}" in lines[0]
    assert lines[0].endswith(f"back it up, then run: mlflow db upgrade sqlite:///{db}."), lines[0]
    assert db.read_bytes() == before


@pytest.mark.slow
def test_half_migrated_postgres_store_is_reported_with_the_fix(
    project: Path, write_pipeline: WritePipeline, fresh_pg_db: str
) -> None:
    MlflowClient(fresh_pg_db).search_experiments()  # MLflow creates it
    subprocess.run(["psql", *PG_HOST, fresh_pg_db.rsplit("/", 1)[1], "-c",
                    "INSERT INTO alembic_version VALUES ('451aebb31d03')"], check=True,
                   capture_output=True)  # fmt: skip
    (project / "stackwise.yaml").write_text(f"tracking_uri: '{fresh_pg_db}'\n")
    code, _, err, _ = run_cli(project, "run", write_pipeline(PIPE))
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1, err
    assert "half-migrated" in lines[0] and "it holds no runs" in lines[0]
    assert f"dropdb {fresh_pg_db.rsplit('/', 1)[1]}" in lines[0]
