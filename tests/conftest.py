"""Shared fixtures: an isolated project folder per test (its own .stackwise/ with a real MLflow
SQLite store and state store), pipeline files written on the fly, and real servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stackwise.authoring import loader
from stackwise.config import StackConfig

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

# The suite runs offline: no usage telemetry from MLflow.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# The empty MLflow schema new stores are copied from (stackwise.tracking.schema_template): one
# per session, built by the first store a test creates, not the user's cache.
os.environ.setdefault("STACKWISE_CACHE_DIR", tempfile.mkdtemp(prefix="stackwise-cache-"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder as the working directory, with default stack settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    loader.forget()
    return tmp_path


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store created by MLflow itself once per session: creating its schema
    costs about two seconds, which would otherwise dominate many tests."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def stack(project: Path, mlflow_db_template: Path) -> StackConfig:
    """Default stack settings for the project, its MLflow store copied from the template
    (tests that need MLflow to create its store from scratch build their own StackConfig)."""
    db = project / ".stackwise" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_db_template, db)
    return StackConfig(base_dir=project)


@pytest.fixture(scope="session")
def pg_url() -> str:
    return PG_URL


@pytest.fixture
def write_pipeline(project: Path) -> Callable[[str, str], str]:
    """Write `source` to a uniquely named module in the project; return 'file.py:name'."""

    def write(source: str, name: str = "pipe") -> str:
        path = project / f"pipe_{uuid.uuid4().hex[:8]}.py"
        path.write_text(textwrap.dedent(source))
        return f"{path}:{name}"

    return write


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


@pytest.fixture(scope="session")
def mlflow_pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` backed by the PostgreSQL at 127.0.0.1:5432, database `test`."""
    artifacts = tmp_path_factory.mktemp("mlflow-server-artifacts")
    port = free_port()
    log = open(artifacts / "server.log", "wb")  # noqa: SIM115  (open while the server runs)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", PG_URL,
         "--artifacts-destination", str(artifacts), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(uri + "/health")
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
