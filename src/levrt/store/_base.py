"""What of the store is needed without a database: where it lives by default, and the errors
it raises. No SQLAlchemy here: ``lev run`` of a server's task (whose store is the API) and the
agent import this alone."""

from __future__ import annotations

import os
from pathlib import Path


class StoreError(Exception):
    """The database cannot be used as a levrt store (bad URL, unknown schema, ...), or
    refuses an operation."""


class StoreWriteError(StoreError):
    """The database refused a write (disk full, read-only, locked too long): whatever was
    being recorded is not stored. The message names the cause and where the store is."""


class JobStateError(StoreError, ValueError):
    """A job is not in the state the operation needs: starting one that is not queued."""


def default_home() -> Path:
    """Directory for levrt's data: ``$LEV_HOME``, else ``$XDG_DATA_HOME/levrt``."""
    home = os.environ.get("LEV_HOME")
    if home:
        return Path(home)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "levrt"


def default_url() -> str:
    """``$LEV_DB_URL``, else a SQLite file in :func:`default_home` (created if missing)."""
    url = os.environ.get("LEV_DB_URL")
    if url:
        return url
    home = default_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'levrt.db'}"


class HubError(Exception):
    """The hub refuses a request; the message says why and what to do instead."""


class HubPermissionError(HubError):
    """The user may not do this (a namespace that is not theirs)."""


class HubConflictError(HubError):
    """It exists already: a user, a package name, a version."""


class TokenRevokedError(HubError):
    """An API token that was revoked."""


class EnrolmentError(HubError):
    """An enrolment code that cannot be traded: unknown, used or expired. The message says
    what to do."""


class ScheduleError(ValueError):
    """A schedule's field that cannot be used: ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
