"""One quick, real run of a pipeline per orchestrator, for the conformance suite
(`stackwise.conformance_suite`). Each side has its own folder under the suite's work folder:
its own MLflow store (SQLite), artifact store and state, so that the records compared are
only that side's.

- `local`: `stackwise run` (unscheduled) or `stackwise backfill` of one interval, in a child
  process (MLflow keeps process-global state).
- `airflow`: the DAG compiled by the Airflow target into a fresh AIRFLOW_HOME (SQLite,
  `airflow db migrate`), run with `airflow dags test DAG_ID DATE` (a real Airflow 3, no server).
- `kubeflow`: the KFP spec compiled by the Kubeflow target (the project goes as a code
  bundle), run with `kfp.local`'s SubprocessRunner from an empty folder.

Every command is built as an argument list; user strings never become source code.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackwise.errors import ConfigError
from stackwise.tracking import tags as T

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.config import StackConfig
    from stackwise.interval import Interval

ORCHESTRATOR_KINDS = ("local", "airflow", "kubeflow")
#: The Python package each orchestrator needs, and the extra that installs it.
_NEEDS = {"airflow": ("airflow", "airflow"), "kubeflow": ("kfp", "kubeflow")}
_TIMEOUT_S = 1800.0


@dataclasses.dataclass(frozen=True)
class SideRun:
    """Where one side's pipeline run landed: its MLflow store and parent run (None when it
    failed to start; `error` says why)."""

    name: str
    tracking_uri: str
    parent_run_id: str | None
    error: str | None = None


def missing_extra(kind: str) -> str | None:
    """Why `kind` cannot run here (its extra is not installed), or None."""
    if kind not in _NEEDS:
        return None
    package, extra = _NEEDS[kind]
    if importlib.util.find_spec(package) is None:
        return f"{kind} is not installed: pip install 'stackwise[{extra}]'"
    return None


def side_stack(folder: Path, project: Path, orchestrator: str = "local", **section: Any) -> Any:
    """A stack for one side: stores in `folder`, the project root (`base_dir`, the root of a
    code bundle) at `project`."""
    from stackwise.config import StackConfig

    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "artifact_store": str(folder / "artifacts"),
        "mlflow_artifacts": str(folder / "mlartifacts"),
        "state_store": f"sqlite:///{folder / 'state.db'}",
        "orchestrator": orchestrator,
    }
    if section:
        data[orchestrator] = section
    return StackConfig(**data, base_dir=project)


def write_stack(config: StackConfig, path: Path) -> Path:
    """The stack as a YAML file (data only, through yaml.safe_dump)."""
    import yaml

    data = config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data.setdefault("orchestrator", config.orchestrator)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _env(work: Path, project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW"))}
    path = [str(project), *filter(None, [env.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(path), MLFLOW_DISABLE_TELEMETRY="true",
               STACKWISE_CACHE_DIR=str(work / "stackwise-cache"))  # fmt: skip
    return env


def _call(args: list[str], cwd: Path, env: dict[str, str], what: str) -> str | None:
    """Run a child process; None on success, else the last lines of its output."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=_TIMEOUT_S)  # fmt: skip
    if done.returncode == 0:
        return None
    tail = (done.stdout[-1500:] + "\n" + done.stderr[-2500:]).strip()
    return f"{what} exited {done.returncode}:\n{tail}"


def parent_run(tracking_uri: str, pipeline: str) -> str | None:
    """The newest pipeline (parent) run of `pipeline` in the store, any experiment."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        ids, f"tags.`{T.RUN_KIND}` = '{T.RUN_KIND_PIPELINE}'", max_results=1000,
        order_by=["attributes.start_time DESC"],
    )  # fmt: skip
    found = [r for r in runs if r.data.tags.get(T.PIPELINE) == pipeline]
    return found[0].info.run_id if found else None


def run_local(
    name: str, work: Path, project: Path, target: str, pipeline: Pipeline,
    interval: Interval | None,
) -> SideRun:  # fmt: skip
    """`stackwise run` (interval None) or a one-interval `stackwise backfill`."""
    folder = work / name
    config = side_stack(folder, project)
    stack = write_stack(config, folder / "stack.yaml")
    args = [sys.executable, "-m", "stackwise"]
    if interval is None:
        args += ["run", target, "--stack", str(stack), "--json"]
    else:
        day = interval.start.date().isoformat()
        args += ["backfill", target, "--start", day, "--end", day, "--stack", str(stack),
                 "--json"]  # fmt: skip
    error = _call(args, folder, _env(work, project), "stackwise " + args[3])
    uri = config.tracking_uri_resolved
    return SideRun(name, uri, None if error else parent_run(uri, pipeline.name), error)


def run_airflow(work: Path, project: Path, pipeline: Pipeline, interval: Interval) -> SideRun:
    """Compile the DAG into a fresh AIRFLOW_HOME and run it with `airflow dags test`."""
    from stackwise.orchestrators.targets import compile_for, open_target

    folder = work / "airflow"
    dags, home = folder / "dags", folder / "home"
    dags.mkdir(parents=True, exist_ok=True)
    config = side_stack(folder, project, "airflow", dags_folder=str(dags))
    files = compile_for(open_target(config, "airflow"), pipeline, dags)
    dag_id = next(f.stem for f in files if f.suffix == ".py")
    env = _env(work, project)
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{folder / 'airflow.db'}",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False"})  # fmt: skip
    airflow = str(Path(sys.executable).with_name("airflow"))
    uri = config.tracking_uri_resolved
    error = _call([airflow, "db", "migrate"], folder, env, "airflow db migrate")
    if error is None:
        date = interval.end.isoformat()
        error = _call([airflow, "dags", "test", dag_id, date], folder, env,
                      "airflow dags test")  # fmt: skip
    return SideRun("airflow", uri, None if error else parent_run(uri, pipeline.name), error)


def run_kubeflow(work: Path, project: Path, pipeline: Pipeline) -> SideRun:
    """Compile the KFP spec (the project as a code bundle) and run it in kfp.local."""
    from stackwise.orchestrators.targets import compile_for, open_target

    folder = work / "kubeflow"
    worker = folder / "worker"
    worker.mkdir(parents=True, exist_ok=True)
    config = side_stack(folder, project, "kubeflow", image="python:3.11-slim",
                        host_local_stores=True)  # fmt: skip
    [spec, *_] = compile_for(open_target(config, "kubeflow"), pipeline, folder / "pipeline.yaml")
    code = ("import sys; from stackwise.conformance_sides import kfp_local_main; "
            "kfp_local_main(sys.argv[1], sys.argv[2])")  # fmt: skip
    env = _env(work, project)
    env["PYTHONPATH"] = os.pathsep.join(p for p in env["PYTHONPATH"].split(os.pathsep)
                                        if p != str(project))  # only the bundle has it
    error = _call([sys.executable, "-c", code, str(spec), str(folder / "kfp-root")], worker, env,
                  "kfp.local")  # fmt: skip
    uri = config.tracking_uri_resolved
    return SideRun("kubeflow", uri, None if error else parent_run(uri, pipeline.name), error)


def kfp_local_main(spec: str, pipeline_root: str) -> None:
    """Run a compiled KFP spec with kfp.local's SubprocessRunner in this process's folder."""
    from kfp import components, local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root,
               raise_on_error=True)  # fmt: skip
    components.load_component_from_file(spec)()


def check_kinds(kinds: list[str]) -> None:
    """Raise ConfigError for an unknown orchestrator name."""
    from stackwise.errors import did_you_mean

    for kind in kinds:
        if kind not in ORCHESTRATOR_KINDS:
            raise ConfigError(
                f"unknown orchestrator {kind!r} in --orchestrators."
                f"{did_you_mean(kind, ORCHESTRATOR_KINDS)} Use a comma-separated list of "
                f"{', '.join(ORCHESTRATOR_KINDS)}."
            )
