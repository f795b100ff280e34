"""Secrets never leave the process: what looks like a secret is removed or masked before
anything is written to MLflow (manifests, parameters, tags)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***REDACTED***"
_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASS|PWD|KEY|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE|SIGNATURE|CERT|SALT"
    r"|DSN|WEBHOOK|(^|_)PAT($|_))",
    re.IGNORECASE,
)
# Names that match the pattern above but are not secrets.
_NOT_SECRET = {"PWD", "OLDPWD", "KEYTIMEOUT", "XAUTHORITY"}
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")
_MIN_SECRET_LEN = 4


def is_secret_name(name: str) -> bool:
    return name.upper() not in _NOT_SECRET and bool(_SECRET_NAME.search(name))


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def secrets_for_run(params: Mapping[str, Any]) -> list[str]:
    """Secrets of the environment plus the values of secret-named run parameters, so that
    `-p db_password=...` stays masked wherever the value travels (step inputs, errors)."""
    values = set(secret_values())
    for name, value in params.items():
        if is_secret_name(name) and isinstance(value, str) and len(value) >= _MIN_SECRET_LEN:
            values.add(value)
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def redact_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without secret-looking variables and with embedded secrets masked."""
    env = dict(os.environ if environ is None else environ)
    secrets = secret_values(env)
    return {k: redact_text(v, secrets) for k, v in sorted(env.items()) if not is_secret_name(k)}


def redact_params(params: Mapping[str, Any], secrets: list[str] | None = None) -> dict[str, str]:
    """Parameters as MLflow strings; a secret-named parameter or a value that contains a secret
    from the environment is masked."""
    secrets = secret_values() if secrets is None else secrets
    out: dict[str, str] = {}
    for key, value in params.items():
        text = value if isinstance(value, str) else repr(value) if not _plain(value) else str(value)
        out[key] = REDACTED if is_secret_name(key) else redact_text(text, secrets)
    return out


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str | list | dict)


def masked_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as they may be stored or shown: secret-named values replaced by REDACTED
    (they are never stored in the state store, nor printed)."""
    return {k: REDACTED if is_secret_name(k) else v for k, v in params.items()}
