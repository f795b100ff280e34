"""A real Airflow 3 deployment on this host, for the tests of this folder and for
`benchmarks/airflow_vs_local.py` (imported by module name; not a test file).

`airflow_home` migrates an AIRFLOW_HOME on the database given; `running_airflow` starts its
api-server, scheduler and dag-processor (LocalExecutor) on a fresh PostgreSQL database at
127.0.0.1:5432, sharing one JWT secret, reads SimpleAuthManager's generated admin password,
and at the end kills the process groups and drops the database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from af_support import Airflow

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SERVICES = ("api-server", "scheduler", "dag-processor")


def airflow_home(tmp: Path, env: dict[str, str], db_url: str) -> Airflow:
    """An AIRFLOW_HOME under `tmp` (dags in `tmp/dags`) migrated on `db_url`; raises
    RuntimeError with Airflow's output if the migration fails."""
    home, dags = tmp / "home", tmp / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    env = {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    proc = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    if proc.returncode != 0:
        tail = proc.stdout[-3000:] + proc.stderr[-3000:]
        raise RuntimeError(f"airflow db migrate failed:\n{tail}")
    return Airflow(home=home, dags=dags, env=env)


@contextlib.contextmanager
def running_airflow(
    tmp: Path, env: dict[str, str], *, parallelism: int, startup_timeout_s: float = 180
) -> Iterator[Airflow]:
    """Airflow 3 serving its REST API on a free loopback port, with `airflow.api_url` and the
    admin `airflow.password` set. `env` is the services' environment (PYTHONPATH and the like);
    `parallelism` is LocalExecutor's number of task slots."""
    db = f"airflow_{uuid.uuid4().hex[:10]}"
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
    port, secret = _free_port(), uuid.uuid4().hex
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    async_url = url.replace("+psycopg:", "+psycopg_async:")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        airflow = airflow_home(tmp, {
            **env,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": async_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
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
        }, url)  # fmt: skip
        airflow.api_url = f"http://127.0.0.1:{port}"
        for command in SERVICES:
            with open(tmp / f"{command}.log", "wb") as log:  # the child keeps its own handle
                procs.append(subprocess.Popen(
                    [AIRFLOW, command], env=airflow.env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, cwd=tmp,
                ))  # fmt: skip
        _wait_http(airflow.api_url + "/api/v2/monitor/health", startup_timeout_s)
        password_file = airflow.home / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + 60
        while not password_file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        airflow.password = json.loads(password_file.read_text())["admin"]
        yield airflow
    finally:
        _stop(procs)
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", db],
                       check=False)  # fmt: skip


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up within {timeout_s:.0f} s")
        time.sleep(0.5)
