"""`compute: ray`: each step attempt a Ray task (or, with `workers=N`, N gang-scheduled Ray
actors in a placement group), on a Ray cluster or a local Ray this process starts.

`backend.py` is the `ComputeBackend`; `settings.py` the `ray:` section of the stack file;
`feasibility.py` compares what a step asks for with what the cluster has (Ray itself leaves an
impossible request pending forever); `worker.py` is what runs inside the Ray workers;
`gang.py` drives a distributed step. Ray is imported only by `backend.py`, when asked for.
"""

__all__: list[str] = []
