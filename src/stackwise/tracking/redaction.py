"""Secrets never leave the process: what looks like a secret is removed or masked before
anything is written to MLflow (manifests, parameters, tags)."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***REDACTED***"
#: A word of a name (split at '_', '-', '.', and camelCase) that makes it a secret when the
#: word is one of these, or ends with one (PGPASSWORD, GHTOKEN), or begins with one but for
#: "token" (`max_tokens` counts tokens).
_STRONG = ("password", "passwd", "passphrase", "secret", "credential", "token")
#: Words that make a name a secret only as a whole word (so `author`, `max_tokens`,
#: `n_passes`, `uncertainty` are not secrets, `HTTP_AUTH`, `DB_PASS`, `TLS_CERT` are).
_EXACT = frozenset(
    {"auth", "authorization", "pass", "pwd", "pat", "dsn", "cookie", "cookies", "session",
     "sessionid", "salt", "signature", "webhook", "cert", "private", "privatekey", "apikey",
     "jwt", "bearer", "hmac", "credentials", "secrets"}
)  # fmt: skip
#: A `key` word is a secret (API_KEY, STRIPE_KEY) unless the word before it says it is data.
_DATA_KEYS = frozenset(
    {"sort", "group", "partition", "join", "primary", "foreign", "dict", "cache", "lookup",
     "hash", "index", "row", "column", "col", "label", "target", "id", "name", "feature",
     "random", "rng", "prng", "seed", "map", "field", "shard", "bucket", "order"}
)  # fmt: skip
# Names that match the rules above but are not secrets.
_NOT_SECRET = {"PWD", "OLDPWD", "KEYTIMEOUT", "XAUTHORITY"}
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")
_MIN_SECRET_LEN = 4


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a variable or parameter named `name` holds a secret, judged by its words.
    Memoized (a pure function of the name): every step scans the whole environment."""
    if name.upper() in _NOT_SECRET:
        return False
    words = [w.lower() for w in _WORDS.findall(name)]
    for i, word in enumerate(words):
        if word in _EXACT or any(
            word.endswith(s) or (word.startswith(s) and s != "token") for s in _STRONG
        ):
            return True
        if word == "key" and (i == 0 or words[i - 1] not in _DATA_KEYS):
            return True
    return False


#: The process environment's secrets, with the copy of the environment they were found in.
_environ_secrets: tuple[dict[Any, Any], list[str]] | None = None


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the secret-named variables of `environ` (default: this process's), longest
    first. For the process environment the answer is kept until the environment changes
    (compared whole, in one C-level step: every step attempt asks, several times)."""
    global _environ_secrets
    data = getattr(os.environ, "_data", None) if environ is None else None
    known = _environ_secrets
    if isinstance(data, dict) and known is not None and known[0] == data:
        return list(known[1])
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LEN}
    found = sorted(values, key=len, reverse=True)
    if isinstance(data, dict):
        _environ_secrets = (dict(data), found)
    return list(found)


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
