"""Helpers shared by the scheduling tests (imported by module name; not a test file).

`PIPE` is a three-step pipeline (extract -> transform -> load) whose steps all take the
`StepContext`. Each step reads `behaviour.json` in the project at run time (so a test can make
one date fail or sleep, then "fix" it, without changing the pipeline's code) and, when it
finishes, appends one JSON line to `executions.jsonl`: the step, the data interval it saw, its
start and end times and its process. A step that fails or is killed writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import free_port as free_port
from tests.support import WAIT_S as WAIT_S
from tests.support import children_of as children_of
from tests.support import pid_alive as pid_alive
from tests.support import stackwise_cmd
from tests.support import wait_until as wait_until

PIPE = """
    import json
    import os
    import pathlib
    import sys
    import time

    from stackwise import Schedule, StepContext, pipeline, step

    HERE = pathlib.Path(__file__).parent
    UNIQUE = "__UNIQUE__"  # makes cache keys unique to this file (PostgreSQL stores are shared)


    def _behaviour():
        path = HERE / "behaviour.json"
        return json.loads(path.read_text()) if path.exists() else {}


    def _act(name, ctx):
        started = time.time()
        day = ctx.logical_date.strftime("%Y-%m-%d")
        behaviour = _behaviour()
        if day in behaviour.get("fail", {}).get(name, []):
            raise RuntimeError(f"bad input for {day}")
        pause = behaviour.get("sleep", {}).get(name, {})
        if "outside_workers" in behaviour and sys.argv[0] != "-c":  # not a backfill worker
            pause = {"*": behaviour["outside_workers"].get(name, 0)}
        time.sleep(pause.get(day, pause.get("*", 0)))
        record = {
            "step": name,
            "logical_date": ctx.logical_date.isoformat(),
            "zone": ctx.logical_date.tzname(),
            "start": ctx.data_interval_start.isoformat(),
            "end": ctx.data_interval_end.isoformat(),
            "t0": started,
            "t1": time.time(),
            "pid": os.getpid(),
            "run_id": ctx.run_id,
        }
        with (HERE / "executions.jsonl").open("a") as fh:
            fh.write(json.dumps(record) + "\\n")
        return ctx.data_interval_start.isoformat()


    @step
    def extract(ctx: StepContext) -> str:
        return _act("extract", ctx)


    @step
    def transform(value: str, ctx: StepContext) -> str:
        return _act("transform", ctx) + "|" + value


    @step
    def load(value: str, ctx: StepContext) -> str:
        return _act("load", ctx) + "|" + value


    @pipeline(name=__NAME__, schedule=__SCHEDULE__)
    def pipe():
        load(transform(extract()))
"""


def pipe_source(schedule: str | None, name: str = "pipe") -> str:
    """The source of `PIPE` with `schedule` (Python source, e.g. 'Schedule("@daily", ...)')."""
    return (
        PIPE.replace("__SCHEDULE__", schedule or "None")
        .replace("__NAME__", repr(name))
        .replace("__UNIQUE__", uuid.uuid4().hex)
    )


def set_behaviour(project: Path, **behaviour: Any) -> None:
    """What the steps do at run time: fail={'extract': ['2026-01-04']},
    sleep={'transform': {'2026-01-03': 3, '*': 0}}, outside_workers={'transform': 2} (the
    sleeps of processes that are not backfill workers, e.g. the `stackwise` process itself)."""
    (project / "behaviour.json").write_text(json.dumps(behaviour))


def executions(project: Path) -> list[dict[str, Any]]:
    path = project / "executions.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def day(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).strftime("%Y-%m-%d")


def days(start: str, end: str) -> list[str]:
    """Every date from `start` to `end` inclusive, as YYYY-MM-DD."""
    lo, hi = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(lo + dt.timedelta(days=i)).isoformat() for i in range((hi - lo).days + 1)]


def run_cli(cwd: Path, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """`python -m stackwise ARGS` in `cwd`, as a user would run it."""
    return subprocess.run(
        stackwise_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def run_json(cwd: Path, *args: str, timeout: float = 180.0) -> tuple[int, Any]:
    """Run with --json; the whole of stdout must be one JSON document."""
    result = run_cli(cwd, *args, "--json", timeout=timeout)
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"exit {result.returncode}; stdout is not JSON ({exc}):\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        ) from None


def all_runs(uri: str, experiment_name: str) -> list[Any]:
    """Every MLflow run of the experiment (none when it does not exist), whatever its status."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return list(
        client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=5000)
    )


def every_run(uri: str) -> list[Any]:
    """Every MLflow run in every experiment of the tracking store."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not ids:
        return []
    return list(client.search_runs(ids, run_view_type=ViewType.ALL, max_results=5000))


def parents(runs: list[Any]) -> list[Any]:
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
