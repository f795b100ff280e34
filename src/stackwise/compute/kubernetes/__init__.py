"""`compute: kubernetes`: each step attempt a Kubernetes Job running `python -m
stackwise.runner` on its invocation.

`settings.py` is the `kubernetes:` section of the stack file; `manifests.py` builds the Job
(and the Secret that carries the invocation) from data with the official client's models;
`backend.py` submits them, follows the pod and its log, reads the result, and deletes the Job
on cancellation. The `kubernetes` package is imported only there, when asked for.
"""

__all__: list[str] = []
