"""`KubeflowTarget`: the `Target` protocol for Kubeflow Pipelines v2.

`compile` bundles the project into the artifact store (so a code change needs no image
build), compiles the pipeline to KFP's IR YAML and writes the recurring-run definition beside
it; `deploy` compiles into `.stackwise/kubeflow/` and connects; `trigger` submits a run with
the non-secret parameters; `status` reads it back as a `RunRecord`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackwise.config import STATE_DIR, StackConfig, section
from stackwise.errors import ParameterError, PipelineLoadError
from stackwise.orchestrators.base import Deployment, RunRecord, StepRecord
from stackwise.orchestrators.kubeflow.settings import KubeflowSettings

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.contract import PipelineRef
    from stackwise.interval import Interval

#: KFP run states (v2beta1 RuntimeState) as stackwise statuses.
RUN_STATES = {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "CANCELED": "KILLED",
              "CANCELING": "KILLED", "SKIPPED": "FAILED"}  # fmt: skip
TASK_STATES = {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "CANCELED": "KILLED",
               "CANCELING": "KILLED", "SKIPPED": "SKIPPED", "RUNNING": "RUNNING",
               "CACHED": "SUCCEEDED"}  # fmt: skip


class KubeflowTarget:
    name = "kubeflow"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.settings = section(config, "kubeflow", KubeflowSettings)
        self._client: Any = None
        self._steps: dict[str, tuple[str, ...]] = {}
        self._params: dict[str, tuple[str, ...]] = {}
        self._defaults: dict[str, Any] = {}

    # -- validate and compile -------------------------------------------------------------
    def validate(self, pipeline: Pipeline) -> list[str]:
        from stackwise.orchestrators.kubeflow import validation as v

        problems = v.settings_problems(self.settings) + v.param_problems(pipeline, self.settings)
        problems += v.step_problems(pipeline, self.settings) + v.schedule_problems(pipeline)
        problems += self._store_problems()
        source = pipeline.source_file
        root = self.config.base_dir.resolve()
        if source is not None and root not in Path(source).resolve().parents:
            problems.append(
                f"the pipeline file {source} is outside the project folder {root}, so the code "
                "bundle would not hold it: run from the project folder or point --stack at the "
                "project's stackwise.yaml"
            )
        return problems

    def _store_problems(self) -> list[str]:
        if self.settings.host_local_stores:
            return []
        from stackwise.contract import (
            BundleRef,
            PipelineRef,
            StepInvocation,
            TrackingTarget,
            remote_problems,
        )

        probe = StepInvocation(
            pipeline=PipelineRef(target="p.py", name="p",
                                 bundle=BundleRef(uri="s3://b", digest="0" * 64)),
            step="probe", run_id="probe", artifact_root=self.config.artifact_store_resolved,
            tracking=TrackingTarget(uri=self.config.tracking_uri_resolved, experiment="e")
            if self.config.tracking else None,
        )  # fmt: skip
        return [
            p + " (or set kubeflow.host_local_stores: true to run with kfp.local on this host)"
            for p in remote_problems(probe)
        ]

    def ship(self, pipeline: Pipeline) -> PipelineRef:
        """Bundle the project into the artifact store; the pipeline's reference inside it."""
        from stackwise.bundles import build_bundle, portable_ref

        if pipeline.ref is None:
            raise PipelineLoadError(f"pipeline {pipeline.name!r} was not loaded from a file or "
                                    "module; load it with its TARGET reference.")  # fmt: skip
        root = self.config.base_dir
        bundle, _, _ = build_bundle(root, self.config.artifact_store_resolved)
        ref = portable_ref(pipeline.ref, root, bundle)
        return ref.model_copy(update={"root": None})

    def compile(self, pipeline: Pipeline, out: Path) -> list[Path]:
        """Write the KFP spec to `out` (a `.yaml` file, or a folder: `<pipeline>.yaml` in it)
        and, for a scheduled pipeline, `<stem>.recurring.yaml` beside it."""
        from stackwise.orchestrators.kubeflow import recurring
        from stackwise.orchestrators.kubeflow.compile import build, write_spec
        from stackwise.orchestrators.kubeflow.validation import k8s_name

        spec = out if out.suffix in (".yaml", ".yml") else out / f"{k8s_name(pipeline.name)}.yaml"
        component = build(pipeline, self.config, self.settings, self.ship(pipeline))
        files = [write_spec(component, spec)]
        schedule_file = recurring.write(pipeline, self.settings, spec)
        return files + ([schedule_file] if schedule_file else [])

    # -- run ------------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._client is None:
            from stackwise.orchestrators.kubeflow.client import connect

            self._client = connect(self.settings)
        return self._client

    def deploy(self, pipeline: Pipeline) -> Deployment:
        """Compile into `.stackwise/kubeflow/` (uploading the code bundle) and connect."""
        from stackwise.orchestrators.kubeflow.compile import kfp_params

        self._connect()  # an unreachable endpoint fails before anything is bundled
        folder = self.config.base_dir / STATE_DIR / "kubeflow"
        files = tuple(self.compile(pipeline, folder))
        deployment = Deployment(target=self.name, pipeline=pipeline.name, ref=str(files[0]),
                                files=files)  # fmt: skip
        self._steps[deployment.ref] = pipeline.order
        self._params[deployment.ref] = tuple(kfp_params(pipeline))
        self._defaults = dict(pipeline.params)
        return deployment

    def trigger(
        self, deployment: Deployment, params: dict[str, Any], interval: Interval | None = None
    ) -> str:
        """Submit one run with the KFP parameters among `params`. A secret parameter given a
        value here is refused: it would travel in clear; it comes from a Kubernetes secret."""
        from stackwise.orchestrators.kubeflow.client import submit
        from stackwise.orchestrators.kubeflow.validation import default_value, secret_env
        from stackwise.tracking.redaction import is_secret_name

        for name, value in params.items():
            spec = self._defaults.get(name)
            if is_secret_name(name) and spec is not None and (
                spec.required or value != default_value(spec)
            ):
                raise ParameterError(
                    f"secret parameter {name!r} cannot be sent to Kubeflow (it would travel in "
                    f"clear): map {secret_env(name)} to a Kubernetes secret in kubeflow.secrets."
                )
        names = self._params.get(deployment.ref, ())
        arguments = {k: v for k, v in params.items() if k in names}
        stamp = time.strftime("%Y-%m-%d %H-%M-%S")
        return submit(
            self._connect(), self.settings, Path(deployment.ref), arguments,
            run_name=f"{deployment.pipeline} {stamp}",
            experiment=self.settings.experiment or deployment.pipeline,
        )  # fmt: skip

    def status(self, deployment: Deployment, run: str) -> RunRecord:
        from stackwise.orchestrators.kubeflow.client import get_run
        from stackwise.orchestrators.kubeflow.task import run_id_for

        data = get_run(self._connect(), self.settings, run)
        state = str(getattr(data, "state", None) or "PENDING")
        record = RunRecord(
            run_id=run_id_for(run), pipeline=deployment.pipeline, pipeline_ref=deployment.ref,
            pipeline_version="", params={}, status=RUN_STATES.get(state, "RUNNING"),
            created_at=_epoch(getattr(data, "created_at", None)) or time.time(),
            orchestrator=self.name, compute=self.name,
            error=_error_text(getattr(data, "error", None)),
        )  # fmt: skip
        for name in self._steps.get(deployment.ref, ()):
            record.steps[name] = StepRecord(name=name)
        details = getattr(data, "run_details", None)
        for task in getattr(details, "task_details", None) or []:
            shown = getattr(task, "display_name", None)
            if shown not in record.steps:
                continue
            name = str(shown)
            history = getattr(task, "state_history", None) or []
            failures = sum(1 for h in history if getattr(h, "state", None) == "FAILED")
            status = TASK_STATES.get(str(getattr(task, "state", "") or ""), "RUNNING")
            started, ended = _epoch(task.start_time), _epoch(task.end_time)
            record.steps[name] = StepRecord(
                name=name, status=status, attempt=max(1, failures + (status != "FAILED")),
                started_at=started, ended_at=ended,
                duration_s=(ended - started) if started and ended and ended >= started else None,
                error=_error_text(getattr(task, "error", None)),
            )  # fmt: skip
        return record


def _epoch(value: Any) -> float | None:
    if value is None or not hasattr(value, "timestamp"):
        return None
    stamp = float(value.timestamp())
    return stamp if stamp > 0 else None


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    message = getattr(error, "message", None)
    return str(message) if message else None
