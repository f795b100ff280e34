"""Talking to a Kubeflow Pipelines API server with `kfp.Client` (v2beta1 REST): submit a
compiled spec as a run in the stack's namespace and experiment, read a run back. Every
failure becomes a `TargetError` that says what to fix; the token, when there is one, is read
from the environment variable the stack names and never written anywhere.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackwise.errors import TargetError

if TYPE_CHECKING:
    from stackwise.orchestrators.kubeflow.settings import KubeflowSettings


@contextlib.contextmanager
def _api_errors(host: str, doing: str) -> Iterator[None]:
    """kfp_server_api and urllib3 errors as one-line TargetErrors; the client's own prints
    (links to the UI) go to stderr so that stdout stays clean for --json."""
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    except ApiException as exc:
        if exc.status in (401, 403):
            raise TargetError(
                f"Kubeflow Pipelines at {host} refused the credentials while {doing} (HTTP "
                f"{exc.status}); set kubeflow.token_env to a variable holding a valid token."
            ) from None
        body = " ".join(str(exc.body or exc.reason or "").split())[:300]
        raise TargetError(
            f"Kubeflow Pipelines at {host} rejected {doing} (HTTP {exc.status}): {body}"
        ) from None
    except (HTTPError, OSError) as exc:
        raise TargetError(
            f"cannot reach Kubeflow Pipelines at {host} while {doing} ({type(exc).__name__}); "
            "check kubeflow.host in the stack file and that the endpoint is reachable."
        ) from None


def connect(settings: KubeflowSettings) -> Any:
    """A `kfp.Client` for the stack's endpoint. Raises TargetError without a host or when
    the token variable is named but not set."""
    if not settings.host:
        raise TargetError(
            "kubeflow.host is not set: give the Kubeflow Pipelines API endpoint in the stack "
            "file to run there (`stackwise export kubeflow` needs none)."
        )
    token = None
    if settings.token_env:
        token = os.environ.get(settings.token_env)
        if not token:
            raise TargetError(
                f"kubeflow.token_env names {settings.token_env}, which is not set: export it "
                "with a token for the Kubeflow Pipelines API."
            )
    import kfp

    with _api_errors(settings.host, "connecting"):
        return kfp.Client(host=settings.host, namespace=settings.namespace or "kubeflow",
                          existing_token=token)  # fmt: skip


def submit(
    client: Any,
    settings: KubeflowSettings,
    spec: Path,
    params: dict[str, Any],
    *,
    run_name: str,
    experiment: str,
) -> str:
    """Create a run of the compiled `spec` with `params` (no secrets: they come from
    Kubernetes secrets); returns the KFP run id."""
    with _api_errors(settings.host or "", f"the run of {spec.name}"):
        result = client.create_run_from_pipeline_package(
            str(spec), arguments=params, run_name=run_name, experiment_name=experiment,
            namespace=settings.namespace, service_account=settings.service_account,
        )  # fmt: skip
    return str(result.run_id)


def get_run(client: Any, settings: KubeflowSettings, run_id: str) -> Any:
    """The KFP run (`V2beta1Run`: state, run_details.task_details)."""
    with _api_errors(settings.host or "", f"reading run {run_id}"):
        return client.get_run(run_id)
