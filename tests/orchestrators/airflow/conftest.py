"""A real Airflow 3 for the tests of this folder, started once per session.

- `airflow_sqlite`: an AIRFLOW_HOME in a temporary folder, migrated on SQLite, for
  `airflow dags test` (no server).
- `airflow_stack`: api-server, scheduler and dag-processor (LocalExecutor, parallelism 2) on a
  fresh PostgreSQL database, sharing one JWT secret, with SimpleAuthManager's admin password
  read from AIRFLOW_HOME; stopped (process groups killed) and the database dropped at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from af_support import Airflow, base_env
from tests.conftest import free_port, wait_http

ROOT = Path(__file__).resolve().parents[3]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _home(tmp: Path, db_url: str, extra: dict[str, str] | None = None) -> Airflow:
    home, dags = tmp / "home", tmp / "dags"
    dags.mkdir(parents=True)
    env = {
        **base_env(tmp),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        **(extra or {}),
    }
    proc = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Airflow(home=home, dags=dags, env=env)


@pytest.fixture(scope="session", autouse=True)
def airflow_in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Airflow imported by the tests themselves (DagBag) keeps its home in a temporary folder,
    never ~/airflow."""
    home = tmp_path_factory.mktemp("airflow-in-process")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        yield


@pytest.fixture(scope="session")
def airflow_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Airflow:
    tmp = tmp_path_factory.mktemp("airflow-sqlite")
    return _home(tmp, f"sqlite:///{tmp / 'airflow.db'}")


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    tmp = tmp_path_factory.mktemp("airflow-stack")
    db = f"airflow_{uuid.uuid4().hex[:10]}"
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
    port = free_port()
    secret = uuid.uuid4().hex
    (tmp / "config").mkdir()
    # A cluster policy, as deployments use to refuse DAGs: shows Airflow's import errors.
    (tmp / "config" / "airflow_local_settings.py").write_text(
        "from airflow.exceptions import AirflowClusterPolicyViolation\n\n\n"
        "def dag_policy(dag):\n"
        "    if dag.dag_id.startswith('refused_'):\n"
        "        raise AirflowClusterPolicyViolation('dag ids starting with refused_ are not "
        "allowed here')\n"
    )
    extra = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        "AIRFLOW__API__SECRET_KEY": secret,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp / "config")]),
    }
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    extra["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = url.replace("+psycopg:", "+psycopg_async:")
    airflow = _home(tmp, url, extra)
    airflow.api_url = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for command in ("api-server", "scheduler", "dag-processor"):
            log = open(tmp / f"{command}.log", "wb")  # noqa: SIM115 (open while it runs)
            logs.append(log)
            procs.append(subprocess.Popen(
                [AIRFLOW, command], env=airflow.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=tmp,
            ))  # fmt: skip
        wait_http(airflow.api_url + "/api/v2/monitor/health", timeout=180)
        password_file = airflow.home / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + 60
        while not password_file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        import json

        airflow.password = json.loads(password_file.read_text())["admin"]
        yield airflow
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for log in logs:
            log.close()
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", db],
                       check=False)  # fmt: skip
        shutil.rmtree(tmp / "home" / "logs", ignore_errors=True)
