"""Compute backends: where a step attempt runs (threads here, a fresh process, later Ray and
Kubernetes). Each implements `ComputeBackend` from `base.py` and is found via `plugins.py`."""

from stackwise.compute.base import ComputeBackend, StepHandle

__all__ = ["ComputeBackend", "StepHandle"]
