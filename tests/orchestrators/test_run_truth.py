"""Issue 20's faults of the run records, each a test that failed before: step tags never
reached MLflow, long parameters were cut silently, the cache missed edits of project helper
modules, resume mixed code versions, secrets were stored and printed, and SIGTERM during
`run --json` printed nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from orch_support import WAIT_S, get_run, run_cli, wait_until
from tests.support import stackwise_cmd

import stackwise
from stackwise.config import StackConfig
from stackwise.errors import PipelineValidationError
from stackwise.orchestrators.local import LocalOrchestrator

WritePipeline = Callable[..., str]


# -- values reach MLflow as they are -------------------------------------------------------
TAGGED = """
    from stackwise import pipeline, step

    @step(tags={"kind": "training", "team": "fraud"})
    def fit(text: str) -> int:
        return len(text)

    @pipeline
    def pipe(text: str = "x"):
        fit(text)
"""


def test_step_tags_are_recorded_on_the_step_run(
    stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    run = LocalOrchestrator(stack).run(stackwise.load_pipeline(write_pipeline(TAGGED)))
    assert run.status == "SUCCEEDED", run.error
    child = get_run(run.tracking_uri, run.steps["fit"].mlflow_run_id)
    assert child.data.tags["kind"] == "training"
    assert child.data.tags["team"] == "fraud"


def test_a_step_tag_mlflow_would_refuse_fails_at_decoration() -> None:
    with pytest.raises(PipelineValidationError, match="cannot be an MLflow tag name"):
        stackwise.step(tags={"per_class/": "x"})


def test_a_parameter_over_mlflows_limit_is_kept_whole_and_marked(
    stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    long = "a" * 5999 + "TAIL-ONE"
    other = "a" * 5999 + "TAIL-TWO"  # same first 6000 characters
    pipeline = stackwise.load_pipeline(write_pipeline(TAGGED))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = LocalOrchestrator(stack).run(pipeline, {"text": long})
    assert first.status == "SUCCEEDED", first.error
    assert any("longer than MLflow's limit" in str(w.message) for w in caught)
    second = LocalOrchestrator(stack).run(pipeline, {"text": other})
    from mlflow import MlflowClient

    client = MlflowClient(first.tracking_uri)
    for record, value in ((first, long), (second, other)):
        parent = get_run(record.tracking_uri, record.mlflow_run_id)
        assert parent.data.tags["stackwise.truncated_params"] == "text"
        assert len(parent.data.params["text"]) == 6000
        kept = client.download_artifacts(parent.info.run_id, "stackwise/params/text.txt")
        assert Path(kept).read_text() == value  # the two values stay distinguishable
        child = get_run(record.tracking_uri, record.steps["fit"].mlflow_run_id)
        assert child.data.tags["stackwise.truncated_params"] == "text"


# -- the cache and resume follow the code ---------------------------------------------------
def _write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


def _helper_project(project: Path, factor: int) -> str:
    _write(project / "scaling.py", f"FACTOR = {factor}\n\ndef scale(x):\n    return x * FACTOR\n")
    _write(
        project / "flow.py",
        """
        import pathlib

        from stackwise import pipeline, step
        from scaling import scale

        HERE = pathlib.Path(__file__).parent

        @step
        def base() -> int:
            return 2

        @step
        def scaled(x: int) -> int:
            return scale(x)

        @step
        def report(y: int) -> int:
            if (HERE / "fail_report").exists():
                raise RuntimeError("told to fail")
            return y + 1

        @pipeline
        def flow():
            report(scaled(base()))
        """,
    )
    return "flow.py:flow"


def _run_json(project: Path, *args: str) -> dict:
    proc = run_cli(project, *args, "--json", timeout=300)
    assert proc.stdout, proc.stderr
    return dict(json.loads(proc.stdout)) | {"_stderr": proc.stderr, "_code": proc.returncode}


def test_editing_a_project_helper_module_invalidates_the_cache(
    project: Path, stack: StackConfig
) -> None:
    target = _helper_project(project, 10)
    first = _run_json(project, "run", target)
    assert first["_code"] == 0, first["_stderr"]
    _helper_project(project, 1000)  # only the helper changes: `* 10` -> `* 1000`
    second = _run_json(project, "run", target)
    assert second["_code"] == 0, second["_stderr"]
    steps = {s["name"]: s for s in second["steps"]}
    assert steps["base"]["cached"] is True
    assert steps["scaled"]["cached"] is False  # it calls the helper
    assert second["pipeline_version"] != first["pipeline_version"]
    state = LocalOrchestrator(stack).get_run(second["run_id"])
    from stackwise.artifacts.store import ArtifactStore  # report computed from the new value

    assert ArtifactStore(state.artifact_root).get(state.steps["report"].outputs["output"]) == 2001


def test_resume_after_an_edit_reruns_the_changed_steps_and_says_so(
    project: Path, stack: StackConfig
) -> None:
    target = _helper_project(project, 10)
    (project / "fail_report").touch()
    failed = _run_json(project, "run", target)
    assert failed["_code"] == 1 and failed["status"] == "FAILED"
    (project / "fail_report").unlink()
    _helper_project(project, 1000)

    resumed = _run_json(project, "resume", failed["run_id"])
    assert resumed["_code"] == 0, resumed["_stderr"]
    assert "code changed since this run started: scaled" in resumed["_stderr"]
    record = LocalOrchestrator(stack).get_run(failed["run_id"])
    assert record.steps["scaled"].attempt == 2  # ran again with the new code
    assert record.steps["base"].attempt == 1  # unchanged: reused
    from stackwise.artifacts.store import ArtifactStore

    assert ArtifactStore(record.artifact_root).get(record.steps["report"].outputs["output"]) == 2001
    parent = get_run(record.tracking_uri, record.mlflow_run_id)
    assert parent.data.tags["stackwise.pipeline_version"] == record.pipeline_version
    assert record.pipeline_version != failed["pipeline_version"]


# -- secrets ---------------------------------------------------------------------------------
SECRET_PIPE = """
    import pathlib

    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent

    @step
    def call(api_key: str) -> int:
        if (HERE / "fail").exists():
            raise RuntimeError("down")
        return len(api_key)

    @pipeline
    def pipe(api_key: str, region: str = "eu"):
        call(api_key)
"""
SECRET = "sk-live-0123456789abcdef"


def test_a_secret_parameter_is_never_stored_or_printed_and_resume_asks_for_it(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    target = write_pipeline(SECRET_PIPE)
    (project / "fail").touch()
    failed = _run_json(project, "run", target, "-p", f"api_key={SECRET}")
    assert failed["_code"] == 1
    assert SECRET not in json.dumps(failed)
    for command in (("runs", "show", failed["run_id"]), ("runs", "list")):
        proc = run_cli(project, *command, "--json")
        assert proc.returncode == 0 and SECRET not in proc.stdout + proc.stderr
    db = Path(stack.state_store_resolved.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert SECRET not in dump

    (project / "fail").unlink()
    missing = run_cli(project, "resume", failed["run_id"])
    assert missing.returncode == 2
    assert "-p api_key=VALUE" in missing.stderr and "STACKWISE_PARAM_API_KEY" in missing.stderr

    env = {**os.environ, "STACKWISE_PARAM_API_KEY": SECRET}
    proc = subprocess.run(stackwise_cmd("resume", failed["run_id"], "--json"), cwd=project,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "api_key taken from $STACKWISE_PARAM_API_KEY" in proc.stderr
    record = LocalOrchestrator(stack).get_run(failed["run_id"])
    assert record.status == "SUCCEEDED"
    from stackwise.artifacts.store import ArtifactStore

    assert ArtifactStore(record.artifact_root).get(record.steps["call"].outputs["output"]) == len(
        SECRET
    )


# -- signals around --json -----------------------------------------------------------------
SLOW = """
    import pathlib
    import time

    from stackwise import pipeline, step

    HERE = pathlib.Path(__file__).parent

    @step
    def slow() -> int:
        (HERE / "slow.started").touch()
        for _ in range(600):
            time.sleep(0.05)
        return 1

    @pipeline
    def pipe():
        slow()
"""


def test_sigterm_during_run_json_prints_the_partial_record_and_the_resume_command(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    target = write_pipeline(SLOW)
    proc = subprocess.Popen(stackwise_cmd("run", target, "--json"), cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_until((project / "slow.started").exists, WAIT_S, "the step to start")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    record = json.loads(out)
    assert record["status"] == "KILLED"
    assert f"stackwise resume {record['run_id']}" in err
    assert {s["name"]: s["status"] for s in record["steps"]} == {"slow": "KILLED"}


QUICK = """
    from stackwise import pipeline, step

    @step
    def one() -> int:
        return 1

    @pipeline
    def pipe():
        one()
"""


def test_a_signal_after_the_result_is_printed_does_not_change_the_exit_code(
    project: Path, stack: StackConfig, write_pipeline: WritePipeline
) -> None:
    target = write_pipeline(QUICK)
    for signum in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen(stackwise_cmd("run", target, "--json"), cwd=project,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert proc.stdout is not None
        first = proc.stdout.read(1)  # the result is being printed: the run is over
        assert first == b"{"
        while proc.poll() is None:  # keep signalling until the process is gone
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                break
            time.sleep(0.005)
        rest = proc.stdout.read()
        proc.wait(30)
        assert proc.returncode == 0, (signum, proc.stderr.read() if proc.stderr else b"")
        assert json.loads(first + rest)["status"] == "SUCCEEDED"
