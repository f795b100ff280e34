"""The exported DAG, loaded by Airflow's own DagBag: tasks, dependencies, retries, timeouts,
timetable, params, resources; and names, descriptions and defaults that try to inject code."""

from __future__ import annotations

import datetime as dt
import py_compile
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from af_support import ROOT, base_env, stackwise

from stackwise.authoring.loader import load_pipeline
from stackwise.config import StackConfig
from stackwise.orchestrators.airflow.target import AirflowTarget

PIPELINE = '''
import datetime as dt
from typing import Literal
import stackwise as sw

@sw.step(retries=sw.Retries(count=3, backoff_s=5, factor=2, max_backoff_s=60), timeout=90,
         resources=sw.Resources(cpu=2, memory="3Gi"))
def load(day: str, n: int) -> list[int]:
    """Load the day's rows."""
    return list(range(n))

@sw.step(resources=sw.Resources(cpu=0.5, gpu=1, gpu_type="nvidia-l4"))
def fit(rows: list[int], mode: Literal["fast", "slow"], rate: float | None) -> int:
    return len(rows)

@sw.step
def report(rows: list[int], fitted: int) -> None:
    return None

@sw.pipeline(schedule=sw.Schedule("30 2 * * *", start="2026-03-01", end="2026-12-31",
                                  timezone="Europe/Amsterdam", catchup=True, max_active_runs=3))
def nightly(day: str = "x", n: int = 3, mode: Literal["fast", "slow"] = "fast",
            rate: float | None = None, api_token: str = "s3cr3t-default") -> None:
    """Nightly training.

    More words.
    """
    rows = load(day, n)
    fitted = fit(rows, mode, rate)
    report(rows, fitted)
'''


def _bag(folder: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(folder))


def _target(project: Path, **airflow: Any) -> AirflowTarget:
    config = StackConfig(base_dir=project, airflow={"dags_folder": "dags", **airflow},
                         orchestrator="airflow", cache="artifacts")  # fmt: skip
    return AirflowTarget(config)


def test_the_dag_is_what_the_pipeline_says(
    project: Path, write_pipeline: Callable[..., str]
) -> None:
    pipeline = load_pipeline(write_pipeline(PIPELINE, "nightly"))
    target = _target(project, pool="ml", queue="cpu", gpu_queue="gpu", tags=["team-a"])
    files = target.compile(pipeline, project / "dags")
    assert {f.name for f in files} == {"nightly.py", "nightly.stackwise.json"}
    bag = _bag(project / "dags")
    assert bag.import_errors == {}
    dag = bag.dags["nightly"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"load", "fit", "report", "stackwise_close"}
    assert tasks["fit"].upstream_task_ids == {"load"}
    assert tasks["report"].upstream_task_ids == {"load", "fit"}
    assert tasks["stackwise_close"].upstream_task_ids == {"load", "fit", "report"}
    assert tasks["stackwise_close"].trigger_rule == "all_done"
    assert dag.leaves == [tasks["stackwise_close"]]
    load = tasks["load"]
    assert (load.retries, load.retry_delay, load.retry_exponential_backoff) == (
        3, dt.timedelta(seconds=5), 2.0)  # fmt: skip
    assert load.max_retry_delay == dt.timedelta(seconds=60)
    assert load.execution_timeout == dt.timedelta(seconds=90)
    assert (load.pool, load.pool_slots, load.queue) == ("ml", 2, "cpu")
    assert (tasks["fit"].queue, tasks["fit"].pool_slots) == ("gpu", 1)
    assert tasks["report"].retries == 0 and tasks["report"].execution_timeout is None
    # the schedule: data intervals, as stackwise plans them
    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.expression == "30 2 * * *"
    assert str(dag.timetable.timezone) == "Europe/Amsterdam"
    assert dag.start_date == pipeline.schedule.start_at
    assert dag.end_date == pipeline.schedule.end_at
    assert (dag.catchup, dag.max_active_runs) == (True, 3)
    assert set(dag.tags) == {"stackwise", "team-a"}
    assert dag.doc_md.startswith("Nightly training.\n") and dag.description == "Nightly training."
    # typed params, overridable; the secret one is nowhere in the DAG or its files
    params = dag.params
    assert dict(params) == {"day": "x", "n": 3, "mode": "fast", "rate": None}
    assert params.get_param("n").schema == {"type": "integer"}
    assert params.get_param("mode").schema == {"enum": ["fast", "slow"]}
    assert params.get_param("rate").schema == {"type": ["number", "null"]}
    with pytest.raises(ValueError):
        params.get_param("n").resolve("three")
    for file in files:  # only its name is listed, as one the tasks read from the environment
        assert "s3cr3t-default" not in file.read_text()
    assert target.spec(pipeline).secret_params == ["api_token"]
    assert "executor_config" not in load.__dict__ or not load.executor_config


def test_kubernetes_executor_gets_a_pod_override(
    project: Path, write_pipeline: Callable[..., str]
) -> None:
    pipeline = load_pipeline(write_pipeline(PIPELINE, "nightly"))
    target = _target(project, executor="kubernetes", bundle=False,
                     kubernetes={"namespace": "ml", "node_selector": {"pool": "train"},
                                 "tolerations": [{"key": "dedicated", "value": "ml",
                                                  "effect": "NoSchedule"}]})  # fmt: skip
    target.compile(pipeline, project / "dags")  # compile does not check shared stores
    tasks = {t.task_id: t for t in _bag(project / "dags").dags["nightly"].tasks}
    load = tasks["load"].executor_config["pod_override"]
    res = load.spec.containers[0].resources
    assert load.spec.containers[0].name == "base" and load.metadata.namespace == "ml"
    assert res.requests == {"cpu": "2", "memory": "3Gi"} and res.limits == {"memory": "3Gi"}
    assert load.spec.node_selector == {"pool": "train"}
    fit = tasks["fit"].executor_config["pod_override"]
    assert fit.spec.containers[0].resources.requests == {"cpu": "500m"}
    assert fit.spec.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
    assert fit.spec.node_selector == {"pool": "train", "nvidia.com/gpu.product": "nvidia-l4"}
    keys = [(t.key, t.effect) for t in fit.spec.tolerations]
    assert keys == [("dedicated", "NoSchedule"), ("nvidia.com/gpu", "NoSchedule")]
    # a shared deployment needs stores and code its workers reach
    problems = target.validate(pipeline)
    assert any("airflow.bundle: true" in p for p in problems)
    assert any("artifact store must be shared" in p for p in problems)


HOSTILE = '"""\'\'\' + __import__("os").system("touch PWNED") + "\\n{{ 7*7 }} {% raw %}'


def test_hostile_descriptions_and_defaults_stay_data(
    project: Path, write_pipeline: Callable[..., str]
) -> None:
    source = f'''
import stackwise as sw

@sw.step
def echo(text: str) -> str:
    return text

@sw.pipeline(description={HOSTILE + chr(10) + "README.md"!r})
def hostile(text: str = {HOSTILE!r}, other: list[str] = [{HOSTILE!r}, "a\\nb"]) -> None:
    echo(text)
'''
    pipeline = load_pipeline(write_pipeline(source, "hostile"))
    files = _target(project).compile(pipeline, project / "dags")
    dag_file = project / "dags" / "hostile.py"
    py_compile.compile(str(dag_file), doraise=True)
    ruff = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "--isolated",
                           "--select", "E,F,W,I,B,UP", str(dag_file)],
                          capture_output=True, text=True)  # fmt: skip
    assert ruff.returncode == 0, ruff.stdout
    from stackwise.orchestrators.airflow.compile import dag_source

    assert dag_file.read_text() == dag_source("hostile")  # the fixed body: no user string
    assert "PWNED" not in dag_file.read_text()
    bag = _bag(project / "dags")
    assert bag.import_errors == {}
    dag = bag.dags["hostile"]
    assert dict(dag.params) == {"text": HOSTILE, "other": [HOSTILE, "a\nb"]}
    assert dag.doc_md.rstrip("\n") == HOSTILE + "\nREADME.md"  # not read as a file
    assert not (project / "PWNED").exists() and not (Path.cwd() / "PWNED").exists()
    assert len(files) == 2


def test_names_airflow_refuses_are_rejected_before_anything_is_written(project: Path) -> None:
    (project / "bad.py").write_text(
        "import stackwise as sw\n\n@sw.step\ndef s() -> int:\n    return 1\n\n"
        "@sw.pipeline(name='x\"; import os')\ndef p() -> None:\n    s()\n"
    )
    (project / "dot.py").write_text(
        "from stackwise.authoring.pipeline import Pipeline, StepNode\n"
        "from stackwise.authoring.step import step\n\n@step\ndef stackwise_close() -> int:\n"
        "    return 1\n\np = Pipeline('fine', [StepNode('stackwise_close', stackwise_close, {})])\n"
    )
    (project / "airflow.yaml").write_text("orchestrator: airflow\nairflow:\n  dags_folder: dags\n")
    env = base_env(project)
    bad = stackwise(project, env, "export", "airflow", "bad.py:p", "--out", "dags",
                    "--stack", "airflow.yaml")  # fmt: skip
    assert bad.returncode == 2 and "pipeline name" in bad.stderr and "x\"; import os" in bad.stderr
    reserved = stackwise(project, env, "export", "airflow", "dot.py:p", "--out", "dags",
                         "--stack", "airflow.yaml")  # fmt: skip
    assert reserved.returncode == 2, reserved.stderr
    assert "'stackwise_close' is reserved" in reserved.stderr
    assert not (project / "dags").exists()
    assert ROOT.exists()


def test_pipeline_run_ids_are_keyed_on_the_interval_and_fit_the_contract() -> None:
    import re

    from stackwise.contract import NAME_PATTERN
    from stackwise.interval import Interval
    from stackwise.orchestrators.airflow.task import pipeline_run_id

    start = dt.datetime(2026, 3, 29, 3, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    interval = Interval(start, start, start + dt.timedelta(hours=23))
    keyed = pipeline_run_id("d" * 200, interval, "backfill__whatever")
    assert keyed == "airflow-" + "d" * 200 + "-20260329T013000Z"
    assert keyed == pipeline_run_id("d" * 200, interval, "manual__renamed")  # not Airflow's id
    odd = pipeline_run_id("dag", None, "my run/with 'quotes' & ünïcode")
    assert odd != pipeline_run_id("dag", None, "my run/with 'quotes' & unicode")
    for run_id in (keyed, odd):
        assert re.match(NAME_PATTERN, run_id), run_id
