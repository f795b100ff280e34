"""Let a tracking server's connection go once per pipeline run, so that the runs of a backfill
spread over the server's workers (or replicas behind a load balancer).

MLflow's REST client keeps one pooled HTTP connection per process (keep-alive), and a server
hands a connection to one worker for its whole life: uvicorn, `mlflow server`'s default, keeps
it on the worker that accepted it, and so does a Kubernetes Service in front of several
replicas. Two backfill worker processes whose connections landed on the same server worker
were served on one core (measured: `benchmarks/backfill.py --server`, 2026-11-30). Asking the
server to close the connection after the request that terminates a pipeline run makes the next
run open a new one, which an idle server worker accepts. Cost: one TCP (and TLS) handshake per
pipeline run.

The header rides on MLflow's public plugin interface for request headers (entry point group
`mlflow.request_header_provider`, declared in stackwise's package metadata): MLflow loads
`ReconnectAfterRun` when it first builds request headers, in any process where stackwise is
installed. It adds nothing unless stackwise armed it (`let_go_after_next_request`), and this
module imports nothing but MLflow's own base class.
"""

from __future__ import annotations

import threading

from mlflow.tracking.request_header.abstract_request_header_provider import (
    RequestHeaderProvider,
)

_armed = False
_lock = threading.Lock()


def let_go_after_next_request() -> None:
    """The next MLflow REST request this process sends asks the server to close the
    connection after its response (`Connection: close`, RFC 9112 section 9.6)."""
    global _armed
    with _lock:
        _armed = True


class ReconnectAfterRun(RequestHeaderProvider):
    """Adds `Connection: close` to one request after `let_go_after_next_request`."""

    def in_context(self) -> bool:
        return _armed

    def request_headers(self) -> dict[str, str]:
        global _armed
        with _lock:  # of two threads that saw it armed, one sends the header
            if not _armed:
                return {}
            _armed = False
        return {"Connection": "close"}
