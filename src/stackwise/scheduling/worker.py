"""A backfill's worker process (started by stackwise.scheduling.workers as
`python -c ... FD`): it reads one `WorkerSpec` from its socket, opens its own orchestrator and
stores, then runs the intervals its parent sends one at a time, claiming each through the
interval ledger, and sends back each outcome. Ctrl-C is the parent's to handle; SIGTERM, a
"cancel" order or the parent's death cancels the running interval (recorded KILLED,
resumable) and ends the worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from stackwise.scheduling.workers import ORPHAN_EXIT_S, WorkerSpec, guarded

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from stackwise.interval import Interval
    from stackwise.scheduling.backfill import Backfill


def main(fd: int) -> None:
    """`python -c _ENTRY FD`: a worker talking to its parent over the socket FD."""
    from multiprocessing.connection import Connection

    os.set_inheritable(fd, False)  # a program a step starts must not keep the socket open
    worker_main(Connection(fd))


class _Stopped(Exception):
    """SIGTERM in a worker's main thread: stop reading orders (a running interval is
    cancelled and recorded first)."""


def worker_main(conn: Connection) -> None:
    """A worker process: read the spec, open the stores, then run intervals until told to
    stop. Ctrl-C is the parent's to handle (it reaches the whole process group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cancel = threading.Event()

    def on_term(_signum: int, _frame: object) -> None:
        cancel.set()
        raise _Stopped

    signal.signal(signal.SIGTERM, on_term)
    os.dup2(2, 1)  # stdout is the parent's (`--json` prints one document there)
    runner: threading.Thread | None = None
    try:
        try:
            _kind, spec = conn.recv()
            job = _open(spec)
        except (_Stopped, EOFError, OSError):
            return
        except Exception as exc:
            with contextlib.suppress(OSError):  # the parent is gone already: nobody to tell
                conn.send(("failed", f"{type(exc).__name__}: {exc}".splitlines()[0]))
            return
        try:
            conn.send(("ready", os.getpid()))
        except OSError:
            return
        while True:
            try:
                kind, body = conn.recv()
            except (EOFError, OSError):  # the parent is gone: stop like Ctrl-C would
                cancel.set()
                timer = threading.Timer(ORPHAN_EXIT_S, os._exit, (1,))
                timer.daemon = True
                timer.start()
                break
            if kind == "run":
                runner = threading.Thread(target=_run_one, args=(job, conn, body, cancel))
                runner.start()
            elif kind == "cancel":
                cancel.set()
            else:
                break
    except _Stopped:
        pass
    if runner is not None:
        with contextlib.suppress(_Stopped):
            runner.join()


def _open(spec: WorkerSpec) -> Backfill:
    from stackwise.authoring.loader import load_pipeline
    from stackwise.config import StackConfig
    from stackwise.errors import ScheduleError
    from stackwise.orchestrators.local import LocalOrchestrator
    from stackwise.scheduling.backfill import Backfill

    sys.path[:] = [*spec.sys_path, *(p for p in sys.path if p not in spec.sys_path)]
    stack = StackConfig(**spec.config, base_dir=Path(spec.base_dir), source=spec.source)
    orchestrator = LocalOrchestrator(stack)
    pipeline = load_pipeline(spec.pipeline_ref)
    if (pipeline.name, pipeline.version) != (spec.pipeline_name, spec.pipeline_version):
        raise ScheduleError(
            f"{spec.pipeline_ref} loaded here is pipeline {pipeline.name!r} version "
            f"{pipeline.version}, not {spec.pipeline_name!r} {spec.pipeline_version}"
        )
    orchestrator.preflight(pipeline, spec.params)  # opens the stores before the first claim
    job = Backfill(
        orchestrator, pipeline, spec.params, [], reprocess=spec.reprocess,
        backfill_id=spec.backfill_id,
    )  # fmt: skip
    job.max_active_runs = spec.max_active_runs
    return job


def _run_one(
    job: Backfill, conn: Connection, body: Interval | dict[str, str], cancel: threading.Event
) -> None:
    from stackwise.interval import Interval

    interval = body if isinstance(body, Interval) else Interval.from_dict(body)
    outcome = guarded(job, interval, cancel)
    with contextlib.suppress(OSError, ValueError):
        conn.send(("outcome", outcome.to_dict() if outcome is not None else None))
