"""Tracking: the MLflow run layout, the environment manifest and secret redaction."""

from stackwise.tracking.mlflow_tracker import MlflowTracker, tracker_for

__all__ = ["MlflowTracker", "tracker_for"]
