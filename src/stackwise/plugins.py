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


#: Where the runner's step cache keeps entries (see stackwise.caching).
CACHE_STORES: dict[str, str] = {
    "artifacts": "stackwise.caching:ArtifactStoreCache",
    "state": "stackwise.orchestrators.local.cache:StateStoreCache",
}

#: Orchestrators that stackwise hands a compiled pipeline to (the `Target` protocol).
TARGETS: dict[str, str] = {
    "airflow": "stackwise.orchestrators.airflow.target:AirflowTarget",
    "kubeflow": "stackwise.orchestrators.kubeflow.target:KubeflowTarget",
}


#: Names a stack file may already use: the advisor recommends them, and the adapters that
#: implement them arrive in later releases (then they move into the tables above).
PLANNED_ORCHESTRATORS: tuple[str, ...] = ()
PLANNED_COMPUTE_BACKENDS = ("ray", "kubernetes")


def resolve(table: dict[str, str], kind: str, name: str) -> Any:
    target = table.get(name)
    planned: tuple[str, ...] = ()
    if table is ORCHESTRATORS or table is TARGETS:
        planned = PLANNED_ORCHESTRATORS
    elif table is COMPUTE_BACKENDS:
        planned = PLANNED_COMPUTE_BACKENDS
    if target is None and name in planned:
        usable = table or ORCHESTRATORS
        raise ConfigError(
            f"{kind} {name!r} is not available in this release of stackwise yet; set it to one "
            f"of {', '.join(usable)} in stackwise.yaml to run now."
        )
    if target is None:
        raise ConfigError(
            f"unknown {kind} {name!r}.{did_you_mean(name, list(table))} "
            f"Available: {', '.join(table)}."
        )
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
