"""Kubeflow Pipelines v2: a pipeline compiled to KFP's IR YAML (one lightweight component per
step that runs the step runner on an invocation carried as a JSON string), submitted and
followed with `kfp.Client`. `kfp` is imported only inside this package.

- `settings`: the stack file's `kubeflow:` section.
- `validation`: what KFP or Kubernetes would reject, each problem naming its step.
- `component`: the two component functions (run a step, close the run) KFP embeds.
- `compile`: pipeline -> KFP pipeline -> IR YAML (and the recurring-run definition).
- `task`: what runs inside a KFP task (reads the invocation, calls the runner).
- `client`: submit and poll with `kfp.Client`.
- `target`: `KubeflowTarget`, the `Target` protocol.
"""

__all__: list[str] = []
