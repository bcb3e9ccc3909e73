"""Persistent storage of levrt jobs, runs, result documents, logs and files.

SQLite by default (``$LEV_HOME/levrt.db``), any SQLAlchemy URL via
``LEV_DB_URL``. Opening a store brings its schema up to date.
"""

from levrt.store._store import Store, StoreError, default_home, default_url

__all__ = ["Store", "StoreError", "default_home", "default_url"]
