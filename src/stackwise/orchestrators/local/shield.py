"""Closing records must finish even when the user presses Ctrl-C again.

After the first Ctrl-C or SIGTERM the orchestrator stops the running steps and closes the
state record and the MLflow runs. A second signal arriving in the middle of that used to
abort it, leaving a step RUNNING in a KILLED run or an MLflow parent RUNNING forever. While
`shielded()` is active, SIGINT and SIGTERM are noted and dropped (the shutdown they ask for is
already under way); it is only used around bounded work (at most the stop grace plus a few
database writes).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def shielded() -> Iterator[list[int]]:
    """Defer SIGINT/SIGTERM in the main thread for the duration of the block (elsewhere:
    nothing to do, signals are only delivered to the main thread). Yields the signals seen."""
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def note(signum: int, _frame: Any) -> None:
        seen.append(signum)

    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, note)
    try:
        yield seen
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
