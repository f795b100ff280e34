"""Writers of one SQLite database take turns across processes and threads (stackwise.write_turns):
never two holders at once, a forked child waits for its parent like any other process, and a
lock file that cannot be made leaves the threads of a process taking turns."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from stackwise.write_turns import Turns, write_turns

HOLDER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from stackwise.write_turns import write_turns

    turns = write_turns(Path(sys.argv[1]))
    log = Path(sys.argv[2])
    for _ in range(200):
        with turns:
            with log.open("a") as fh:
                fh.write(f"in {os.getpid()}\\n")
            with log.open("a") as fh:
                fh.write(f"out {os.getpid()}\\n")
    """
)


def test_processes_never_hold_a_databases_turn_at_once(tmp_path: Path) -> None:
    database, log = tmp_path / "store.db", tmp_path / "log.txt"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(database), str(log)])
        for _ in range(3)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]

    lines = log.read_text().splitlines()
    assert len(lines) == 3 * 200 * 2
    holder = None
    for line in lines:  # every "in" is followed by the same process's "out"
        kind, pid = line.split()
        if kind == "in":
            assert holder is None, lines
            holder = pid
        else:
            assert holder == pid, lines
            holder = None
    assert (tmp_path / ".store.db.writes").exists()


def test_a_forked_child_waits_for_its_parents_turn(tmp_path: Path) -> None:
    turns = write_turns(tmp_path / "store.db")
    marks = tmp_path / "marks"
    with turns:  # the parent's descriptor is open (and held) before the fork
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            code = 1
            try:
                with turns:
                    marks.write_text("child held it")
                code = 0
            finally:
                os._exit(code)
        time.sleep(0.5)  # the child had the time to take the turn, were it not held
        assert not marks.exists()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert marks.read_text() == "child held it"


def test_a_lock_file_that_cannot_be_made_leaves_the_threads_taking_turns(tmp_path: Path) -> None:
    folder = tmp_path / "gone"  # no such folder: opening the lock file fails like a
    _threads_take_turns(write_turns(folder / "store.db"))  # read-only one (EACCES for non-root)
    assert not folder.exists()


def test_threads_take_turns_without_a_lock_file() -> None:
    _threads_take_turns(Turns(None))


def _threads_take_turns(turns: Turns) -> None:
    inside: list[int] = []
    overlaps: list[int] = []

    def work() -> None:
        for _ in range(200):
            with turns:
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []


def test_a_forked_child_does_not_keep_its_parents_turn_after_the_parent_is_gone(
    tmp_path: Path,
) -> None:
    """A process that dies holding the turn while a child it forked lives on (a step's
    worker pool): the child's copy of the lock file must not keep the turn held."""
    database = tmp_path / "store.db"
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent(
        """
        import os, sys, time
        from pathlib import Path
        from stackwise.write_turns import write_turns

        turns = write_turns(Path(sys.argv[1]))
        with turns:  # the lock file is open and locked here
            child = os.fork()
            if child == 0:  # the child lives on, as a step's pool worker would
                time.sleep(60)
                os._exit(0)
            Path(sys.argv[2]).write_text(str(child))
            os._exit(0)  # the parent dies holding the turn
        """
    ))  # fmt: skip
    pid_file = tmp_path / "child.pid"
    subprocess.run([sys.executable, str(script), str(database), str(pid_file)], check=True,
                   timeout=60)  # fmt: skip
    try:
        taken: list[bool] = []
        waiter = threading.Thread(target=lambda: taken.append(_take(write_turns(database))))
        waiter.daemon = True
        waiter.start()
        waiter.join(timeout=20)
        assert taken == [True], "the turn stayed held by the dead holder's forked child"
    finally:
        with contextlib.suppress(OSError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _take(turns: Turns) -> bool:
    with turns:
        return True
