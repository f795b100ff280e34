"""A tracking server's connection is let go once per pipeline run, so that the runs of a
backfill spread over the server's workers (uvicorn keeps a connection on one worker). Checked
against a real `mlflow server` through a TCP relay that counts the connections it accepts."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from mlflow.tracking.request_header.registry import resolve_request_headers

import stackwise
from stackwise.config import StackConfig
from stackwise.orchestrators.local import LocalOrchestrator
from stackwise.tracking.reconnect import let_go_after_next_request

PIPE = """
    from stackwise import pipeline, step

    @step
    def one() -> int:
        return 1

    @step
    def two(x: int) -> int:
        return x + 1

    @pipeline
    def pipe():
        two(one())
"""


class Relay:
    """Forwards TCP connections from a local port to `target`, counting them."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relay(mlflow_pg_server: str) -> Iterator[Relay]:
    parts = urlsplit(mlflow_pg_server)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 80))
    yield relay
    relay.listener.close()


def test_the_header_goes_out_once_per_arming() -> None:
    """Through MLflow's own header resolution (the entry point in stackwise's metadata)."""
    assert "Connection" not in resolve_request_headers()
    let_go_after_next_request()
    assert resolve_request_headers()["Connection"] == "close"
    assert "Connection" not in resolve_request_headers()


@pytest.mark.slow
def test_each_pipeline_run_opens_its_own_server_connection(
    project: Path, write_pipeline: Callable[..., str], relay: Relay
) -> None:
    uri = f"http://127.0.0.1:{relay.port}"
    stack = StackConfig(base_dir=project, tracking_uri=uri, experiment=f"rc-{uuid.uuid4().hex}")
    orchestrator = LocalOrchestrator(stack)
    pipeline = stackwise.load_pipeline(write_pipeline(PIPE))
    first = orchestrator.run(pipeline)
    after_first = relay.accepted
    second = orchestrator.run(pipeline)

    assert (first.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    # The second run's requests did not reuse the first run's connection: one more was made.
    assert relay.accepted == after_first + 1
    assert "Connection" not in resolve_request_headers()  # the arming was used up


def test_the_plugin_module_imports_nothing_else_of_stackwise() -> None:
    """MLflow imports it in any process where stackwise is installed: it must stay small."""
    code = (
        "import sys, stackwise.tracking.reconnect; "
        "print(sorted(m for m in sys.modules if m.startswith('stackwise')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(
        ["stackwise", "stackwise.tracking", "stackwise.tracking.reconnect"]
    )
