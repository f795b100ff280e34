"""Pipeline -> KFP pipeline -> IR YAML, with the KFP SDK, from data only.

The KFP pipeline function is built programmatically: its signature is the pipeline's
non-secret parameters as typed KFP parameters (required ones first), its body one task per
step (the step's component from `component.step_component`, ordered with `.after()`: inputs
travel through the artifact store, so tasks need only ordering), all inside a
`dsl.ExitHandler` whose exit task closes the MLflow parent run even when a step fails.

Per task: cpu and memory (request = limit), accelerator type and count, retries with backoff,
the Kubernetes timeout, image, and from the stack: node selector, tolerations and secrets as
environment variables. KFP's own task caching is off on every task: a task KFP skipped would
leave no step record in the run, and the next step could not find its inputs by run id; reuse
comes from stackwise's step cache in the artifact store instead (recorded in MLflow as cache
hits), switched by `kubeflow.caching` and `@step(cache=...)`.

The YAML is written by `write_spec`, not by `Compiler().compile`: KFP 2.17 prefixes the file
with comments it does not escape, so a parameter default holding a newline made an invalid
file; the documents themselves are KFP's (`PipelineSpec` and `PlatformSpec` as dicts).
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackwise.contract import CachePolicy, PipelineRef, RunClose
from stackwise.orchestrators.kubeflow.task import PENDING_RUN_ID
from stackwise.orchestrators.kubeflow.validation import (
    accelerator,
    cpu_quantity,
    default_value,
    k8s_name,
    kfp_type,
)

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.config import StackConfig
    from stackwise.orchestrators.kubeflow.settings import KubeflowSettings

#: KFP's retry policy takes at most an hour of backoff (pipeline_spec.proto RetryPolicy).
MAX_BACKOFF_S = 3600
#: Seconds the pod gets beyond the step's timeout before Kubernetes stops it.
TIMEOUT_GRACE_S = 30


def kfp_params(pipeline: Pipeline) -> dict[str, tuple[type, Any, bool]]:
    """The KFP parameters: name -> (type, default or `...` when required, optional), secret
    parameters left out (they come from Kubernetes secrets)."""
    from stackwise.tracking.redaction import is_secret_name

    out: dict[str, tuple[type, Any, bool]] = {}
    for name, spec in pipeline.params.items():
        kind, optional = kfp_type(spec)
        if is_secret_name(name) or kind is None:
            continue
        out[name] = (kind, ... if spec.required else default_value(spec), optional)
    return dict(sorted(out.items(), key=lambda item: item[1][1] is not ...))


def _signature(params: dict[str, tuple[type, Any, bool]]) -> inspect.Signature:
    from typing import Optional

    P = inspect.Parameter
    return inspect.Signature([
        P(name, P.POSITIONAL_OR_KEYWORD,
          annotation=Optional[kind] if optional else kind,  # noqa: UP045 (a KFP annotation)
          default=P.empty if default is ... else default)
        for name, (kind, default, optional) in params.items()
    ])  # fmt: skip


def invocations(
    pipeline: Pipeline, config: StackConfig, settings: KubeflowSettings, ref: PipelineRef
) -> tuple[dict[str, str], str]:
    """Each step's compiled invocation JSON, and the run's `RunClose` JSON."""
    from stackwise.invocations import build_invocation, tracking_target
    from stackwise.tracking.layout import PipelineRunInfo, manifest_folder

    info = PipelineRunInfo(
        pipeline=pipeline.name, version=pipeline.version, ref=str(ref), run_id=PENDING_RUN_ID,
        orchestrator="kubeflow", compute="kubeflow",
        source_folder=manifest_folder(pipeline.source_file),
    )  # fmt: skip
    tracking = tracking_target(
        config.tracking_uri_resolved, config.experiment or pipeline.name, info,
        artifact_location=config.mlflow_artifacts_resolved,
    )  # fmt: skip
    root = config.artifact_store_resolved
    cache = CachePolicy(read=settings.caching, store="artifacts")
    steps = {
        step: build_invocation(
            pipeline, step, ref=ref, run_id=PENDING_RUN_ID, params={}, artifact_root=root,
            tracking=tracking if config.tracking else None, cache=cache,
            orchestrator="kubeflow", default_compute="kubeflow",
        ).model_dump_json()
        for step in pipeline.order
    }  # fmt: skip
    close = RunClose(pipeline=ref, run_id=PENDING_RUN_ID, artifact_root=root, tracking=tracking)
    return steps, close.model_dump_json()


def build(
    pipeline: Pipeline, config: StackConfig, settings: KubeflowSettings, ref: PipelineRef
) -> Any:
    """The KFP pipeline (a `GraphComponent`) of `pipeline`, whose code is found through
    `ref` (a code bundle)."""
    from kfp import dsl

    from stackwise.orchestrators.kubeflow.component import (
        PARAM_PREFIX,
        close_component,
        step_component,
    )

    params = kfp_params(pipeline)
    steps, close = invocations(pipeline, config, settings, ref)
    base_image = settings.image or ""
    decorate = _decorator(settings)

    def body(*channels: Any) -> None:
        values = dict(zip(params, channels, strict=True))
        exit_task = close_component(base_image)(close=close,
                                                kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        exit_task.set_display_name("close stackwise run").set_caching_options(False)
        decorate(exit_task, base_image)
        tasks: dict[str, Any] = {}
        with dsl.ExitHandler(exit_task, name="stackwise-steps"):
            for step in pipeline.order:
                options = pipeline.nodes[step].definition.options
                image = options.image or base_image
                task = step_component(k8s_name(step), image, params)(
                    invocation=steps[step], kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    kfp_task=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
                    **{PARAM_PREFIX + name: values[name] for name in params},
                )  # fmt: skip
                task.set_display_name(step).set_caching_options(False)
                for upstream in pipeline.nodes[step].upstream:
                    task.after(tasks[upstream])
                _resources(task, options, settings)
                decorate(task, image)
                tasks[step] = task

    body.__signature__ = _signature(params)  # type: ignore[attr-defined]
    body.__doc__ = None
    return dsl.pipeline(
        body, name=k8s_name(pipeline.name), display_name=pipeline.name,
        description=pipeline.description or None, pipeline_root=settings.pipeline_root,
    )  # fmt: skip


def _resources(task: Any, options: Any, settings: KubeflowSettings) -> None:
    from kfp import kubernetes

    res, retries = options.resources, options.retries
    if res.cpu is not None:
        task.set_cpu_request(cpu_quantity(res.cpu)).set_cpu_limit(cpu_quantity(res.cpu))
    if res.memory is not None:
        task.set_memory_request(res.memory).set_memory_limit(res.memory)
    if res.gpu:
        kind, model = accelerator(res.gpu_type, settings)
        task.set_accelerator_type(kind).set_accelerator_limit(res.gpu)
        if model is not None:
            kubernetes.add_node_selector(task, label_key=settings.gpu_label, label_value=model)
    if retries.count:
        # KFP waits backoff * factor**(n-1) like stackwise; its cap is on the whole backoff.
        total = sum(retries.delay_before(n) for n in range(2, retries.count + 2))
        task.set_retry(
            num_retries=retries.count,
            backoff_duration=f"{min(retries.backoff_s, MAX_BACKOFF_S):g}s",
            backoff_factor=retries.factor,
            backoff_max_duration=f"{min(max(total, 1), MAX_BACKOFF_S):.0f}s",
        )
    if options.timeout_s is not None:
        kubernetes.set_timeout(task, math.ceil(options.timeout_s) + TIMEOUT_GRACE_S)


def _decorator(settings: KubeflowSettings) -> Callable[[Any, str], None]:
    """What every task gets from the stack: node selector, tolerations, secrets, image env."""
    from kfp import kubernetes

    by_secret: dict[str, dict[str, str]] = {}
    for env, ref in settings.secrets.items():
        by_secret.setdefault(ref.secret, {})[ref.key] = env

    def decorate(task: Any, image: str) -> None:
        task.set_env_variable("STACKWISE_IMAGE", image)
        for key, value in settings.node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for tol in settings.tolerations:
            kubernetes.add_toleration(
                task, key=tol.key, operator=tol.operator, value=tol.value, effect=tol.effect,
                toleration_seconds=tol.toleration_seconds,
            )  # fmt: skip
        for secret, keys in sorted(by_secret.items()):
            kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=keys)

    return decorate


def write_spec(component: Any, path: Path) -> Path:
    """Write the compiled pipeline as KFP's IR YAML (the PipelineSpec document, then the
    PlatformSpec when the pipeline uses Kubernetes features), atomically."""
    import yaml
    from google.protobuf import json_format

    documents = [json_format.MessageToDict(component.pipeline_spec)]
    if component.platform_spec.platforms:
        documents.append(json_format.MessageToDict(component.platform_spec))
    text = "# Kubeflow Pipelines IR YAML compiled by stackwise (KFP SDK).\n" + yaml.safe_dump_all(
        documents, sort_keys=True
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
