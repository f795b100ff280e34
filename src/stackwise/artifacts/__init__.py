"""Artifacts: content-addressed storage of step outputs and the serializers behind it."""

from stackwise.artifacts.store import ArtifactRef, ArtifactStore

__all__ = ["ArtifactRef", "ArtifactStore"]
