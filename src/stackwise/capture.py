"""What a step prints: captured per step attempt, even with several steps running in threads
of one process, and passed on to this process's stderr (stdout stays clean for `--json`).

`sys.stdout` and `sys.stderr` are wrapped once by a router that sends each write to the buffer
of the step running in the writing thread's context (a context variable), and to the original
stderr with the run's secrets masked. Writes from threads a step starts itself are not
captured (threads start with an empty context); they reach the process's streams as before.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

#: At most this much of one attempt's output is kept (the end of it).
MAX_CAPTURE_CHARS = 1_000_000

_buffer: contextvars.ContextVar[_Buffer | None] = contextvars.ContextVar(
    "stackwise_capture", default=None
)
_install_lock = threading.Lock()


class _Buffer:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        while self.size > MAX_CAPTURE_CHARS and len(self.parts) > 1:
            first = self.parts.pop(0)
            self.size -= len(first)
            self.dropped += len(first)

    def text(self) -> str:
        body = "".join(self.parts)
        if self.dropped:
            return f"[... {self.dropped} earlier characters dropped ...]\n" + body
        return body


class _Router(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr; behaves as the stream it wraps otherwise."""

    def __init__(self, wrapped: TextIO, echo: TextIO) -> None:
        self.wrapped = wrapped
        self.echo = echo

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        if buffer is None:
            return self.wrapped.write(text)
        buffer.add(text)
        from stackwise.tracking.redaction import redact_text

        self.echo.write(redact_text(text, buffer.secrets))
        return len(text)

    def flush(self) -> None:
        self.wrapped.flush()
        if self.echo is not self.wrapped:
            self.echo.flush()

    def isatty(self) -> bool:
        return self.wrapped.isatty()

    def fileno(self) -> int:
        return self.wrapped.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.wrapped, "encoding", "utf-8"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def _install() -> None:
    with _install_lock:
        err = sys.stderr
        echo = err.echo if isinstance(err, _Router) else err
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, echo)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, echo)


@contextlib.contextmanager
def capture(secrets: list[str] | None = None) -> Iterator[_Buffer]:
    """Capture what the code in this block prints (in this thread's context); the echo on
    stderr has `secrets` masked (the captured text is masked where it is recorded)."""
    _install()
    buffer = _Buffer(secrets or [])
    token = _buffer.set(buffer)
    try:
        yield buffer
    finally:
        _buffer.reset(token)
