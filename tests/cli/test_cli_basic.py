"""The `stackwise` command: help, lazy imports, and invalid input that exits 2 with one red
line, no traceback and no MLflow run."""

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

import stackwise.cli.commands  # noqa: F401  (registers the commands on the app)
from stackwise.cli.main import app

PIPELINE = """
import stackwise

@stackwise.step
def add(x: int, n: int) -> int:
    return x + n

@stackwise.pipeline
def pipe(n: int = 1, mode: str = "fast"):
    add(1, n)
"""


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACKWISE_DEBUG", raising=False)


@pytest.fixture
def target(write_pipeline: Callable[..., str]) -> str:
    return write_pipeline(PIPELINE)


def _python(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _assert_no_mlflow_runs(project: Path) -> None:
    db = project / ".stackwise" / "mlflow.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from runs").fetchone() == (0,)
    assert not (project / "mlruns").exists()


def _assert_one_line_error(stderr: str, headline: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith(f"{headline}: "), stderr
    return lines[0]


def _invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


# -- help and imports --------------------------------------------------------------------------
def test_help(project: Path) -> None:
    proc = _python("-m", "stackwise", "--help", cwd=project)
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "resume", "runs", "ui"):
        assert command in proc.stdout
    assert "Author an ML pipeline once" in proc.stdout


def test_run_help_lists_its_options(project: Path) -> None:
    proc = _python("-m", "stackwise", "run", "--help", cwd=project)
    assert proc.returncode == 0, proc.stderr
    for option in ("--param", "--stack", "--max-parallel", "--no-cache", "--json"):
        assert option in proc.stdout


def test_version(project: Path) -> None:
    proc = _python("-m", "stackwise", "--version", cwd=project)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "0.1.0"


@pytest.mark.parametrize(
    "imports", ["import stackwise", "import stackwise.cli.main, stackwise.cli.commands"]
)
def test_imports_do_not_load_mlflow(imports: str) -> None:
    code = f"import sys; {imports}; print('mlflow' in sys.modules, 'pandas' in sys.modules)"
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False"


def test_authoring_api_does_not_load_mlflow(project: Path) -> None:
    (project / "flow.py").write_text(PIPELINE)
    code = (
        "import sys, stackwise; p = stackwise.load_pipeline('flow.py:pipe'); "
        "print(p.order, 'mlflow' in sys.modules)"
    )
    proc = _python("-c", code, cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "('add',) False"


# -- invalid input: exit 2, one line, nothing run -------------------------------------------
def test_unknown_parameter(project: Path, target: str) -> None:
    code, _, stderr = _invoke(["run", target, "-p", "m=3"])
    assert code == 2
    line = _assert_one_line_error(stderr, "invalid parameter")
    assert "unknown parameter 'm'" in line
    assert "This pipeline's parameters are: n, mode." in line
    _assert_no_mlflow_runs(project)


def test_parameter_of_the_wrong_type(project: Path, target: str) -> None:
    code, _, stderr = _invoke(["run", target, "-p", "n=abc"])
    assert code == 2
    line = _assert_one_line_error(stderr, "invalid parameter")
    assert "parameter 'n' expects int, got 'abc'" in line
    _assert_no_mlflow_runs(project)


def test_parameter_without_a_value(project: Path, target: str) -> None:
    code, _, stderr = _invoke(["run", target, "--param", "n"])
    assert code == 2
    line = _assert_one_line_error(stderr, "invalid parameter")
    assert "-p 'n' is not KEY=VALUE" in line
    _assert_no_mlflow_runs(project)


def test_malformed_pipeline_file(project: Path, write_pipeline: Callable[..., str]) -> None:
    bad = write_pipeline("import stackwise\n\n@stackwise.step\ndef broken(:\n    pass\n")
    code, _, stderr = _invoke(["run", bad])
    assert code == 2
    line = _assert_one_line_error(stderr, "cannot load pipeline")
    assert "SyntaxError" in line
    assert bad.rpartition(":")[0] in line
    _assert_no_mlflow_runs(project)


def test_invalid_pipeline(project: Path, write_pipeline: Callable[..., str]) -> None:
    bad = write_pipeline(
        """
        import stackwise

        @stackwise.step
        def add(x: int, n: int) -> int:
            return x + n

        @stackwise.pipeline
        def pipe():
            add(1)
        """
    )
    code, _, stderr = _invoke(["run", bad])
    assert code == 2
    line = _assert_one_line_error(stderr, "invalid pipeline")
    assert "input 'n' of step 'add' is not produced by any upstream step" in line
    _assert_no_mlflow_runs(project)


def test_missing_pipeline_name(project: Path, target: str) -> None:
    code, _, stderr = _invoke(["run", target.replace(":pipe", ":pipes")])
    assert code == 2
    line = _assert_one_line_error(stderr, "cannot load pipeline")
    assert "Did you mean 'pipe'?" in line
    _assert_no_mlflow_runs(project)


def test_stack_file_with_an_unknown_key(project: Path, target: str) -> None:
    (project / "stack.yaml").write_text("orchestrater: local\n")
    code, _, stderr = _invoke(["run", target, "--stack", "stack.yaml"])
    assert code == 2
    line = _assert_one_line_error(stderr, "invalid stack config")
    assert "stack.yaml: unknown key 'orchestrater'. Did you mean 'orchestrator'?" in line
    _assert_no_mlflow_runs(project)


def test_default_stack_file_with_a_bad_value(project: Path, target: str) -> None:
    (project / "stackwise.yaml").write_text("compute: lambda\n")
    code, _, stderr = _invoke(["run", target])
    assert code == 2
    line = _assert_one_line_error(stderr, "invalid stack config")
    assert "allowed: local, subprocess, ray, kubernetes" in line
    _assert_no_mlflow_runs(project)


def test_kubernetes_compute_without_credentials(project: Path, target: str) -> None:
    (project / "stackwise.yaml").write_text(
        "compute: kubernetes\nkubernetes:\n  config_file: no-such-kubeconfig\n"
    )
    code, _, stderr = _invoke(["run", target])
    assert code == 2
    line = _assert_one_line_error(stderr, "compute error")
    assert "cannot load the Kubernetes credentials" in line and "kubernetes.context" in line
    _assert_no_mlflow_runs(project)


def test_stack_file_that_is_not_yaml(project: Path, target: str) -> None:
    (project / "stack.yaml").write_text("orchestrator: [local\ncompute: local\n")
    code, _, stderr = _invoke(["run", target, "--stack", "stack.yaml"])
    assert code == 2
    line = _assert_one_line_error(stderr, "invalid stack config")
    assert "stack.yaml: not valid YAML" in line
    _assert_no_mlflow_runs(project)


def test_stack_file_that_does_not_exist(project: Path, target: str) -> None:
    code, _, stderr = _invoke(["run", target, "--stack", "nope.yaml"])
    assert code == 2
    line = _assert_one_line_error(stderr, "invalid stack config")
    assert "stack file 'nope.yaml' does not exist" in line
    _assert_no_mlflow_runs(project)


def test_errors_in_a_real_process(project: Path, target: str) -> None:
    proc = _python("-m", "stackwise", "run", target, "-p", "n=1.5", cwd=project)
    assert proc.returncode == 2
    line = _assert_one_line_error(proc.stderr, "invalid parameter")
    assert "parameter 'n' expects int, got '1.5'" in line
    assert proc.stdout == ""
    _assert_no_mlflow_runs(project)


def test_debug_shows_the_traceback(project: Path, target: str) -> None:
    proc = _python("-m", "stackwise", "--debug", "run", target, "-p", "n=x", cwd=project)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("invalid parameter: ")
