"""A step process dies with its orchestrator.

A step started in a fresh process (`compute: subprocess`) runs in its own session, so that one
Ctrl-C reaches it only through the orchestrator. When the orchestrator itself is SIGKILLed,
nothing would stop the step, and a `resume` could start the same step again while the orphan
still runs. So the orchestrator hands each step process the read end of a pipe
(`STACKWISE_PARENT_FD`) and keeps the write end open; when the orchestrator dies, for whatever
reason, the kernel closes it, the read returns, and the step process cancels its step (the
MLflow run closes as KILLED) and is gone within `GRACE_S` seconds.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

ENV = "STACKWISE_PARENT_FD"
#: After the parent is gone, how long the step may take to record itself before it is killed.
GRACE_S = 3.0


def parent_pipe() -> tuple[int, int]:
    """A pipe for one child: (read end to pass to the child, write end the parent keeps)."""
    read_fd, write_fd = os.pipe()
    return read_fd, write_fd


def watch_parent(token: Any) -> None:
    """In a step process: stop the step when the orchestrator that started it goes away."""
    value = os.environ.pop(ENV, None)
    if not value or not value.isdigit():
        return
    fd = int(value)

    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        # The orchestrator is gone: cancel the step like Ctrl-C would, then make sure.
        token.requested = token.requested or _cancel_type()
        os.kill(os.getpid(), signal.SIGTERM)
        timer = threading.Timer(GRACE_S, lambda: os.kill(os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()

    threading.Thread(target=watch, name="stackwise-parent-watch", daemon=True).start()


def _cancel_type() -> type[BaseException]:
    from stackwise.errors import StepCancelledError

    return StepCancelledError
