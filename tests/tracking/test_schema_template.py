"""A new SQLite tracking store is a copy of the empty schema kept after MLflow's first creation
with this release (stackwise.tracking.schema_template): the copy is the schema MLflow builds,
MLflow uses it as its own, and a bad copy or a cache folder that cannot be written changes
nothing but the time it takes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient

from stackwise.tracking.schema_template import template_path
from stackwise.tracking.stores import prepare_tracking_store


def _schema(db: Path) -> tuple[dict[str, list[tuple[str, str, int, int]]], list[tuple[str]]]:
    """Each table's columns (name, type, not null, primary key) and the alembic revision (the
    SQL text of a table may differ in spacing between two builds by MLflow's migrations)."""
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        tables = {
            name: sorted((c[1], str(c[2]).upper(), c[3], c[5])
                         for c in conn.execute(f'PRAGMA table_info("{name}")'))
            for name in names
        }  # fmt: skip
        return tables, conn.execute("SELECT version_num FROM alembic_version").fetchall()


def _user_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STACKWISE_CACHE_DIR", str(folder))
    return folder


def test_a_second_store_is_a_copy_of_the_schema_mlflow_built_first(
    tmp_path: Path, cache: Path
) -> None:
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    prepare_tracking_store(f"sqlite:///{first}")
    template = template_path()
    assert template is not None and template.parent == cache and template.is_file()
    assert _schema(template) == _schema(first)
    with sqlite3.connect(template) as conn:  # marks the copy, to see it used below
        conn.execute("PRAGMA user_version = 4242")

    prepare_tracking_store(f"sqlite:///{second}")

    assert _user_version(second) == 4242 and _user_version(first) == 0
    assert _schema(second) == _schema(first)
    client = MlflowClient(f"sqlite:///{second}")  # MLflow takes it as its own
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_a_broken_copy_is_ignored_and_replaced(tmp_path: Path, cache: Path) -> None:
    template = template_path()
    assert template is not None
    cache.mkdir()
    template.write_bytes(b"not a database at all")
    store = tmp_path / "c" / "mlflow.db"

    prepare_tracking_store(f"sqlite:///{store}")

    replaced = _schema(template)  # a database again, kept from this store's build
    reference = tmp_path / "reference" / "mlflow.db"
    template.unlink()
    prepare_tracking_store(f"sqlite:///{reference}")  # MLflow's own build, nothing kept used
    assert _schema(store) == _schema(reference) == replaced


def test_a_cache_folder_that_cannot_be_written_keeps_no_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("STACKWISE_CACHE_DIR", str(blocker / "cache"))  # under a file
    store = tmp_path / "d" / "mlflow.db"

    prepare_tracking_store(f"sqlite:///{store}")

    assert _schema(store)[1] and not (blocker / "cache").exists()
