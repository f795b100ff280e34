"""Stopping a step that runs: a timeout or Ctrl-C raised inside the step's own thread.

The exception is injected (CPython's `PyThreadState_SetAsyncExc`) only while user code runs,
never inside the runner's bookkeeping. It is a BaseException, like KeyboardInterrupt, so that a
step's own `except Exception:` cannot swallow its timeout or cancellation; a step blocked in
native code sees it when that call returns.
"""

from __future__ import annotations

import ctypes
import threading

from stackwise.errors import StepCancelledError, StepTimeoutError


class Interrupt(BaseException):
    """Injected into a running step. A BaseException, like KeyboardInterrupt, so that a
    step's own `except Exception:` cannot swallow its timeout or cancellation."""


class TimeoutInterrupt(Interrupt):
    pass


class CancelInterrupt(Interrupt):
    pass


def interrupt_for(reason: type[BaseException]) -> type[Interrupt]:
    return TimeoutInterrupt if issubclass(reason, StepTimeoutError) else CancelInterrupt


class CancelToken:
    """Lets another thread stop a step running in this process. The exception is injected
    only while user code runs, never inside the runner's own bookkeeping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self.requested: type[BaseException] | None = None
        #: The attempt's MLflow run, known as soon as it exists, so that an attempt abandoned
        #: mid-way still links to its run.
        self.mlflow_run_id: str | None = None

    def enter(self) -> None:
        with self._lock:
            if self.requested is not None:
                raise interrupt_for(self.requested)()
            self._thread_id = threading.get_ident()

    @property
    def in_user_code(self) -> bool:
        return self._thread_id is not None

    def leave(self) -> None:
        with self._lock:
            self._thread_id = None

    def cancel(self, exc_type: type[BaseException] = StepCancelledError) -> None:
        with self._lock:
            if self.requested is not None:
                return
            self.requested = exc_type
            if self._thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread_id), ctypes.py_object(interrupt_for(exc_type))
                )
