"""Alembic environment for the levrt store.

The store runs migrations itself (``levrt.store._store``) and hands over an open
connection in ``config.attributes["connection"]``, so its lock and transaction
cover the whole upgrade. Without one (a developer calling ``alembic.command``
to author a revision), ``sqlalchemy.url`` from the config is used.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from levrt.store.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "levrt migrations need a database: pass an open connection in "
            "config.attributes['connection'] or set the 'sqlalchemy.url' option"
        )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()
