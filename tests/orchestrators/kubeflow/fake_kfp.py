"""A loopback stand-in for the few Kubeflow Pipelines v2beta1 routes `kfp.Client` calls to
submit and follow a run (no KFP server can run here). It records every request and answers
a scripted sequence of run states."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeKfp:
    def __init__(self, states: list[dict[str, Any]], status: int = 200) -> None:
        self.states = states  # each: {"state": ..., "tasks": {display_name: state}}
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.experiments: list[dict[str, Any]] = []

    def answer(self, method: str, path: str, query: dict[str, list[str]],
               body: Any) -> tuple[int, Any]:  # fmt: skip
        if self.status != 200:
            return self.status, {"error": "denied", "code": 16, "message": "denied"}
        if path == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False}
        if path == "/apis/v2beta1/experiments" and method == "GET":
            return 200, {"experiments": self.experiments, "total_size": len(self.experiments)}
        if path == "/apis/v2beta1/experiments" and method == "POST":
            experiment = {**body, "experiment_id": f"exp-{len(self.experiments) + 1}"}
            self.experiments.append(experiment)
            return 200, experiment
        if path == "/apis/v2beta1/runs" and method == "POST":
            return 200, {**body, "run_id": "3f2a-run-1", "state": "PENDING"}
        if path.startswith("/apis/v2beta1/runs/") and method == "GET":
            current = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            tasks = [{"display_name": name, "state": state,
                      "start_time": "2026-01-05T10:00:00Z", "end_time": "2026-01-05T10:00:03Z"}
                     for name, state in current["tasks"].items()]  # fmt: skip
            return 200, {"run_id": path.rsplit("/", 1)[1], "state": current["state"],
                         "run_details": {"task_details": tasks}}  # fmt: skip
        return 404, {"error": f"no route {method} {path}"}


@contextmanager
def serve(fake: FakeKfp) -> Iterator[str]:
    """Serve `fake` on a free loopback port; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def _handle(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            query = parse_qs(url.query)
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.requests.append({"method": method, "path": url.path, "query": query,
                                  "body": body, "headers": headers})  # fmt: skip
            status, payload = fake.answer(method, url.path, query, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
