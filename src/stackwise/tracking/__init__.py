"""Tracking: the MLflow run layout, the environment manifest and secret redaction.

Imported lazily: MLflow loads `stackwise.tracking.reconnect` (a request-header plugin) in
every process where stackwise is installed, which must not pull in the rest of stackwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["MlflowTracker", "tracker_for"]

if TYPE_CHECKING:
    from stackwise.tracking.mlflow_tracker import MlflowTracker, tracker_for


def __getattr__(name: str) -> Any:
    if name in __all__:
        from stackwise.tracking import mlflow_tracker

        return getattr(mlflow_tracker, name)
    raise AttributeError(f"module 'stackwise.tracking' has no attribute {name!r}")
