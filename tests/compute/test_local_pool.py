"""The local backend's worker threads: reused for sequential attempts, one per concurrent
attempt, and a thread still busy (an attempt abandoned while blocked) never gets new work."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable

from stackwise.compute.local import _WorkerPool

HANG_GUARD_S = 30.0  # only catches a hang; no timing is asserted


def _run(pool: _WorkerPool, job_name: str, body: threading.Event | None = None) -> tuple[
    threading.Event, list[int]
]:
    done, seen = threading.Event(), []

    def job() -> None:
        seen.append(threading.get_ident())
        if body is not None:
            body.wait(HANG_GUARD_S)
        done.set()

    pool.submit(job, name=job_name)
    return done, seen


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, "hang"
        time.sleep(0.001)


def test_sequential_attempts_reuse_one_thread() -> None:
    pool = _WorkerPool()
    idents = []
    for i in range(5):
        done, seen = _run(pool, f"job-{i}")
        assert done.wait(HANG_GUARD_S)
        idents += seen
        _until(lambda: pool._idle == 1)  # the thread is back waiting for work
    assert len(set(idents)) == 1


def test_a_busy_thread_is_never_handed_work() -> None:
    pool = _WorkerPool()
    release = threading.Event()
    stuck_done, stuck = _run(pool, "stuck", body=release)  # like an abandoned attempt
    try:
        later = [_run(pool, f"job-{i}") for i in range(3)]
        for done, _ in later:
            assert done.wait(HANG_GUARD_S)  # they ran while the first thread was still busy
        assert not stuck_done.is_set()
        assert stuck[0] not in {seen[0] for _, seen in later}
    finally:
        release.set()
    assert stuck_done.wait(HANG_GUARD_S)


def test_concurrent_attempts_get_their_own_threads() -> None:
    pool = _WorkerPool()
    gate = threading.Barrier(3, timeout=HANG_GUARD_S)  # breaks unless all three run at once
    idents: list[int] = []
    finished = [threading.Event() for _ in range(3)]

    def job_for(i: int) -> None:
        idents.append(threading.get_ident())
        gate.wait()
        finished[i].set()

    for i in range(3):
        pool.submit(lambda i=i: job_for(i), name=f"job-{i}")
    assert all(event.wait(HANG_GUARD_S) for event in finished)
    assert len(set(idents)) == 3


def test_a_job_that_raises_retires_its_thread_and_the_pool_goes_on() -> None:
    pool = _WorkerPool()

    def bad() -> None:
        raise RuntimeError("an interrupt that landed after the attempt")

    pool.submit(bad, name="bad")
    done, _ = _run(pool, "next")
    assert done.wait(HANG_GUARD_S)


def test_each_job_starts_with_an_empty_context_like_a_new_thread() -> None:
    pool = _WorkerPool()
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("left_over", default="fresh")
    seen: list[tuple[int, str]] = []

    def job() -> None:
        seen.append((threading.get_ident(), variable.get()))
        variable.set("set by an earlier attempt")

    for i in range(2):
        pool.submit(job, name=f"ctx-{i}")
        _until(lambda: pool._idle == 1)  # done, and back waiting for work
    assert seen[0][0] == seen[1][0]  # the same thread ran both
    assert [value for _, value in seen] == ["fresh", "fresh"]


def test_a_run_left_active_by_a_step_does_not_reach_the_next_one() -> None:
    from mlflow.tracking import fluent

    from stackwise.compute.local import _forget_mlflow_thread_state

    fluent._active_run_stack.get().append("a run the step started and never ended")
    _forget_mlflow_thread_state()
    assert fluent._active_run_stack.get() == []
