"""A step's data in and out, for the runner: input references resolved through the artifact
store, arguments bound from inputs, parameters and constants, return values split into named
outputs, and the run index that lets any process find what a step of a pipeline run produced.

The run index is `runs/<run_id>/<step>.json` in the artifact store: the `StepResult` of the
step's successful attempt (or cache hit), written by the runner. An `InputRef` without a
concrete artifact is resolved from it, so a compiled DAG (Airflow, Kubeflow) passes only names
between tasks, never payloads.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

from stackwise.artifacts.store import ArtifactRef, ArtifactStore
from stackwise.authoring.context import DatasetRecord
from stackwise.contract import StepInvocation, StepResult
from stackwise.errors import ArtifactError, InvocationError, StackwiseError

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import StepNode
    from stackwise.authoring.step import StepDefinition

#: Serializers whose artifacts are datasets (recorded as MLflow dataset inputs when read).
DATASET_SERIALIZERS = ("parquet", "npy")


def index_rel(run_id: str, step: str) -> str:
    return f"runs/{run_id}/{step}.json"


def write_index(store: ArtifactStore, run_id: str, result: StepResult) -> None:
    store.write(index_rel(run_id, result.step), result.model_dump_json().encode())


def read_index(store: ArtifactStore, run_id: str, step: str) -> StepResult | None:
    data = store.read(index_rel(run_id, step))
    return StepResult.model_validate_json(data) if data is not None else None


def resolve_inputs(inv: StepInvocation, store: ArtifactStore) -> dict[str, ArtifactRef]:
    """Every input as a concrete artifact. Raises ArtifactError when an upstream step of the
    run has no recorded output (it did not run, or not in this artifact store)."""
    resolved: dict[str, ArtifactRef] = {}
    for name, ref in inv.inputs.items():
        if ref.artifact is not None:
            resolved[name] = ref.artifact
            continue
        run_id = ref.run_id or inv.run_id
        record = read_index(store, run_id, ref.step)
        artifact = record.outputs.get(ref.output) if record is not None else None
        if artifact is None:
            raise ArtifactError(
                f"input {name!r} of step {inv.step!r} reads output {ref.output!r} of step "
                f"{ref.step!r} in run {run_id}, but {store.url(index_rel(run_id, ref.step))} "
                "does not record it: run the upstream step first (the orchestrator must order "
                "steps by their dependencies) with the same artifact store."
            )
        resolved[name] = artifact
    return resolved


def bind(
    node: StepNode,
    inputs: dict[str, ArtifactRef],
    params: dict[str, Any],
    store: ArtifactStore,
) -> tuple[dict[str, Any], dict[str, Any], list[DatasetRecord]]:
    """The keyword arguments of the step's function, the parameters and constants among them
    (logged as the child run's params), and the datasets read (DataFrames and arrays)."""
    kwargs: dict[str, Any] = {}
    call_params: dict[str, Any] = {}
    datasets: list[DatasetRecord] = []
    for name, binding in node.bindings.items():
        if binding.kind == "output":
            ref = inputs.get(name)
            if ref is None:
                raise InvocationError(
                    f"the invocation of step {node.name!r} has no input {name!r} (output "
                    f"{binding.output!r} of step {binding.step!r}); regenerate the invocation."
                )
            kwargs[name] = store.get(ref)
            if ref.serializer in DATASET_SERIALIZERS:
                datasets.append(
                    DatasetRecord(
                        name=f"{binding.step}.{binding.output}",
                        digest=ref.digest[:16],
                        source=ref.uri,
                        source_type="stackwise-artifact",
                        context="input",
                    )
                )
        elif binding.kind == "param":
            param = binding.param or name
            if param not in params:
                raise InvocationError(
                    f"the invocation of step {node.name!r} has no value for parameter "
                    f"{param!r}; give it in params."
                )
            kwargs[name] = call_params[name] = params[param]
        else:
            kwargs[name] = call_params[name] = binding.value
    return kwargs, call_params, datasets


def split_outputs(definition: StepDefinition, value: Any) -> dict[str, Any]:
    """The step's return value as {output name: value}, checked against its annotation."""
    outputs = definition.outputs
    if not outputs:
        return {}
    if definition.multi_output:
        names = [o.name for o in outputs]
        if isinstance(value, dict) and set(value) == set(names):
            return {n: value[n] for n in names}
        if isinstance(value, tuple) and len(value) == len(names):
            return dict(zip(names, value, strict=True))
        raise StackwiseError(
            f"step {definition.name!r} must return its outputs {names} (the NamedTuple it "
            f"declares), but returned a {type(value).__name__}."
        )
    expected = outputs[0].annotation
    checkable = (
        isinstance(expected, type)
        and expected not in (object, Any)
        and typing.get_origin(expected) is None
    )
    int_for_float = expected is float and isinstance(value, int)
    if checkable and not int_for_float and not isinstance(value, expected):
        raise StackwiseError(
            f"step {definition.name!r} is annotated to return {expected.__name__} but "
            f"returned a {type(value).__name__}; fix the return value or the annotation."
        )
    return {outputs[0].name: value}
