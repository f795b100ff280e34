"""Who owns a run: a process identified by host, pid and start time, not by pid alone.

A pid is reused after its process dies; a run left RUNNING by a SIGKILLed process whose pid now
belongs to an unrelated process must still be recognised as stale. On Linux the start time is
the process's start in clock ticks since boot (`/proc/<pid>/stat`, field 22) together with the
boot id, so an identity never matches another process, even after a reboot. Where /proc is
missing, the pid alone is compared (and a reused pid looks alive).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    start: str  # "<boot id>:<start ticks>", or "" where it cannot be read

    @property
    def token(self) -> str:
        """`host/pid/start`: how an identity is stored (state store, MLflow tag)."""
        return f"{self.host}/{self.pid}/{self.start}"

    @classmethod
    def parse(cls, token: str) -> ProcessIdentity | None:
        host, _, rest = token.rpartition("/")
        host, _, pid = host.rpartition("/")
        if not host or not pid.isdigit():
            return None
        return cls(host, int(pid), rest)

    def alive(self) -> bool:
        """Whether this very process still runs (on another host: assumed alive)."""
        if self.host != socket.gethostname():
            return True
        if not pid_alive(self.pid):
            return False
        return not self.start or start_token(self.pid) in ("", self.start)


def current_identity() -> ProcessIdentity:
    return _identity(os.getpid())


@functools.lru_cache(maxsize=4)
def _identity(pid: int) -> ProcessIdentity:  # keyed by pid: a forked child is not its parent
    return ProcessIdentity(socket.gethostname(), pid, start_token(pid))


def start_token(pid: int) -> str:
    """The start of process `pid` as "<boot id>:<ticks>", or "" when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
    return f"{_boot_id()}:{ticks}"


@functools.lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "boot"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def identity_alive(host: str | None, pid: int | None, start: str | None) -> bool:
    """Liveness of an owner recorded as separate fields (older records have no start)."""
    if pid is None:
        return False
    return ProcessIdentity(host or socket.gethostname(), pid, start or "").alive()
