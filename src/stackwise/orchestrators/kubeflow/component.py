"""The two component functions every compiled pipeline uses, and the per-step components
made from them.

KFP embeds a lightweight component's function source in the spec, so these functions hold no
data: the step's invocation travels as a JSON string input (`invocation`), the pipeline's
parameters as typed inputs `param_<name>` (read from the task's executor input, see
`stackwise.orchestrators.kubeflow.task`), and the run's identity as KFP placeholders resolved
at run time (`{{$.pipeline_job_uuid}}`, `{{$.pipeline_task_name}}`). Lightweight components
are what `kfp.local.SubprocessRunner` runs, so the same spec runs there and on a cluster; the
image must hold stackwise and `kfp` (`install_kfp_package=False`: nothing installed at run
time).

No `from __future__ import annotations` here: KFP reads these annotations as types.
"""

import dataclasses
from typing import Any

from kfp import dsl
from kfp.dsl import python_component, structures

#: The input names of the step component besides the parameters.
STEP_INPUTS = ("invocation", "kfp_run_id", "kfp_task")
PARAM_PREFIX = "param_"
_KFP_TYPES = {bool: "Boolean", int: "Integer", float: "Float", str: "String", list: "List",
              dict: "Dict"}  # fmt: skip


def stackwise_step(invocation: str, kfp_run_id: str, kfp_task: str) -> None:
    """Run one step of a stackwise pipeline (stackwise.orchestrators.kubeflow.task)."""
    from stackwise.orchestrators.kubeflow.task import run_task

    run_task(invocation, kfp_run_id, kfp_task)


def stackwise_close_run(
    close: str, kfp_run_id: str, final_status: dsl.PipelineTaskFinalStatus
) -> None:
    """Close the stackwise pipeline run in MLflow, whatever happened to its steps."""
    from stackwise.orchestrators.kubeflow.task import close_task

    close_task(close, kfp_run_id, final_status.state)


def step_component(
    name: str, image: str, params: dict[str, tuple[type, Any, bool]]
) -> python_component.PythonComponent:
    """The component of one step: `stackwise_step` named `name` (the task's name in KFP), in
    `image`, with one typed input per pipeline parameter: `params` maps a name to (type,
    default, optional); a default of `...` makes the parameter required."""
    base = dsl.component(stackwise_step, base_image=image, install_kfp_package=False)
    inputs = dict(base.component_spec.inputs or {})
    for param, (kind, default, optional) in params.items():
        spec = structures.InputSpec(type=_KFP_TYPES[kind])
        if default is not ...:
            spec = structures.InputSpec(type=_KFP_TYPES[kind], default=default, optional=True)
        elif optional:
            spec = structures.InputSpec(type=_KFP_TYPES[kind], optional=True)
        inputs[PARAM_PREFIX + param] = spec
    component_spec = dataclasses.replace(base.component_spec, name=name, inputs=inputs)
    return python_component.PythonComponent(component_spec=component_spec,
                                            python_func=stackwise_step)  # fmt: skip


def close_component(image: str) -> python_component.PythonComponent:
    return dsl.component(stackwise_close_run, base_image=image, install_kfp_package=False)
