"""Model governance on MLflow alone: registration with lineage tags, promotion through
registered-model aliases, promotion policies as code, and an append-only audit trail.

Nothing here depends on which orchestrator produced a model, so governance survives a change
of orchestrator. MLflow is imported inside functions only.
"""

__all__ = ["audit", "clock", "lifecycle", "policies", "registration", "rules"]
