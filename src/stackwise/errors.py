"""One error hierarchy, so that callers can catch everything stackwise raises with one class.

::

    StackwiseError                      exit 2 unless a subclass says otherwise
    +-- ConfigError                     stackwise.yaml is missing a value, has an unknown key...
    +-- PipelineError                   the pipeline cannot be loaded or is malformed
    |   +-- PipelineLoadError           the TARGET reference does not resolve
    |   +-- PipelineValidationError     cycle, duplicate step, missing input, type mismatch
    +-- ParameterError                  unknown run parameter or a value of the wrong type
    +-- ScheduleError                   bad cron, timezone, date, or a range with no interval
    +-- ArtifactError                   an artifact cannot be written, read or is missing
    +-- InvocationError                 a StepInvocation is malformed or of another version
    +-- BundleError                     a code bundle cannot be built, fetched or verified
    +-- TrackingError                   the MLflow tracking server cannot be reached
    +-- TargetError                     Airflow/Kubeflow unreachable, refused credentials,
    |                                   or rejected the compiled pipeline
    +-- StateStoreError                 the run state store cannot be opened or is inconsistent
    +-- RunNotFoundError                no run with that id in the state store
    +-- AdvisorError                    `stackwise advise` cannot do what was asked
    |   +-- ProfileError                the team profile has an unknown key or a bad value
    +-- GovernanceError                 unknown model, version or alias; nothing to roll back
    |   +-- PolicyError                 the policy file has an unknown rule, key or a bad value
    |   +-- PolicyViolation (exit 1)    a promotion was refused because a policy rule failed
    +-- LineageError                    a lineage REF names no model version, run or dataset
    +-- DashboardError                  `stackwise dashboard` cannot start (missing extra, port)
    +-- ComputeError                    the compute backend can never run the step as asked
    +-- WorkerFailedError (exit 1)      one worker of a distributed step failed (and all stop)
    +-- RunFailedError (exit 1)         a run finished with at least one failed step
    +-- StepTimeoutError (exit 1)       raised inside a step whose timeout elapsed
    +-- StepCancelledError (exit 130)   raised inside a step when the run is interrupted

Every message says what happened and how to fix it; the CLI prints it as one red line.
"""

from __future__ import annotations

from typing import Any, ClassVar


class StackwiseError(Exception):
    """Root of every error stackwise raises on purpose."""

    exit_code: ClassVar[int] = 2
    headline: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(StackwiseError):
    headline = "invalid stack config"


class PipelineError(StackwiseError):
    headline = "invalid pipeline"


class PipelineLoadError(PipelineError):
    headline = "cannot load pipeline"


class PipelineValidationError(PipelineError):
    headline = "invalid pipeline"


class ParameterError(StackwiseError):
    headline = "invalid parameter"


class ScheduleError(StackwiseError):
    headline = "invalid schedule"


class ArtifactError(StackwiseError):
    headline = "artifact error"


class InvocationError(StackwiseError):
    headline = "invalid step invocation"


class BundleError(StackwiseError):
    headline = "code bundle error"


class TrackingError(StackwiseError):
    headline = "tracking error"


class TargetError(StackwiseError):
    headline = "orchestrator error"


class StateStoreError(StackwiseError):
    headline = "state store error"


class RunNotFoundError(StackwiseError):
    headline = "run not found"


class AdvisorError(StackwiseError):
    headline = "advisor error"


class ProfileError(AdvisorError):
    headline = "invalid team profile"


class GovernanceError(StackwiseError):
    headline = "governance error"


class PolicyError(GovernanceError):
    headline = "invalid policy"


class PolicyViolation(GovernanceError):
    """A promotion the policy refused; the refusal itself is recorded in the audit trail.
    `result` is the policy result (each rule's observed and required values)."""

    exit_code = 1
    headline = "promotion refused"

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class LineageError(StackwiseError):
    headline = "lineage error"


class ReproduceError(StackwiseError):
    """A model version that cannot be reproduced as given (bad reference, no lineage)."""

    headline = "cannot reproduce"


class MigrationRefused(StackwiseError):
    """Runs are in progress on the old orchestrator, or the ledger and MLflow disagree."""

    headline = "migration refused"


class DashboardError(StackwiseError):
    headline = "dashboard error"


class ComputeError(StackwiseError):
    """The compute backend cannot run a step as asked (resources the cluster never has,
    a cluster it cannot reach, a location its workers cannot see)."""

    headline = "compute error"


class WorkerFailedError(StackwiseError):
    exit_code = 1
    headline = "worker failed"


class RunFailedError(StackwiseError):
    exit_code = 1
    headline = "run failed"


class StepTimeoutError(StackwiseError):
    """Injected into a running step when its timeout elapses (so it takes no arguments)."""

    exit_code = 1
    headline = "step timed out"

    def __init__(self, message: str = "the step ran past its timeout and was stopped") -> None:
        super().__init__(message)


class StepCancelledError(StackwiseError):
    """Injected into a running step's thread when the run is interrupted (Ctrl-C, SIGTERM)."""

    exit_code = 130
    headline = "cancelled"

    def __init__(self, message: str = "the run was interrupted and this step was stopped") -> None:
        super().__init__(message)


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A ' Did you mean ...?' suffix for messages, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=3)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
