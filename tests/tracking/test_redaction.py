"""Secrets never reach MLflow: secret-named variables are dropped, secret values and URL
passwords are masked, and the environment manifest carries none of them."""

import json
import platform
import sys
from pathlib import Path

import pytest

from stackwise.tracking.manifest import build_manifest, manifest_digest
from stackwise.tracking.redaction import (
    REDACTED,
    is_secret_name,
    redact_env,
    redact_params,
    redact_text,
    secret_values,
)

SECRET = "supersecretvalue"


@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_TOKEN",
        "MY_API_TOKEN",
        "token",
        "AWS_SECRET_ACCESS_KEY",
        "client_secret",
        "DB_PASSWORD",
        "PGPASSWD",
        "API_KEY",
        "api_key",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_CREDENTIAL",
        "HTTP_AUTH",
        "SSH_PRIVATE",
        "SESSION_ID",
        "COOKIE_JAR",
        "SENTRY_DSN",
        "TLS_CERT",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["PATH", "HOME", "USER", "LANG", "PWD", "OLDPWD", "KEYTIMEOUT", "XAUTHORITY", "n"]
)
def test_non_secret_names(name: str) -> None:
    assert not is_secret_name(name)


def test_secret_values_are_taken_from_secret_named_variables_longest_first() -> None:
    env = {"A_TOKEN": "abcd", "B_SECRET": "abcdefgh", "SHORT_KEY": "abc", "PATH": "/usr/bin"}
    assert secret_values(env) == ["abcdefgh", "abcd"]


def test_redact_env_removes_secret_variables() -> None:
    env = {
        "GITHUB_TOKEN": "ghp_0123456789",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "DB_PASSWORD": "hunter2hunter2",
        "OPENAI_API_KEY": "sk-abcdef",
        "GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json",
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/me",
        "PWD": "/work",
    }
    redacted = redact_env(env)
    assert redacted == {"HOME": "/home/me", "PATH": "/usr/bin:/bin", "PWD": "/work"}
    assert list(redacted) == sorted(redacted)


def test_redact_env_masks_secrets_embedded_in_other_values() -> None:
    env = {
        "GITHUB_TOKEN": "ghp_0123456789",
        "GIT_REMOTE": "https://x-access:ghp_0123456789@github.com/org/repo",
        "CMDLINE": "deploy --token ghp_0123456789 --fast",
    }
    redacted = redact_env(env)
    assert "GITHUB_TOKEN" not in redacted
    assert redacted["CMDLINE"] == f"deploy --token {REDACTED} --fast"
    assert "ghp_0123456789" not in json.dumps(redacted)


def test_redact_env_masks_passwords_in_urls() -> None:
    env = {
        "DATABASE_URL": "postgresql://app:pa55word@db.internal:5432/prod",
        "BROKER": "amqp://guest:guestpass@rabbit/vhost",
        "PLAIN_URL": "https://example.com/path?x=1",
        "USER_ONLY": "ssh://git@github.com/org/repo",
    }
    redacted = redact_env(env)
    assert redacted["DATABASE_URL"] == f"postgresql://app:{REDACTED}@db.internal:5432/prod"
    assert redacted["BROKER"] == f"amqp://guest:{REDACTED}@rabbit/vhost"
    assert redacted["PLAIN_URL"] == "https://example.com/path?x=1"
    assert redacted["USER_ONLY"] == "ssh://git@github.com/org/repo"


def test_redact_text_masks_a_url_password_without_a_user() -> None:
    # redis://:password@host is the usual form for a password-only Redis URL.
    text = redact_text("redis://:s3cretpass@localhost:6379/0", [])
    assert "s3cretpass" not in text
    assert text == f"redis://:{REDACTED}@localhost:6379/0"


def test_redact_text_masks_every_occurrence_longest_first() -> None:
    text = redact_text("a=abcdefgh b=abcd c=abcdefgh", ["abcdefgh", "abcd"])
    assert text == f"a={REDACTED} b={REDACTED} c={REDACTED}"


def test_short_values_are_not_treated_as_secrets() -> None:
    redacted = redact_env({"A_KEY": "abc", "MODE": "abc-mode"})
    assert redacted == {"MODE": "abc-mode"}


def test_redact_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_TOKEN", SECRET)
    monkeypatch.setenv("SW_TEST_ECHO", f"value with {SECRET} inside")
    redacted = redact_env()
    assert "MY_API_TOKEN" not in redacted
    assert redacted["SW_TEST_ECHO"] == f"value with {REDACTED} inside"


def test_redact_params_masks_secret_named_params() -> None:
    params = {"api_key": "abc", "db_password": 12345, "epochs": 3, "lr": 0.1}
    assert redact_params(params, secrets=[]) == {
        "api_key": REDACTED,
        "db_password": REDACTED,
        "epochs": "3",
        "lr": "0.1",
    }


def test_redact_params_masks_values_containing_a_secret() -> None:
    params = {
        "endpoint": f"https://api.example.com/?token={SECRET}",
        "headers": {"Authorization": f"Bearer {SECRET}"},
        "layers": [64, 32],
        "flag": True,
        "nothing": None,
    }
    redacted = redact_params(params, secrets=[SECRET])
    assert redacted["endpoint"] == f"https://api.example.com/?token={REDACTED}"
    assert SECRET not in redacted["headers"] and REDACTED in redacted["headers"]
    assert redacted["layers"] == "[64, 32]"
    assert redacted["flag"] == "True"
    assert redacted["nothing"] == "None"


def test_redact_params_masks_url_passwords() -> None:
    redacted = redact_params({"db": "postgresql://u:pw1234@h/db"}, secrets=[])
    assert redacted == {"db": f"postgresql://u:{REDACTED}@h/db"}


def test_redact_params_uses_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_TOKEN", SECRET)
    redacted = redact_params({"query": f"q?key={SECRET}"})
    assert redacted == {"query": f"q?key={REDACTED}"}


def test_build_manifest_is_complete_and_free_of_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MY_API_TOKEN", SECRET)
    monkeypatch.setenv("SW_TEST_DATABASE_URL", f"postgresql://app:{SECRET}@db/prod")
    monkeypatch.setenv("SW_TEST_ECHO", f"copy of {SECRET}")
    manifest = build_manifest(
        source_folder=str(tmp_path), orchestrator="local", compute="subprocess", image="img:1"
    )
    assert manifest["python"]["version"] == platform.python_version()
    assert manifest["python"]["executable"] == sys.executable
    assert manifest["platform"]["system"] == platform.system()
    assert manifest["platform"]["machine"] == platform.machine()
    packages = manifest["packages"]
    assert {"stackwise", "mlflow", "pydantic"} <= set(packages)
    assert packages["stackwise"] == "0.1.0"
    assert manifest["orchestrator"] == "local"
    assert manifest["compute"] == "subprocess"
    assert manifest["image"] == "img:1"
    assert manifest["git"] == {}  # tmp_path is not a git repository
    env = manifest["environment_variables"]
    assert "MY_API_TOKEN" not in env
    assert env["SW_TEST_ECHO"] == f"copy of {REDACTED}"
    assert env["SW_TEST_DATABASE_URL"] == f"postgresql://app:{REDACTED}@db/prod"
    dumped = json.dumps(manifest)
    assert SECRET not in dumped
    assert len(manifest_digest(manifest)) == 16


def test_manifest_git_info_for_a_repository(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@e", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.txt").write_text("x")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    subprocess.run(
        [*git, "remote", "add", "origin", f"https://bot:{SECRET}@git.example.com/o/r.git"],
        check=True,
    )
    monkeypatch.setenv("MY_API_TOKEN", SECRET)
    manifest = build_manifest(
        source_folder=str(repo), orchestrator="local", compute="local", image=None
    )
    info = manifest["git"]
    assert len(info["commit"]) == 40
    assert info["dirty"] is False
    assert SECRET not in json.dumps(manifest)
    assert info["remote"] == f"https://bot:{REDACTED}@git.example.com/o/r.git"


@pytest.mark.parametrize(
    "name",
    ["max_tokens", "maxTokens", "num_tokens", "author", "n_passes", "uncertainty", "sort_key",
     "rng_key", "partition_key", "keys"],
)  # fmt: skip
def test_hyperparameters_whose_names_contain_a_secret_word_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["STRIPE_KEY", "apiKey", "DB_PASS", "PGPASSWORD", "refresh_token", "GH_PAT"]
)
def test_more_secret_names(name: str) -> None:
    assert is_secret_name(name)
