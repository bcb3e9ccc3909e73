"""Persistent storage of levrt jobs, runs, result documents, logs and files, and of the
hub's users, tokens, namespaces, packages and versions.

SQLite by default (``$LEV_HOME/levrt.db``), any SQLAlchemy URL via
``LEV_DB_URL``. Opening a store brings its schema up to date.

:class:`Store` and the name checks load SQLAlchemy when first asked for: the errors and
:func:`default_home` do not, so code that only reaches a store through the API (a server
task's ``lev run``, an agent) starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from levrt.store._base import (
    EnrolmentError,
    HubConflictError,
    HubError,
    HubPermissionError,
    ScheduleError,
    StoreError,
    StoreWriteError,
    TokenRevokedError,
    default_home,
    default_url,
)

if TYPE_CHECKING:
    from levrt.store._hub import check_name, split_package_name
    from levrt.store._store import Store

_LAZY = {"Store": "levrt.store._store", "check_name": "levrt.store._hub",
         "split_package_name": "levrt.store._hub"}

__all__ = [
    "EnrolmentError",
    "HubConflictError",
    "HubError",
    "HubPermissionError",
    "ScheduleError",
    "Store",
    "StoreError",
    "StoreWriteError",
    "TokenRevokedError",
    "check_name",
    "default_home",
    "default_url",
    "split_package_name",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'levrt.store' has no attribute {name!r}")
