"""Which process drives a job or a container: ``host:pid:start``, and whether it is gone.

A job's record and the docker executor's containers carry the driver's id, so that what a
killed driver (SIGKILL, a reboot) left behind can be told from what still runs: its
containers removed, its jobs marked failed. ``start`` is when the process started (clock
ticks since boot, from ``/proc``): a new process that got the same pid is not the driver.
It is left out where ``/proc`` is missing; ``host:pid`` ids of older records still parse.
"""

from __future__ import annotations

import os
import socket


def _stat(pid: int | str) -> tuple[str, str] | None:
    """The process's state letter and start time, from ``/proc`` (None without it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # Fields 3 and 22, counted after the command name, which may hold spaces and ")".
            fields = stat.read().rpartition(b")")[2].split()
        return fields[0].decode(), fields[19].decode()
    except (OSError, IndexError):
        return None


def driver_id(pid: int | None = None) -> str:
    """Process ``pid``'s id as a driver (default: this process's): ``host:pid:start``
    (``host:pid`` without ``/proc``). This process's is ``LEV_DRIVER_ID`` when set: a driver
    in a PID namespace of its own has a pid there that means nothing to its host, and learns
    its host's id of it from the server that started it."""
    if pid is None and os.environ.get("LEV_DRIVER_ID"):
        return os.environ["LEV_DRIVER_ID"]
    stat = _stat("self" if pid is None else pid)
    me = f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"
    return f"{me}:{stat[1]}" if stat else me


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's
    return True


def driver_gone(driver: str | None) -> bool:
    """Whether ``driver`` was a process of this host that no longer runs (its pid is free,
    a zombie, or taken by a process that started at another time). A driver of another host,
    or none recorded, is never taken for gone: nothing here can tell."""
    parts = (driver or "").split(":")
    if len(parts) not in (2, 3) or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    if not pid_alive(int(parts[1])):
        return True
    stat = _stat(parts[1])
    if stat is None:
        return False
    state, started = stat
    return state == "Z" or (len(parts) == 3 and started != parts[2])


def error_line(stderr: bytes, code: int | None) -> str:
    """The one-line error ``lev run`` printed, without its ``lev: error:`` prefix."""
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    if lines:
        return lines[-1].removeprefix("lev: error: ")
    return f"lev run exited with code {code}"
