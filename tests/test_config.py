"""`stackwise.yaml`: defaults, loading, errors that name the file, the key and the allowed
values, tracking-URI precedence and path resolution against the stack file's folder."""

from pathlib import Path

import pytest

from stackwise.config import DEFAULT_FILE, StackConfig, load_stack
from stackwise.errors import ConfigError

ALLOWED_KEYS = (
    "orchestrator, compute, tracking, tracking_uri, experiment, artifact_store, "
    "mlflow_artifacts, state_store, max_parallel"
)


def _write(folder: Path, text: str, name: str = DEFAULT_FILE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_stack(path)
    assert exc.value.exit_code == 2
    return exc.value.message


def test_defaults_without_a_stack_file(project: Path) -> None:
    config = load_stack()
    assert config.orchestrator == "local"
    assert config.compute == "local"
    assert config.tracking is True
    assert config.tracking_uri is None
    assert config.experiment is None
    assert config.max_parallel == 4
    assert config.source is None
    assert config.base_dir == project
    assert config.tracking_uri_resolved == f"sqlite:///{project.resolve()}/.stackwise/mlflow.db"
    assert config.state_store_resolved == f"sqlite:///{project.resolve()}/.stackwise/state.db"
    artifacts = project.resolve() / ".stackwise" / "artifacts"
    assert config.artifact_store_resolved == artifacts.as_uri()
    mlartifacts = project.resolve() / ".stackwise" / "mlartifacts"
    assert config.mlflow_artifacts_resolved == mlartifacts.as_uri()


def test_loads_stackwise_yaml_from_the_current_folder(project: Path) -> None:
    _write(project, "compute: subprocess\nmax_parallel: 8\nexperiment: exp-a\ntracking: false\n")
    config = load_stack()
    assert config.compute == "subprocess"
    assert config.max_parallel == 8
    assert config.experiment == "exp-a"
    assert config.tracking is False
    assert config.source == str(project / DEFAULT_FILE)
    assert config.base_dir == project.resolve()


def test_loads_an_explicit_stack_file(project: Path) -> None:
    path = _write(project / "stacks", "orchestrator: local\ncompute: local\n", "dev.yaml")
    config = load_stack(path)
    assert config.source == str(path)
    assert config.base_dir == (project / "stacks").resolve()


def test_empty_stack_file_means_defaults(project: Path) -> None:
    path = _write(project, "# nothing configured yet\n")
    config = load_stack(path)
    assert config.model_dump() == StackConfig().model_dump()


def test_unknown_key_names_file_key_and_allowed_keys(project: Path) -> None:
    path = _write(project, "orchestrater: local\n")
    message = _error(path)
    assert message.startswith(f"{path}: unknown key 'orchestrater'.")
    assert "Did you mean 'orchestrator'?" in message
    assert f"Allowed keys: {ALLOWED_KEYS}" in message


def test_unknown_key_without_a_close_match(project: Path) -> None:
    path = _write(project, "colour: blue\n")
    message = _error(path)
    assert "unknown key 'colour'." in message
    assert "Did you mean" not in message
    assert f"Allowed keys: {ALLOWED_KEYS}" in message


@pytest.mark.parametrize("key", ["base_dir", "source"])
def test_internal_fields_cannot_be_set_from_the_file(project: Path, key: str) -> None:
    path = _write(project, f"{key}: /elsewhere\n")
    assert _error(path) == f"{path}: unknown key {key!r}."


def test_bad_orchestrator_lists_allowed_values(project: Path) -> None:
    path = _write(project, "orchestrator: airflw\n")
    message = _error(path)
    assert str(path) in message
    assert "key 'orchestrator' = 'airflw': unknown orchestrator; allowed: local" in message


def test_bad_compute_lists_allowed_values(project: Path) -> None:
    path = _write(project, "compute: lambda\n")
    message = _error(path)
    assert str(path) in message
    assert "key 'compute' = 'lambda'" in message
    assert "allowed: local, subprocess, ray, kubernetes" in message


def test_planned_backend_is_valid_config_but_cannot_run_yet(project: Path) -> None:
    from stackwise.plugins import COMPUTE_BACKENDS, resolve

    path = _write(project, "orchestrator: kubeflow\ncompute: kubernetes\n")
    config = load_stack(path)
    assert (config.orchestrator, config.compute) == ("kubeflow", "kubernetes")
    with pytest.raises(ConfigError, match="set it to one of local, subprocess"):
        resolve(COMPUTE_BACKENDS, "compute backend", config.compute)


def test_bad_state_store_lists_allowed_values(project: Path) -> None:
    path = _write(project, "state_store: mysql://db/state\n")
    message = _error(path)
    assert "key 'state_store' = 'mysql://db/state'" in message
    assert "sqlite:///PATH or postgresql://" in message


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("0", "greater than or equal to 1"),
        ("-2", "greater than or equal to 1"),
        ("2000", "less than or equal to 1024"),
        ("many", "valid integer"),
    ],
)
def test_bad_max_parallel(project: Path, value: str, detail: str) -> None:
    path = _write(project, f"max_parallel: {value}\n")
    message = _error(path)
    assert f"{path}: key 'max_parallel' = " in message
    assert detail in message


def test_several_problems_are_reported_together(project: Path) -> None:
    path = _write(project, "compute: gpu\nmax_parallel: 0\n")
    message = _error(path)
    assert "key 'compute'" in message and "key 'max_parallel'" in message


def test_invalid_yaml(project: Path) -> None:
    path = _write(project, "orchestrator: [local\n")
    message = _error(path)
    assert message.startswith(f"{path}: not valid YAML")


@pytest.mark.parametrize("text", ["- local\n- subprocess\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(project: Path, text: str) -> None:
    path = _write(project, text)
    assert _error(path) == f"{path}: expected a mapping of keys to values at the top level."


def test_explicit_stack_file_that_does_not_exist(project: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_stack("stacks/missing.yaml")
    message = exc.value.message
    assert "stack file 'stacks/missing.yaml' does not exist" in message
    assert "drop --stack to use the defaults" in message


def test_tracking_uri_from_the_file(project: Path) -> None:
    path = _write(project, "tracking_uri: http://mlflow.internal:5000\n")
    config = load_stack(path)
    assert config.tracking_uri_resolved == "http://mlflow.internal:5000"
    assert config.mlflow_artifacts_resolved is None  # the server decides


def test_env_var_takes_precedence_over_the_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(project, "tracking_uri: sqlite:///from-file.db\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert load_stack(path).tracking_uri_resolved == "http://from-env:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert load_stack(path).tracking_uri_resolved == f"sqlite:///{project.resolve()}/from-file.db"


def test_env_var_takes_precedence_over_the_default(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////abs/env.db")
    assert load_stack().tracking_uri_resolved == "sqlite:////abs/env.db"


def test_relative_paths_resolve_against_the_stack_file_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = project / "deploy" / "dev"
    path = _write(
        folder,
        "tracking_uri: sqlite:///db/mlflow.db\n"
        "state_store: sqlite:///state.db\n"
        "artifact_store: ../artifacts\n"
        "mlflow_artifacts: mlart\n",
    )
    other = project / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    config = load_stack(path)
    base = folder.resolve()
    assert config.tracking_uri_resolved == f"sqlite:///{base / 'db' / 'mlflow.db'}"
    assert config.state_store_resolved == f"sqlite:///{base / 'state.db'}"
    assert config.artifact_store_resolved == (project / "deploy" / "artifacts").resolve().as_uri()
    assert config.mlflow_artifacts_resolved == (base / "mlart").as_uri()


def test_relative_env_sqlite_uri_resolves_against_the_stack_file_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(project / "conf", "compute: local\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    expected = f"sqlite:///{(project / 'conf').resolve()}/env.db"
    assert load_stack(path).tracking_uri_resolved == expected


def test_absolute_and_remote_locations_are_kept(project: Path) -> None:
    path = _write(
        project,
        "tracking_uri: sqlite:////var/lib/mlflow.db\n"
        "state_store: postgresql://user@db:5432/state\n"
        "artifact_store: s3://bucket/prefix\n",
    )
    config = load_stack(path)
    assert config.tracking_uri_resolved == "sqlite:////var/lib/mlflow.db"
    assert config.state_store_resolved == "postgresql://user@db:5432/state"
    assert config.artifact_store_resolved == "s3://bucket/prefix"


def test_a_backend_section_is_validated_by_the_backends_own_model(project: Path) -> None:
    from pydantic import BaseModel, ConfigDict

    from stackwise.config import section

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        namespace: str = "default"
        retries: int = 0

    path = _write(project, "kubernetes:\n  namespace: ml\n")
    assert section(load_stack(path), "kubernetes", Settings).namespace == "ml"
    assert section(load_stack(_write(project, "")), "kubernetes", Settings).retries == 0

    bad = _write(project, "kubernetes:\n  namespce: ml\n  retries: many\n")
    with pytest.raises(ConfigError) as exc:
        section(load_stack(bad), "kubernetes", Settings)
    message = exc.value.message
    assert str(bad) in message
    assert "unknown key 'kubernetes.namespce'. Did you mean 'namespace'?" in message
    assert "key 'kubernetes.retries' = 'many'" in message

    assert "key 'kubernetes' = [1]: Input should be a valid dictionary" in _error(
        _write(project, "kubernetes: [1]\n")
    )
