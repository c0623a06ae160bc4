"""Who owns a piece of work in progress (a run, a temporary file): host, pid, and the process's start time.

A pid alone is not an identity (pids are reused), so an owner is ``(host, pid, start)`` with ``start`` the
process's creation time from the kernel (psutil). Work whose owner is provably gone (same host; the pid is
not running, or is running but started at another time) may be cleaned up by anyone; work owned by another
host cannot be proven dead from here and is left alone (``robodata doctor`` reports it).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from functools import lru_cache


@lru_cache(maxsize=1)
def host_id() -> str:
    """A short, stable id of this host (4 hex digits of its name), small enough for a file name."""
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=2).hexdigest()


def _start_of(pid: int) -> int | None:
    """The process's creation time in whole seconds, or None when no such process runs."""
    import psutil

    try:
        return int(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, ValueError):
        return None


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: int

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(host_id(), pid, _start_of(pid) or 0)

    def token(self) -> str:
        """``<host>-<pid hex>-<start hex>``: what goes into a temporary's name or a run's tag."""
        return f"{self.host}-{self.pid:x}-{self.start:x}"

    @classmethod
    def parse(cls, token: str) -> Owner | None:
        try:
            host, pid, start = token.split("-")
            return cls(host, int(pid, 16), int(start, 16))
        except ValueError:
            return None

    def local(self) -> bool:
        return self.host == host_id()

    def gone(self) -> bool:
        """Provably dead: on this host, and no process with this pid and start time runs."""
        if not self.local():
            return False
        start = _start_of(self.pid)
        return start is None or abs(start - self.start) > 1


_REAPER: dict[int, object] = {}


def start_reaper() -> None:
    """Make sure what this process starts (Ray's processes, a dagster-daemon, encoders) does not outlive it.

    A watchdog process (``python -m robodata.reaper``, in its own session so that a Ctrl-C to the terminal
    does not take it first) notes this process's descendants every quarter second; once this process is
    gone, however it ended (``kill -9`` included), it kills those still running and what they started. Once per process; a no-op with
    ``ROBODATA_NO_REAPER=1``."""
    import subprocess
    import sys

    pid = os.getpid()
    if pid in _REAPER or os.environ.get("ROBODATA_NO_REAPER") == "1":
        return
    me = Owner.me()
    _REAPER[pid] = subprocess.Popen(
        [sys.executable, "-m", "robodata.reaper", str(pid), str(me.start)], start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
