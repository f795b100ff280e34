"""A real Airflow 3 for the tests of this folder, started once per session.

- `airflow_sqlite`: an AIRFLOW_HOME in a temporary folder, migrated on SQLite, for
  `airflow dags test` (no server).
- `airflow_stack`: api-server, scheduler and dag-processor (LocalExecutor, parallelism 2) on a
  fresh PostgreSQL database, sharing one JWT secret, with SimpleAuthManager's admin password
  read from AIRFLOW_HOME; stopped (process groups killed) and the database dropped at the end.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from af_stack import airflow_home, running_airflow
from af_support import Airflow, base_env

ROOT = Path(__file__).resolve().parents[3]


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
    return airflow_home(tmp, base_env(tmp), f"sqlite:///{tmp / 'airflow.db'}")


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    tmp = tmp_path_factory.mktemp("airflow-stack")
    (tmp / "config").mkdir()
    # A cluster policy, as deployments use to refuse DAGs: shows Airflow's import errors.
    (tmp / "config" / "airflow_local_settings.py").write_text(
        "from airflow.exceptions import AirflowClusterPolicyViolation\n\n\n"
        "def dag_policy(dag):\n"
        "    if dag.dag_id.startswith('refused_'):\n"
        "        raise AirflowClusterPolicyViolation('dag ids starting with refused_ are not "
        "allowed here')\n"
    )
    env = {**base_env(tmp), "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp / "config")])}
    with running_airflow(tmp, env, parallelism=2) as airflow:
        yield airflow
    shutil.rmtree(tmp / "home" / "logs", ignore_errors=True)
