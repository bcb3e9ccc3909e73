"""Which process drives a job or a container: ``host:pid``, and whether it is gone.

A job's record and the docker executor's containers carry the driver's id, so that what a
killed driver (SIGKILL, a reboot) left behind can be told from what still runs: its
containers removed, its jobs marked failed.
"""

from __future__ import annotations

import os
import socket


def driver_id() -> str:
    """This process's id as a driver: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's
    return True


def driver_gone(driver: str | None) -> bool:
    """Whether ``driver`` was a process of this host that no longer runs. A driver of
    another host, or none recorded, is never taken for gone: nothing here can tell."""
    host, _, pid = (driver or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))
