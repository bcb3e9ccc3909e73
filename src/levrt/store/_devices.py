"""The devices' half of the store: machines where a user's ``lev agent`` takes tasks.

Mixed into :class:`levrt.store.Store`. A device is added by its owner, which gives a one-time
enrolment code (valid for :data:`CODE_LIFETIME`); the agent trades the code for a device token.
Only SHA-256 hashes of both are kept. A device token is not an API token: it is looked up here
and nowhere else, so it opens no user route.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from levrt.store._base import EnrolmentError
from levrt.store._common import check_quota, now, user_id_of, utc
from levrt.store._hub import HubConflictError
from levrt.store.models import Device, User

# Device and pool names become parts of Temporal task queue names and of URLs.
DEVICE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
CODE_LIFETIME = timedelta(hours=1)
CODE_PREFIX = "levc_"
DEVICE_TOKEN_PREFIX = "levd_"
MAX_POOLS = 32

_devices = Device.__table__
_users = User.__table__


def check_device_name(name: str, what: str = "device name") -> str:
    """``name`` if it can name a device or a pool, else ValueError saying what can."""
    if not isinstance(name, str) or not DEVICE_NAME_RE.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not usable: 1-64 lower-case letters, digits, '_', '.' or "
            "'-', starting with a letter or digit"
        )
    return name


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _device_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner": row.owner,
        "name": row.name,
        "pools": list(row.pools or []),
        "enrolled": row.token_sha256 is not None,
        "code_expires_at": None if row.token_sha256 else utc(row.code_expires_at),
        "facts": row.facts,
        "last_seen": utc(row.last_seen),
        "running": row.running,
        "slots": row.slots,
        "created_at": utc(row.created_at),
    }


_SELECT = select(_devices, _users.c.name.label("owner")).join(
    _users, _users.c.id == _devices.c.owner_id)


class DevicesMixin:
    """Devices, their enrolment and what their agents report (see :class:`levrt.store.Store`)."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractContextManager[Connection]: ...

        def _write(self) -> AbstractContextManager[Connection]: ...

    def add_device(self, owner: str, name: str, pools: list[str] | None = None, *,
                   limit: int | None = None) -> dict[str, Any]:
        """A new device of ``owner``'s, not enrolled yet. The result's ``"code"`` is the only
        copy of its one-time enrolment code, valid until ``"code_expires_at"``.
        ValueError for a bad name or pool, KeyError for an unknown owner,
        :class:`~levrt.store.HubConflictError` when the owner has a device of that name, or
        ``limit`` devices already."""
        check_device_name(name)
        pools = sorted({check_device_name(pool, "pool name") for pool in pools or []})
        if len(pools) > MAX_POOLS:
            raise ValueError(f"a device may join at most {MAX_POOLS} pools, not {len(pools)}")
        code = CODE_PREFIX + secrets.token_urlsafe(24)
        created = now()
        with self._write() as conn:
            owner_id = user_id_of(conn, owner)
            check_quota(conn, _devices.c.owner_id, owner_id, limit, "devices")
            try:
                conn.execute(insert(_devices).values(
                    owner_id=owner_id, name=name, pools=pools, token_sha256=None,
                    code_sha256=_sha256(code), code_expires_at=created + CODE_LIFETIME,
                    facts=None, last_seen=None, running=0, slots=0, created_at=created))
            except IntegrityError:
                raise HubConflictError(
                    f"you have a device {name!r} already; remove it first (lev device remove "
                    f"{name}) to enrol a machine under that name again") from None
            row = conn.execute(_SELECT.where(_devices.c.owner_id == owner_id,
                                             _devices.c.name == name)).one()
        return {**_device_dict(row), "code": code}

    def enrol_device(self, code: str, *, at: datetime | None = None) -> tuple[dict[str, Any], str]:
        """Trade a one-time enrolment ``code`` for the device and its new token (the only copy
        of the secret). :class:`EnrolmentError` for an unknown, used or expired code."""
        token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        when = at or now()
        with self._write() as conn:
            row = conn.execute(_SELECT.where(_devices.c.code_sha256 == _sha256(code))).first()
            if row is None:
                raise EnrolmentError(
                    "unknown enrolment code: copy it again from lev device add or the devices "
                    "page, or add the device again for a new one")
            if row.token_sha256 is not None:
                raise EnrolmentError(
                    f"this enrolment code was used already (device {row.name!r} is enrolled); "
                    f"codes work once: lev device remove {row.name} then lev device add "
                    f"{row.name} gives a new one")
            expires = utc(row.code_expires_at)
            if expires is None or when >= expires:
                raise EnrolmentError(
                    f"this enrolment code expired at {expires:%Y-%m-%d %H:%M:%S} UTC (codes "
                    f"last {CODE_LIFETIME.seconds // 3600} h): lev device remove {row.name} "
                    f"then lev device add {row.name} gives a new one")
            conn.execute(update(_devices).where(_devices.c.id == row.id).values(
                token_sha256=_sha256(token), code_expires_at=None))
            row = conn.execute(_SELECT.where(_devices.c.id == row.id)).one()
        return _device_dict(row), token

    def resolve_device_token(self, token: str) -> dict[str, Any] | None:
        """The device whose token this is, or None."""
        with self._read() as conn:
            row = conn.execute(_SELECT.where(_devices.c.token_sha256 == _sha256(token))).first()
        return None if row is None else _device_dict(row)

    def device_seen(self, device_id: int, *, running: int, slots: int,
                    facts: dict[str, Any] | None = None) -> None:
        """Record a heartbeat of the device: now, its load and, when given, its facts."""
        values: dict[str, Any] = {"last_seen": now(), "running": running, "slots": slots}
        if facts is not None:
            values["facts"] = facts
        with self._write() as conn:
            conn.execute(update(_devices).where(_devices.c.id == device_id).values(**values))

    def list_devices(self, owner: str) -> list[dict[str, Any]]:
        """``owner``'s devices by name."""
        with self._read() as conn:
            rows = conn.execute(_SELECT.where(_users.c.name == owner)
                                .order_by(_devices.c.name)).all()
        return [_device_dict(row) for row in rows]

    def get_device(self, owner: str, name: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(_SELECT.where(_users.c.name == owner,
                                             _devices.c.name == name)).first()
        return None if row is None else _device_dict(row)

    def remove_device(self, owner: str, name: str) -> bool:
        """Remove ``owner``'s device ``name`` (its token stops working at once); False when
        there is none."""
        with self._write() as conn:
            owner_id = conn.execute(select(_users.c.id).where(_users.c.name == owner)).scalar()
            if owner_id is None:
                return False
            result = conn.execute(delete(_devices).where(_devices.c.owner_id == owner_id,
                                                         _devices.c.name == name))
        return bool(result.rowcount)
