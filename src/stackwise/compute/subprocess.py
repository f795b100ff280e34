"""Each step attempt runs in a fresh Python process through `python -m stackwise.runner`:
the same entrypoint that Airflow tasks, KFP components and Kubernetes Jobs use. Slower to
start than a thread (the process imports the pipeline and MLflow), but a timeout or Ctrl-C
can always stop it, and it proves that nothing but the invocation crosses the boundary.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stackwise.errors import StepTimeoutError
from stackwise.runner import StepInvocation, StepResult

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline

#: Less than the orchestrator's stop grace, so a stuck process is killed before it is abandoned.
_GRACE_S = 3.0


class _ProcessHandle:
    def __init__(self, proc: subprocess.Popen[bytes], result_file: Path, log_file: Path) -> None:
        self.proc = proc
        self.result_file = result_file
        self.log_file = log_file
        self._result: StepResult | None = None

    def done(self) -> bool:
        return self._result is not None

    def result(self) -> StepResult:
        assert self._result is not None, "result() before done()"
        return self._result

    @property
    def mlflow_run_id(self) -> str | None:
        return None  # reported in the result; a killed process's run is closed by the sweep

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


class SubprocessBackend:
    name = "subprocess"

    def validate(self, pipeline: Pipeline, steps: list[str]) -> list[str]:
        from stackwise.compute.local import LocalBackend

        return LocalBackend().validate(pipeline, steps)

    def submit(
        self, invocation: StepInvocation, on_done: Callable[[_ProcessHandle], None]
    ) -> _ProcessHandle:
        workdir = Path(tempfile.mkdtemp(prefix=f"stackwise-{invocation.step}-"))
        inv_file, result_file, log_file = (
            workdir / "invocation.json",
            workdir / "result.json",
            workdir / "step.log",
        )
        inv_file.write_text(invocation.model_dump_json())
        env = dict(os.environ)
        env.pop("MLFLOW_RUN_ID", None)
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stackwise.runner",
                    "--invocation",
                    str(inv_file),
                    "--result",
                    str(result_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches it through the orchestrator, once
            )
        handle = _ProcessHandle(proc, result_file, log_file)

        def watch() -> None:
            code = proc.wait()
            if result_file.exists():
                handle._result = StepResult.model_validate_json(result_file.read_text())
            else:
                tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                handle._result = StepResult(
                    step=invocation.step,
                    status="FAILED",
                    error=f"step process exited with code {code} and no result:\n{tail}",
                    error_type="ProcessExit",
                )
            shutil.rmtree(workdir, ignore_errors=True)
            on_done(handle)

        threading.Thread(target=watch, daemon=True).start()
        return handle
