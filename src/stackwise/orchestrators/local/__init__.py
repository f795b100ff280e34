"""The embedded local orchestrator: scheduling loop (executor), state store, its step cache,
resumption, and the shield that lets shutdown finish. Names load on first use."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LocalOrchestrator": "stackwise.orchestrators.local.orchestrator",
    "StateStore": "stackwise.orchestrators.local.state",
    "RunRecord": "stackwise.orchestrators.base",
    "StepRecord": "stackwise.orchestrators.base",
    "StepEvent": "stackwise.orchestrators.base",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
