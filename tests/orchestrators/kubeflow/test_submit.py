"""`stackwise run TARGET --stack kfp.yaml` with a KFP endpoint: the code bundle is uploaded,
the compiled spec submitted with `kfp.Client` to the stack's namespace and experiment, and the
run followed to the final state the server reports. No KFP server runs here: a loopback fake
answers the v2beta1 routes the client calls and records what it sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_kfp import FakeKfp, serve
from kfp_support import write_project
from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands

load_commands()
TOKEN = "test-token-not-a-real-one"


def _run(project: Path, url: str, *args: str) -> tuple[int, str, str]:
    write_project(project, extra=f"  host: {url}\n  token_env: KFP_TEST_TOKEN\n")
    result = CliRunner().invoke(app, ["run", "flows/quoted.py:quoted", "--stack", "kfp.yaml",
                                      *args])  # fmt: skip
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_run_submits_the_spec_and_follows_it_to_its_end(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_TEST_TOKEN", TOKEN)
    fake = FakeKfp([
        {"state": "RUNNING", "tasks": {"prepare": "RUNNING"}},
        {"state": "SUCCEEDED", "tasks": {"prepare": "SUCCEEDED", "fit": "SUCCEEDED",
                                         "report": "SUCCEEDED"}},
    ])  # fmt: skip
    with serve(fake) as url:
        code, out, err = _run(project, url, "-p", "rows=7", "-p", "label=a'b\"c", "--json")
    assert code == 0, err
    record = json.loads(out)  # stdout holds only the JSON (the client's prints went to stderr)
    assert record["status"] == "SUCCEEDED" and record["run_id"] == "kfp-3f2a-run-1"
    assert {s["name"]: s["status"] for s in record["steps"]} == {
        "prepare": "SUCCEEDED", "fit": "SUCCEEDED", "report": "SUCCEEDED"}

    routes = [(r["method"], r["path"]) for r in fake.requests]
    assert routes[:3] == [("GET", "/apis/v2beta1/experiments"),
                          ("POST", "/apis/v2beta1/experiments"),
                          ("POST", "/apis/v2beta1/runs")]  # fmt: skip
    assert routes[3:] == [("GET", "/apis/v2beta1/runs/3f2a-run-1")] * 2
    assert fake.requests[0]["query"]["namespace"] == ["team-a"]
    assert fake.requests[1]["body"] == {"display_name": "nightly", "namespace": "team-a"}
    assert all(r["headers"]["authorization"] == f"Bearer {TOKEN}" for r in fake.requests)
    run = fake.requests[2]["body"]
    assert run["experiment_id"] == "exp-1" and run["service_account"] == "pipeline-runner"
    assert run["runtime_config"]["parameters"] == {
        "rows": 7, "rate": 1.0, "label": "a'b\"c", "mode": "fast", "opts": {"a": [1, 2]},
        "flag": True, "note": None}  # the secret db_password is not sent  # fmt: skip
    spec = run["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "quoted"
    compiled = (project / ".stackwise" / "kubeflow" / "quoted.yaml").read_text()
    assert "s3cr3t-default-value" not in json.dumps(run) + compiled
    tasks = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    invocation = json.loads(tasks["prepare"]["inputs"]["parameters"]["invocation"]
                            ["runtimeValue"]["constant"])  # fmt: skip
    bundle = Path(invocation["pipeline"]["bundle"]["uri"].removeprefix("file://"))
    assert bundle.is_file()  # uploaded to the artifact store before the run was created
    assert "platform_spec" in run["pipeline_spec"]


def test_a_failed_run_exits_1_with_the_failed_step(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_TEST_TOKEN", TOKEN)
    fake = FakeKfp([{"state": "FAILED", "tasks": {"prepare": "SUCCEEDED", "fit": "FAILED",
                                                  "report": "SKIPPED"}}])  # fmt: skip
    with serve(fake) as url:
        code, out, err = _run(project, url, "--json")
    assert code == 1, err
    record = json.loads(out)
    assert record["status"] == "FAILED"
    assert {s["name"]: s["status"] for s in record["steps"]}["fit"] == "FAILED"


def test_refused_credentials_and_unreachable_endpoints_are_one_line_errors(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_TEST_TOKEN", TOKEN)
    with serve(FakeKfp([], status=401)) as url:
        code, _, err = _run(project, url)
    assert code == 2
    assert "refused the credentials" in err and "kubeflow.token_env" in err
    assert TOKEN not in err

    with serve(FakeKfp([])) as url:
        dead = url  # the server is gone after the block
    code, _, err = _run(project, dead)
    assert code == 2 and "cannot reach Kubeflow Pipelines at " + dead in " ".join(err.split())

    monkeypatch.delenv("KFP_TEST_TOKEN")
    code, _, err = _run(project, dead)
    assert code == 2 and "kubeflow.token_env names KFP_TEST_TOKEN, which is not set" in err


def test_a_secret_given_on_the_command_line_is_not_sent(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_TEST_TOKEN", TOKEN)
    fake = FakeKfp([{"state": "SUCCEEDED", "tasks": {}}])
    with serve(fake) as url:
        code, _, err = _run(project, url, "-p", "db_password=typed-in-clear")
    assert code == 2
    assert "secret parameter 'db_password' cannot be sent to Kubeflow" in err
    assert not any(r["path"] == "/apis/v2beta1/runs" for r in fake.requests)
    assert "typed-in-clear" not in json.dumps(fake.requests)

