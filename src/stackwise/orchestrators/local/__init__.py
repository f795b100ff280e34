"""The embedded local orchestrator: scheduling loop, state store, cache and resume."""

from stackwise.orchestrators.local.executor import StepEvent
from stackwise.orchestrators.local.orchestrator import LocalOrchestrator
from stackwise.orchestrators.local.state import RunRecord, StateStore, StepRecord

__all__ = ["LocalOrchestrator", "RunRecord", "StateStore", "StepEvent", "StepRecord"]
