"""stackwise: author an ML pipeline once, run it on any orchestrator, track it in MLflow.

Public API only; everything is imported on first use so that `import stackwise` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "step": "stackwise.authoring.step",
    "Resources": "stackwise.authoring.step",
    "Retries": "stackwise.authoring.step",
    "pipeline": "stackwise.authoring.pipeline",
    "Pipeline": "stackwise.authoring.pipeline",
    "StepContext": "stackwise.authoring.context",
    "Interval": "stackwise.authoring.context",
    "current_context": "stackwise.authoring.context",
    "log_metric": "stackwise.authoring.context",
    "log_metrics": "stackwise.authoring.context",
    "log_dataset": "stackwise.authoring.context",
    "load_pipeline": "stackwise.authoring.loader",
    "run": "stackwise.api",
    "StackwiseError": "stackwise.errors",
    "register_model": "stackwise.governance.registration",
    "Schedule": "stackwise.scheduling.schedule",
}

__all__ = [
    "Interval",
    "Pipeline",
    "Resources",
    "Retries",
    "Schedule",
    "StackwiseError",
    "StepContext",
    "current_context",
    "load_pipeline",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "pipeline",
    "register_model",
    "run",
    "step",
]

if TYPE_CHECKING:
    from stackwise.api import run
    from stackwise.authoring.context import (
        Interval,
        StepContext,
        current_context,
        log_dataset,
        log_metric,
        log_metrics,
    )
    from stackwise.authoring.loader import load_pipeline
    from stackwise.authoring.pipeline import Pipeline, pipeline
    from stackwise.authoring.step import Resources, Retries, step
    from stackwise.errors import StackwiseError
    from stackwise.governance.registration import register_model
    from stackwise.scheduling.schedule import Schedule


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stackwise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
