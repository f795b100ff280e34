"""Each step attempt runs in a fresh Python process through `python -m stackwise.runner`: the
same entrypoint that Airflow tasks, KFP components and Kubernetes Jobs use. Slower to start
than a thread (the process imports the pipeline and MLflow), but a timeout or Ctrl-C can
always stop it, and it proves that nothing but the invocation crosses the boundary.

The invocation goes in on standard input (no file holds a secret parameter); the process's
output is kept in `.stackwise/logs/<run id>/<step>-attempt<N>.log`. The process dies with its
orchestrator (see `stackwise.supervision`), even when the orchestrator is SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackwise.compute.base import HandleStatus, StepHandle
from stackwise.compute.local import LocalBackend
from stackwise.contract import StepInvocation, StepResult
from stackwise.errors import StepTimeoutError
from stackwise.supervision import ENV as PARENT_FD_ENV
from stackwise.supervision import parent_pipe

if TYPE_CHECKING:
    from stackwise.authoring.step import Resources

#: Less than the orchestrator's stop grace, so a stuck process is killed before it is abandoned.
_GRACE_S = 3.0


class _ProcessHandle:
    def __init__(self, proc: subprocess.Popen[bytes], log_file: Path, result_file: Path) -> None:
        self.proc = proc
        self.log_file = log_file
        self.result_file = result_file
        self.running_since: float | None = time.monotonic()
        self._result: StepResult | None = None

    def status(self) -> HandleStatus:
        return "DONE" if self._result is not None else "RUNNING"

    def result(self) -> StepResult:
        assert self._result is not None, "result() before DONE"
        return self._result

    def logs(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def mlflow_run_id(self) -> str | None:
        return None  # reported in the result; a killed process's run is closed by the sweep

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cancel(self, reason: type[BaseException]) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGUSR1 if reason is StepTimeoutError else signal.SIGTERM)

        def escalate() -> None:
            try:
                self.proc.wait(_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()

        threading.Thread(target=escalate, daemon=True).start()


def _mask_log(log_file: Path, invocation: StepInvocation) -> None:
    """The kept log holds what the process printed, with the run's secrets masked."""
    from stackwise.tracking.redaction import redact_text, secrets_for_run

    try:
        text = log_file.read_text(errors="replace")
        masked = redact_text(text, secrets_for_run(invocation.params))
        if masked != text:
            log_file.write_text(masked)
    except OSError:
        pass


class SubprocessBackend(LocalBackend):
    """This machine, as the local backend (same `validate`), one process per attempt."""

    name = "subprocess"

    def __init__(self, stack: Any = None) -> None:
        super().__init__(stack)
        base = Path(stack.base_dir) if stack is not None else Path.cwd()
        self.log_root = base / ".stackwise" / "logs"

    def submit(
        self,
        invocation: StepInvocation,
        *,
        resources: Resources,
        image: str | None,
        on_done: Callable[[StepHandle], None],
    ) -> StepHandle:
        log_dir = self.log_root / invocation.run_id
        log_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{invocation.step}-attempt{invocation.attempt}"
        log_file = log_dir / f"{stem}.log"
        result_file = log_dir / f".{stem}.result.json"  # beside the log: no leftovers in /tmp
        result_file.unlink(missing_ok=True)
        read_fd, write_fd = parent_pipe()
        env = dict(os.environ)
        env.pop("MLFLOW_RUN_ID", None)
        env[PARENT_FD_ENV] = str(read_fd)
        cmd = [sys.executable, "-m", "stackwise.runner", "--invocation", "-",
               "--result", str(result_file)]  # fmt: skip
        with open(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env,
                pass_fds=(read_fd,),
                start_new_session=True,  # Ctrl-C reaches it through the orchestrator, once
            )  # fmt: skip
        os.close(read_fd)
        handle = _ProcessHandle(proc, log_file, result_file)
        assert proc.stdin is not None
        try:
            proc.stdin.write(invocation.model_dump_json().encode())
            proc.stdin.close()
        except OSError:  # it died at once: the watcher reports its exit code and log
            pass

        def watch() -> None:
            code = proc.wait()
            os.close(write_fd)
            _mask_log(log_file, invocation)
            try:
                text = result_file.read_text()
            except OSError:
                text = ""
            result_file.unlink(missing_ok=True)
            if text:
                handle._result = StepResult.model_validate_json(text)
            else:
                tail = handle.logs()[-2000:]
                handle._result = StepResult(
                    step=invocation.step,
                    status="FAILED",
                    attempt=invocation.attempt,
                    error=f"step process exited with code {code} and no result "
                    f"(log: {log_file}):\n{tail}",
                    error_type="ProcessExit",
                )
            on_done(handle)

        threading.Thread(target=watch, daemon=True).start()
        return handle
