"""Running a backfill's intervals at once: on threads of this process, or on worker processes.

An interval's work is mostly CPU-bound Python (MLflow's ORM, stackwise), so threads of one
process take turns on the GIL and `--parallel 2` is no faster than 1. When the pipeline can be
loaded by reference, `dispatch` starts N-1 worker processes, at most one fewer than the cores
(fresh interpreters running `stackwise.scheduling.worker`: nothing forked from a threaded
process, nothing of the caller's `__main__` imported again). Each receives one plain
description (`WorkerSpec`: the stack config, the pipeline reference, the parameters, secrets
included) over its socket, never in argv, the environment or a file; it opens its own
orchestrator and stores, then runs the intervals the parent hands it one at a time, claiming
each through the interval ledger like any other process would. The ledger rows therefore name
the worker, which is what makes an interval of a killed worker resumable.

The parent runs one interval at a time itself, on a thread, plus, while the workers start
(importing MLflow takes a second or two), as many as no worker is up for yet, so a short
backfill is not slower for them; a worker that cannot start leaves its share to threads of the
parent. Outcomes reach `on_outcome` as they come. Cancel (or Ctrl-C) is passed to the workers
over their sockets: running intervals end KILLED and resumable; a worker whose parent dies
cancels its interval the same way and exits.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stackwise.interval import Interval
from stackwise.scheduling.ledger import key

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from stackwise.scheduling.backfill import Backfill, IntervalOutcome
    from stackwise.scheduling.ledger import Reprocess

#: After cancel, how long running intervals get to stop and be recorded before their workers
#: are killed (a step stuck in C code ignores the cancel; its run is closed by the next start).
DRAIN_S = 60.0
#: Fewest intervals to run for which `--workers auto` starts worker processes: below it, a
#: worker's start (importing MLflow, opening the stores: ~4 s of CPU here) costs more than the
#: intervals it would take over.
PROCESS_MIN_INTERVALS = 50
#: A worker process found dead whose socket has not read as closed after this long (a process
#: its step forked still holds the socket) counts as gone.
EXIT_GRACE_S = 5.0
#: A worker whose parent is gone exits within this even if its interval does not stop.
ORPHAN_EXIT_S = 30.0
#: At the end of a backfill, how long the workers get, all together, to stop when told, then
#: to end after SIGTERM, before they are killed.
STOP_S, TERM_S = 10.0, 5.0

Event = tuple[str, "_Worker | None", str | None, Any]  # kind, worker (None: a thread), key, body


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """All a worker process needs, as plain data; it makes its own clients from it."""

    config: dict[str, Any]
    base_dir: str
    source: str | None
    pipeline_ref: str
    pipeline_name: str
    pipeline_version: str
    params: dict[str, Any]
    reprocess: Reprocess
    backfill_id: str
    max_active_runs: int | None
    sys_path: list[str]


def worker_count(job: Backfill) -> int:
    """How many worker processes `job` should use: --parallel minus one, as this process runs
    one interval at a time itself (it has imported and warmed up everything already; a worker
    costs a second or two of CPU to start), and at most one fewer than the cores this process
    may use (at least one): a worker beyond that only takes CPU from the others, and its start
    costs more than it brings (measured: a 30-interval `--parallel 4` backfill on 2 cores took
    18 s with 3 workers, 7 s on threads). The slots above the workers run on threads here.
    0 (threads) for --parallel 1, for a pipeline without a reference a fresh process could
    load, or when fewer than `PROCESS_MIN_INTERVALS` intervals need running (a worker's start
    would not pay for itself: a 30-interval `--parallel 4` backfill took 12.4 s with one worker
    against 10.1 s for `--parallel 1`). `job.processes=True` (`--workers processes`) asks for
    --parallel workers and no interval run here, whatever the count."""
    if job.processes is False or job.pipeline.ref is None:
        return 0
    if job.processes:
        return job.parallel
    if job.parallel < 2:
        return 0
    todo = sum(1 for p in job.plan() if p.decision.action != "skip" or p.decision.busy)
    if todo < PROCESS_MIN_INTERVALS:
        return 0
    return min(job.parallel - 1, max(1, usable_cores() - 1))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def spec_of(job: Backfill) -> WorkerSpec:
    stack = job.orchestrator.stack
    assert job.pipeline.ref is not None
    return WorkerSpec(
        config=stack.model_dump(mode="json"), base_dir=str(stack.base_dir),
        source=stack.source, pipeline_ref=job.pipeline.ref, pipeline_name=job.pipeline.name,
        pipeline_version=job.pipeline.version, params=dict(job.params),
        reprocess=job.reprocess, backfill_id=job.backfill_id,
        max_active_runs=job.max_active_runs, sys_path=list(sys.path),
    )  # fmt: skip


@dataclasses.dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False
    gone: bool = False
    busy: str | None = None  # the key of the interval it runs
    dead_since: float | None = None  # when its process was first seen ended

    def send(self, kind: str, body: Any = None) -> None:
        with contextlib.suppress(OSError, ValueError):  # it died: its reader reports that
            self.conn.send((kind, body))


class _Dispatch:
    def __init__(
        self,
        job: Backfill,
        intervals: list[Interval],
        cancel: threading.Event,
        on_outcome: Callable[[IntervalOutcome], None],
    ) -> None:
        self.job, self.cancel, self.on_outcome = job, cancel, on_outcome
        self.by_key = {key(i): i for i in intervals}
        self.pending = collections.deque(intervals)
        self.events: queue.Queue[Event] = queue.Queue()
        self.workers: list[_Worker] = []
        self.local: set[str] = set()  # keys running on threads of this process
        self.outcomes: dict[str, IntervalOutcome] = {}
        self.cancel_sent = False

    # -- starting ---------------------------------------------------------------------------
    def start_workers(self, count: int) -> None:
        from multiprocessing.connection import Connection

        spec = spec_of(self.job)
        try:
            pickle.dumps(spec)
        except Exception as exc:  # parameters given through the API that cannot travel
            self.job.warnings.append(
                f"the backfill's parameters cannot be sent to worker processes "
                f"({type(exc).__name__}: {exc}); its intervals ran on threads of this process."
            )
            return
        for _ in range(count):
            try:
                ours, theirs = socket.socketpair()
                fd = theirs.fileno()
                process = subprocess.Popen(
                    [sys.executable, "-c", _ENTRY, str(fd)], pass_fds=(fd,),
                    stdin=subprocess.DEVNULL, stdout=2,  # stdout is ours (`--json` prints there)
                )  # fmt: skip
            except OSError as exc:  # out of processes or descriptors: threads do the rest
                self.job.warnings.append(
                    f"a backfill worker process could not start ({exc}); its share of the "
                    "intervals ran in this process instead."
                )
                return
            theirs.close()  # so that its death reads as EOF here
            worker = _Worker(process, Connection(ours.detach()))
            worker.send("spec", spec)
            self.workers.append(worker)
            threading.Thread(target=self._read, args=(worker,), daemon=True).start()

    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                kind, body = worker.conn.recv()
            except (EOFError, OSError):
                self.events.put(("exit", worker, None, None))
                return
            self.events.put((kind, worker, None, body))

    # -- the loop ---------------------------------------------------------------------------
    def in_flight(self) -> int:
        return len(self.local) + sum(1 for w in self.workers if w.busy and not w.gone)

    def assign(self) -> None:
        parallel = self.job.parallel
        while self.pending and self.in_flight() < parallel and not self.cancel.is_set():
            up = [w for w in self.workers if w.ready and not w.gone]
            idle = next((w for w in up if w.busy is None), None)
            # Threads here: what the workers up do not cover (all of it while they start, unless
            # processes were asked for).
            starting = sum(1 for w in self.workers if not w.ready and not w.gone)
            local_cap = parallel - len(up) - (starting if self.job.processes else 0)
            interval = self.pending[0]
            if idle is not None:
                idle.busy = key(interval)
                idle.send("run", _portable(interval))
            elif len(self.local) < local_cap:
                self.local.add(key(interval))
                threading.Thread(target=self._run_here, args=(interval,), daemon=True).start()
            else:
                return
            self.pending.popleft()

    def _run_here(self, interval: Interval) -> None:
        outcome = guarded(self.job, interval, self.cancel)
        self.events.put(("outcome", None, key(interval), outcome))

    def loop(self) -> None:
        while True:
            self.assign()
            if self.cancel.is_set() and not self.cancel_sent:
                self.cancel_sent = True
                for w in self.workers:
                    w.send("cancel")
            if self.in_flight() == 0 and (not self.pending or self.cancel.is_set()):
                return
            try:
                event = self.events.get(timeout=0.2)
            except queue.Empty:
                self.check_exits()
                continue
            self.handle(event)

    def check_exits(self) -> None:
        """A worker's death reads as EOF on its socket, unless a process its step forked still
        holds the socket: a worker process found ended without that EOF for EXIT_GRACE_S (its
        last messages had time to arrive) counts as gone."""
        now = time.monotonic()
        for w in self.workers:
            if w.gone or w.process.poll() is None:
                continue
            if w.dead_since is None:
                w.dead_since = now
            elif now - w.dead_since > EXIT_GRACE_S:
                self.handle(("exit", w, None, None))

    def handle(self, event: Event) -> None:
        from stackwise.scheduling.backfill import IntervalOutcome

        kind, worker, k, body = event
        outcome: IntervalOutcome | None = None
        if worker is None:  # a thread of this process finished
            self.local.discard(k or "")
            outcome = body
        elif kind == "ready":
            worker.ready = True
        elif kind == "outcome":
            worker.busy = None
            outcome = IntervalOutcome.from_dict(body) if body is not None else None
        elif kind in ("failed", "exit") and worker.gone:
            return  # already counted (its process was found ended before its socket closed)
        elif kind in ("failed", "exit"):
            if not worker.ready and not worker.gone:
                why = body if kind == "failed" else f"exit code {worker.process.wait()}"
                self.job.warnings.append(
                    f"a backfill worker process could not start ({why}); its share of the "
                    "intervals ran in this process instead."
                )
            worker.gone = True
            if worker.busy is not None:
                outcome = self._lost(worker)
        if outcome is not None:
            outcome.interval = self.by_key.get(key(outcome.interval), outcome.interval)
            self.outcomes[key(outcome.interval)] = outcome
            self.on_outcome(outcome)

    def _lost(self, worker: _Worker) -> IntervalOutcome:
        """The outcome of the interval a worker ran when it died: its ledger row still names
        the dead worker, so the next backfill resumes it."""
        from stackwise.scheduling.backfill import IntervalOutcome

        code = _wait(worker.process, 5)
        interval, worker.busy = self.by_key[worker.busy or ""], None
        status = "KILLED" if self.cancel.is_set() else "FAILED"
        return IntervalOutcome(
            interval, "run", status, "its worker process died; the next backfill resumes it",
            error=f"worker process {worker.process.pid} exited with code {code}",
        )  # fmt: skip

    def drain(self) -> None:
        """After cancel or Ctrl-C: let the running intervals stop and be recorded."""
        from stackwise.orchestrators.local.shield import shielded

        self.cancel.set()
        deadline = time.monotonic() + DRAIN_S
        with shielded():  # a second Ctrl-C must not cut the recording short
            for w in self.workers:
                w.send("cancel")
            while self.in_flight() and time.monotonic() < deadline:
                try:
                    self.handle(self.events.get(timeout=0.2))
                except queue.Empty:
                    self.check_exits()

    def stop_workers(self) -> None:
        """Tell the workers to stop, give them STOP_S together (not each), then terminate
        the ones left (still starting, or stuck: nothing of them to record), then kill."""
        for w in self.workers:
            if w.ready and not w.gone:
                w.send("stop")
        _wait_all([w.process for w in self.workers if w.ready and not w.gone], STOP_S)
        left = [w.process for w in self.workers if w.process.poll() is None]
        for process in left:
            process.terminate()
        _wait_all(left, TERM_S)
        for process in left:
            if process.poll() is None:
                process.kill()
                process.wait()
        for w in self.workers:
            w.conn.close()


def dispatch(
    job: Backfill,
    intervals: list[Interval],
    cancel: threading.Event,
    on_outcome: Callable[[IntervalOutcome], None],
    *,
    processes: int = 0,
) -> dict[str, IntervalOutcome]:
    """Run `intervals` up to `job.parallel` at once (on `processes` worker processes, or on
    threads when 0); returns the outcomes by ledger key."""
    run = _Dispatch(job, intervals, cancel, on_outcome)
    try:
        if processes:
            run.start_workers(processes)
        run.loop()
    except BaseException:
        run.drain()
        raise
    finally:
        run.stop_workers()
        job.mode = "processes" if any(w.ready for w in run.workers) else "threads"
    return run.outcomes


def _portable(interval: Interval) -> Interval | dict[str, str]:
    """`interval` as sent to a worker: whole (its datetimes keep their zone) when it pickles
    and its zone can be found by name again (the zones schedules make), else as ISO text."""
    tz = interval.logical_date.tzinfo
    if tz is None or getattr(tz, "key", None) or tz is dt.UTC:
        with contextlib.suppress(Exception):
            pickle.dumps(interval)
            return interval
    return interval.to_dict()


def _wait_all(processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Wait for all of `processes` to end, `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    for process in processes:
        _wait(process, max(0.0, deadline - time.monotonic()))


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    return process.returncode


def guarded(job: Backfill, interval: Interval, cancel: threading.Event) -> IntervalOutcome | None:
    """`job.process`, with an unexpected error (the state store gone, say) as a FAILED outcome
    rather than an interval that silently never reports."""
    from stackwise.scheduling.backfill import IntervalOutcome

    try:
        return job.process(interval, cancel)
    except Exception as exc:
        status = "KILLED" if cancel.is_set() else "FAILED"
        return IntervalOutcome(
            interval, "run", status, "could not be claimed or recorded",
            error=f"{type(exc).__name__}: {exc}".splitlines()[0],
        )  # fmt: skip


#: What a worker process runs (`python -c _ENTRY FD`): stackwise.scheduling.worker.
_ENTRY = "import sys; from stackwise.scheduling.worker import main; main(int(sys.argv[1]))"
