"""A loopback stand-in for the few Kubernetes API calls the Kubernetes backend makes (no cluster
can run here): create/patch/delete a Secret, create/read/delete a Job, list a Job's pods,
read (and follow) a pod's log. Every request is recorded for the tests to inspect.

Its "kubelet" runs a created Job's container command as a local process, exactly as the
manifest gives it, with the invocation Secret's file where the pod would mount it and the
container's environment (secretKeyRef values resolved from created Secrets): the step
really runs through `python -m stackwise.runner`, and its output is the pod's log.
Imported by module name; not a test file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeKubeAPI:
    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.requests: list[tuple[str, str, Any]] = []
        self.secrets: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, bytearray] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.done: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # a followed log is chunked, as the API server sends it

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                body = self._body()
                api.requests.append((method, self.path, body))
                code, payload = api.route(method, url.path, parse_qs(url.query), body, self)
                if payload is None:
                    return  # streamed
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, fragment: str) -> list[Any]:
        return [b for m, p, b in self.requests if m == method and fragment in p]

    # -- routing ----------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any,
              handler: BaseHTTPRequestHandler) -> tuple[int, Any]:  # fmt: skip
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"] and parts[4] == "secrets":
            return self._secret(method, parts[5] if len(parts) > 5 else None, body)
        if parts[:3] == ["apis", "batch", "v1"] and parts[5] == "jobs":
            return self._job(method, parts[6] if len(parts) > 6 else None, body)
        if parts[:2] == ["api", "v1"] and parts[4] == "pods" and len(parts) == 5:
            selector = query.get("labelSelector", [""])[0]
            job = selector.removeprefix("job-name=")
            items = [p for p in self.pods.values() if p["metadata"]["labels"]["job-name"] == job]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        if parts[:2] == ["api", "v1"] and parts[4] == "pods" and parts[6] == "log":
            self._log(parts[5], query.get("follow", ["false"])[0].lower() == "true", handler)
            return 200, None
        return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound"}

    def _secret(self, method: str, name: str | None, body: Any) -> tuple[int, Any]:
        if method == "POST":
            self.secrets[body["metadata"]["name"]] = body
            return 201, body
        assert name is not None
        if method == "PATCH":
            self.secrets[name]["metadata"].update(body["metadata"])
            return 200, self.secrets[name]
        self.secrets.pop(name, None)
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def _job(self, method: str, name: str | None, body: Any) -> tuple[int, Any]:
        if method == "POST":
            body["metadata"]["uid"] = str(uuid.uuid4())
            body["status"] = {}
            self.jobs[body["metadata"]["name"]] = body
            self._start(body)
            return 201, body
        assert name is not None
        if method == "GET":
            return 200, self.jobs[name]
        proc = self.procs.get(name)  # DELETE: the pod gets SIGTERM, as Kubernetes does
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    # -- the "kubelet" ----------------------------------------------------------------------
    def _start(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        pod_spec = job["spec"]["template"]["spec"]
        (container,) = pod_spec["containers"]
        mount = container["volumeMounts"][0]["mountPath"]
        secret = self.secrets[pod_spec["volumes"][0]["secret"]["secretName"]]
        mounted = self.folder / name
        mounted.mkdir(parents=True)
        for key, text in secret["stringData"].items():
            (mounted / key).write_text(text)
        command = [str(mounted) + a.removeprefix(mount) if a.startswith(mount) else a
                   for a in container["command"]]  # fmt: skip
        env = dict(self.env)
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                env[var["name"]] = self.secrets[ref["name"]]["stringData"][ref["key"]]
        pod = f"{name}-{uuid.uuid4().hex[:5]}"
        self.pods[pod] = {
            "metadata": {"name": pod, "labels": {"job-name": name}},
            "status": {"phase": "Pending"},
        }
        self.logs[pod] = bytearray()
        self.done[pod] = threading.Event()
        proc = subprocess.Popen(command, env=env, cwd=mounted, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)  # fmt: skip
        self.procs[name] = proc
        self.pods[pod]["status"]["phase"] = "Running"
        job["status"] = {"active": 1}

        def run() -> None:
            assert proc.stdout is not None
            for chunk in iter(lambda: proc.stdout.read1(4096), b""):  # type: ignore[union-attr]
                with self.lock:
                    self.logs[pod] += chunk
            code = proc.wait()
            self.pods[pod]["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
            condition = "Complete" if code == 0 else "Failed"
            job["status"] = {
                "succeeded" if code == 0 else "failed": 1,
                "conditions": [{"type": condition, "status": "True",
                                "reason": "BackoffLimitExceeded" if code else "Completed"}],
            }  # fmt: skip
            self.done[pod].set()

        threading.Thread(target=run, daemon=True).start()

    def _log(self, pod: str, follow: bool, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        sent = 0
        while True:
            finished = self.done[pod].is_set()
            with self.lock:
                data = bytes(self.logs[pod][sent:])
            if data:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                handler.wfile.flush()
                sent += len(data)
            if finished or not follow:
                handler.wfile.write(b"0\r\n\r\n")
                handler.wfile.flush()
                return
            self.done[pod].wait(0.05)


def process_env(extra_path: Path) -> dict[str, str]:
    """The environment of a "pod": this one, with the project's module importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return env
