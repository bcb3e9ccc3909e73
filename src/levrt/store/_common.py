"""Helpers shared by the runtime's and the hub's halves of the store."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from sqlalchemy import Column, Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from levrt.store._base import HubConflictError
from levrt.store.models import File, User

_files = File.__table__
_users = User.__table__


def now() -> datetime:
    return datetime.now(timezone.utc)


def utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes (everything written is UTC); PostgreSQL hands back
    # the same instant in the session's time zone, which is the server's unless set.
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def user_id_of(conn: Connection, name: str) -> int:
    """The id of the user ``name``; KeyError when there is none."""
    found = conn.execute(select(_users.c.id).where(_users.c.name == name)).scalar()
    if found is None:
        raise KeyError(f"no user {name!r}")
    return int(found)


def check_quota(conn: Connection, owner: Column[int], owner_id: int, limit: int | None,
                what: str) -> None:
    """Refuse a new row of ``what`` (``"devices"``...) to an owner who has ``limit`` of them
    already (None: no limit), with :class:`~levrt.store.HubConflictError`: each is read by
    that user's pages and by the server's loops, so one user must not grow them without
    bound."""
    if limit is None:
        return
    count = conn.execute(select(func.count()).where(owner == owner_id)).scalar_one()
    if count >= limit:
        raise HubConflictError(f"you have {count} {what}, as many as this server allows "
                               f"(max_per_user = {limit}): remove some first")


def file_digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def insert_file(conn: Connection, content: bytes, name: str | None) -> str:
    """Store ``content`` once, inside the caller's transaction; return its digest."""
    digest = file_digest(content)
    if conn.execute(select(_files.c.digest).where(_files.c.digest == digest)).first():
        return digest
    # A savepoint, so that a concurrent writer storing the same bytes first (possible on
    # PostgreSQL; SQLite's write lock serializes us) costs this insert, not the transaction.
    try:
        with conn.begin_nested():
            conn.execute(
                insert(_files).values(
                    digest=digest, content=content, size=len(content), name=name,
                    created_at=now(),
                )
            )
    except IntegrityError:
        pass  # same content, same digest: it is stored
    return digest
