"""The one registration table: backend name -> "module:Class". Strings, so nothing is imported
until a backend is asked for by name (an Airflow or Ray backend never slows `--help`)."""

from __future__ import annotations

import importlib
from typing import Any

from stackwise.errors import ConfigError, did_you_mean

ORCHESTRATORS: dict[str, str] = {
    "local": "stackwise.orchestrators.local.orchestrator:LocalOrchestrator",
}

COMPUTE_BACKENDS: dict[str, str] = {
    "local": "stackwise.compute.local:LocalBackend",
    "subprocess": "stackwise.compute.subprocess:SubprocessBackend",
}


def resolve(table: dict[str, str], kind: str, name: str) -> Any:
    target = table.get(name)
    if target is None:
        raise ConfigError(
            f"unknown {kind} {name!r}.{did_you_mean(name, list(table))} "
            f"Available: {', '.join(table)}."
        )
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
