"""Fixtures for the local-orchestrator integration tests.

`stack` is overridden so that each test's project starts with an MLflow SQLite database that
MLflow itself created once per session (copied, not faked): creating MLflow's schema costs
about two seconds, which would otherwise dominate these tests. Tests that need MLflow to
create its store from scratch build their own StackConfig instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stackwise.config import StackConfig


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def stack(project: Path, mlflow_db_template: Path) -> StackConfig:
    db = project / ".stackwise" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_db_template, db)
    return StackConfig(base_dir=project)


@pytest.fixture(scope="session")
def pg_url(pytestconfig: pytest.Config) -> str:
    """PG_URL of tests/conftest.py (looked up, not copied, so both always agree)."""
    root = pytestconfig.pluginmanager.get_plugin(str(Path(__file__).parents[1] / "conftest.py"))
    assert root is not None, "tests/conftest.py is not loaded"
    return str(root.PG_URL)
