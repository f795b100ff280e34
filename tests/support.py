"""Helpers shared by test folders (imported as `tests.support`; not a test file)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stackwise.processes import pid_alive

__all__ = [
    "WAIT_S",
    "children_of",
    "path_of",
    "pid_alive",
    "stackwise_cmd",
    "start_together",
    "wait_until",
]

#: Generous bound for anything that waits on a subprocess or a run.
WAIT_S = 60.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def stackwise_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "stackwise", *args]


def children_of(runs: list[Any], parent_run_id: str) -> list[Any]:
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_run_id]


def path_of(uri: str) -> Path:
    """The file behind a local artifact's URL (artifact locations are `file://` URLs)."""
    from stackwise.artifacts.store import local_path

    path = local_path(uri)
    assert path is not None and uri.startswith("file:///"), uri
    return path


def start_together(
    cwd: Path, *commands: list[str], timeout: float = 180.0
) -> list[tuple[int, str, str]]:
    """Start every command at the same moment; each one's exit code, stdout and stderr."""
    import subprocess

    procs = [
        subprocess.Popen(c, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        results.append((proc.returncode, out, err))
    return results
