"""Fixtures for the scheduling tests (backfills, the interval ledger, the scheduler loop).

As in tests/orchestrators, `stack` starts each project with an MLflow SQLite database that
MLflow itself created once per session (copied, not faked), so that the first run of every
test does not pay two seconds for MLflow's schema migrations.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stackwise.config import StackConfig


@pytest.fixture(scope="session")
def sched_mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("sched-mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def stack(project: Path, sched_mlflow_template: Path) -> StackConfig:
    db = project / ".stackwise" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sched_mlflow_template, db)
    return StackConfig(base_dir=project)


@pytest.fixture(scope="session")
def pg_url(pytestconfig: pytest.Config) -> str:
    """PG_URL of tests/conftest.py (looked up, not copied, so both always agree)."""
    root = pytestconfig.pluginmanager.get_plugin(str(Path(__file__).parents[1] / "conftest.py"))
    assert root is not None, "tests/conftest.py is not loaded"
    return str(root.PG_URL)
