"""Persistent storage of levrt jobs, runs, result documents, logs and files, and of the
hub's users, tokens, namespaces, packages and versions.

SQLite by default (``$LEV_HOME/levrt.db``), any SQLAlchemy URL via
``LEV_DB_URL``. Opening a store brings its schema up to date.
"""

from levrt.store._devices import EnrolmentError
from levrt.store._hub import (
    HubConflictError,
    HubError,
    HubPermissionError,
    TokenRevokedError,
    check_name,
    split_package_name,
)
from levrt.store._schedules import ScheduleError
from levrt.store._store import Store, StoreError, StoreWriteError, default_home, default_url

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
