"""What `resume` must settle before it reruns anything: the secret parameters (never stored,
so given again), earlier attempts still running in step processes (waited for, never run
twice at once), steps whose code changed since they succeeded (rerun with their downstream
steps, so that a run never mixes code versions), and outputs of a project that moved."""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

from stackwise.artifacts.store import ArtifactRef, ArtifactStore
from stackwise.errors import ParameterError, StateStoreError
from stackwise.orchestrators.base import RunRecord
from stackwise.tracking.redaction import is_secret_name

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.config import StackConfig
    from stackwise.orchestrators.local.state import StateStore

#: How long a resume waits for a step process of the dead run to notice and exit.
WORKER_EXIT_WAIT_S = 10.0
ENV_PREFIX = "STACKWISE_PARAM_"


def secrets_from_env(pipeline: Pipeline) -> dict[str, str]:
    """Secret-named parameters given as STACKWISE_PARAM_<NAME> (so they need not appear on a
    command line, where `ps` and shell history see them)."""
    return {
        name: os.environ[ENV_PREFIX + name.upper()]
        for name in pipeline.params
        if is_secret_name(name) and ENV_PREFIX + name.upper() in os.environ
    }


def check_resume_params(given: dict[str, Any]) -> None:
    """A resume reruns with the run's own parameters: only secrets may be given again."""
    not_secret = [k for k in given if not is_secret_name(k)]
    if not_secret:
        raise ParameterError(
            f"resume reruns with the run's own parameters; -p {not_secret[0]}=... can only give "
            "again a secret parameter (never stored). Start a new run to change parameters."
        )


def secret_defaults(pipeline: Pipeline, overrides: dict[str, Any]) -> list[str]:
    """The secret-named parameters a run takes from their defaults (a resume restores those)."""
    return [n for n in pipeline.params if is_secret_name(n) and n not in overrides]


def restore_params(run: RunRecord, pipeline: Pipeline, given: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters with the secret ones given again: from `given` (`-p`), else from
    the environment variable STACKWISE_PARAM_<NAME>, else the default when the run used it.
    Which source was used is recorded in `run.options["secret_sources"]`.

    Raises ParameterError when a secret is missing, or `given` names a parameter that is not
    secret (a resume reruns with the run's own parameters)."""
    check_resume_params(given)
    values = dict(run.params)
    sources: dict[str, str] = {}
    defaults = set(run.options.get("secret_defaults") or [])
    for name in [k for k in run.params if is_secret_name(k)]:
        spec = pipeline.params.get(name)
        env = os.environ.get(ENV_PREFIX + name.upper())
        if name in given:
            raw, sources[name] = given[name], "-p"
        elif env is not None:
            raw, sources[name] = env, f"${ENV_PREFIX}{name.upper()}"
        elif name in defaults and spec is not None and not spec.required:
            raw, sources[name] = spec.default, "default"
        else:
            raise ParameterError(
                f"run {run.run_id} has the secret parameter {name!r}, which stackwise never "
                f"stores; give it again: stackwise resume {run.run_id} -p {name}=VALUE (or set "
                f"{ENV_PREFIX}{name.upper()})."
            )
        values[name] = pipeline.resolve_params({name: raw})[name] if spec else raw
    run.options["secret_sources"] = sources
    return values


def wait_for_workers(run: RunRecord) -> None:
    """Never start an attempt while an earlier attempt of the same step still runs: wait for
    step processes of the dead run (they stop themselves when their orchestrator dies), and
    kill one that does not stop in time."""
    from stackwise.processes import ProcessIdentity

    alive = []
    for record in run.steps.values():
        ident = ProcessIdentity.parse(record.worker) if record.worker else None
        if ident is not None and record.status not in ("SUCCEEDED", "SKIPPED") and ident.alive():
            alive.append((record.name, ident))
    deadline = time.monotonic() + WORKER_EXIT_WAIT_S
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [(n, i) for n, i in alive if i.alive()]
    for _name, ident in alive:
        if ident.host == _hostname():
            os.kill(ident.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [(n, i) for n, i in alive if i.alive()]
    if alive:
        names = ", ".join(f"{n} (pid {i.pid} on {i.host})" for n, i in alive)
        raise StateStoreError(
            f"earlier attempts of run {run.run_id} still run: {names}; stop them, then resume."
        )


def reset_steps(
    run: RunRecord, pipeline: Pipeline, state: StateStore, stack: StackConfig
) -> list[str]:
    """Mark PENDING every step that must run again: not succeeded, outputs gone, or code
    changed since it succeeded (and everything downstream of a changed step). Returns the
    steps whose code changed."""
    from stackwise.orchestrators.local.executor import step_version

    store = ArtifactStore(run.artifact_root)
    changed = []
    for name in pipeline.order:
        record = run.steps[name]
        if record.status != "SUCCEEDED":
            continue
        if record.code_version is None:  # recorded by stackwise 0.1: compare the whole run
            if run.pipeline_version != pipeline.version:
                changed.append(name)
        elif record.code_version != step_version(pipeline, name):
            changed.append(name)
    rerun = set(changed)
    for name in changed:
        rerun |= pipeline.downstream(name)
    for record in run.steps.values():
        record.outputs = {k: _rebase(ref, store) for k, ref in record.outputs.items()}
        keep = (
            record.status == "SUCCEEDED"
            and record.name not in rerun
            and all(store.exists(ref) for ref in record.outputs.values())
        )
        if keep:
            continue
        record.status, record.error, record.cached, record.outputs = "PENDING", None, False, {}
        record.worker = None
        state.update_step(run.run_id, record.name, status="PENDING", error=None, cached=False,
                          outputs={}, worker=None)  # fmt: skip
    return changed


def _rebase(ref: ArtifactRef, store: ArtifactStore) -> ArtifactRef:
    """An output recorded under a folder that moved, found again in this artifact store."""
    if store.exists(ref):
        return ref
    rel = f"{ref.digest[:2]}/{ref.digest}/{ref.uri.rsplit('/', 1)[-1]}"
    if store.exists_at(rel):
        return ref.model_copy(update={"uri": store.url(rel)})
    return ref


def _hostname() -> str:
    import socket

    return socket.gethostname()
