"""Governance fixtures: a real MLflow SQLite store per test (copied from one MLflow created once
per session: creating the schema costs seconds), a clock that moves only when told, and
lifecycles on that store."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from gov_support import PipelineStore
from mlflow import MlflowClient

from stackwise.governance.clock import FixedClock
from stackwise.governance.lifecycle import ModelLifecycle
from stackwise.governance.policies import PolicyFile
from stackwise.governance.registry import Registry


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gov-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path: Path, mlflow_template: Path) -> PipelineStore:
    db = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template, db)
    uri = f"sqlite:///{db}"
    return PipelineStore(uri=uri, client=MlflowClient(uri), root=tmp_path)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def make_lifecycle(store: PipelineStore, clock: FixedClock) -> Any:
    """A lifecycle on the test's store with the given policy (a dict as in policies.yaml)."""

    def make(policies: dict[str, Any] | None = None, actor: str = "alice") -> ModelLifecycle:
        rules = PolicyFile.model_validate(policies or {})
        return ModelLifecycle(Registry(store.client), rules, clock=clock, actor=actor)

    return make
