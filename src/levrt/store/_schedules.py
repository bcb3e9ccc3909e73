"""The schedules' half of the store: task templates fired at the slots of a cron expression
or an interval, the slots fired, and the notifications (hooks) of their jobs.

Mixed into :class:`levrt.store.Store`. Firing a slot is claimed here: :meth:`claim_slot`
moves ``next_fire`` on by compare-and-set and records the slot under a unique key in one
transaction, so of two servers sharing the store exactly one gets each slot. A delivery of
a notification is claimed the same way (one row per hook and job).
"""

from __future__ import annotations

import re
import secrets
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from sqlalchemy import (
    Connection,
    Row,
    String,
    and_,
    cast,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from levrt.shim.entry import decode
from levrt.store._base import ScheduleError
from levrt.store._common import check_quota, now, user_id_of, utc
from levrt.store._hub import HubConflictError
from levrt.store.models import Delivery, Hook, Job, Schedule, ScheduleFire, User

_schedules = Schedule.__table__
_fires = ScheduleFire.__table__
_hooks = Hook.__table__
_deliveries = Delivery.__table__
_jobs = Job.__table__
_users = User.__table__

SCHEDULE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Shorter intervals would make the scheduler's poll the real period.
MIN_INTERVAL_SECONDS = 60
MAX_INTERVAL_SECONDS = 366 * 24 * 3600
# Missed slots counted one by one, at most: each costs croniter some 65 µs, and a cron of
# every minute missed for a month has 43,200.
MAX_SKIPPED_COUNTED = 1000
HOOK_KINDS = ("webhook", "apprise")
HOOK_EVENTS = ("done", "failed", "new_rows")
HOOK_SECRET_PREFIX = "levw_"
# Jobs of a schedule or target a search for the previous run looks back over.
_PREVIOUS_LOOKBACK = 200




def check_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ScheduleError (``timezone``) for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"unknown time zone {name!r}: give an IANA name "
                            "such as UTC or Europe/Paris") from None


def check_timing(cron: str | None, interval: int | None, zone: str) -> None:
    """ScheduleError naming the field when the timing is not one cron expression (five
    fields) or one interval of at least :data:`MIN_INTERVAL_SECONDS`, in a known zone."""
    if (cron is None) == (interval is None):
        raise ScheduleError("cron", "give either a cron expression or an interval, not both "
                            "nor neither")
    if cron is not None and (len(cron.split()) != 5 or not croniter.is_valid(cron)):
        raise ScheduleError("cron", f"{cron!r} is not a cron expression of five fields "
                            "(minute hour day-of-month month day-of-week), e.g. '0 3 * * *'")
    if interval is not None and not MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS:
        raise ScheduleError("interval", f"the interval must be {MIN_INTERVAL_SECONDS} to "
                            f"{MAX_INTERVAL_SECONDS} seconds (a year), not {interval}")
    check_zone(zone)


def next_slot(schedule: dict[str, Any], after: datetime) -> datetime:
    """The schedule's first slot strictly after ``after``, in UTC. Cron slots are read in
    the schedule's time zone (``0 3 * * *`` is 03:00 there, summer and winter); interval
    slots count from its creation."""
    if schedule["cron"]:
        zone = check_zone(schedule["timezone"])
        local = croniter(schedule["cron"], after.astimezone(zone)).get_next(datetime)
        return utc(local)  # type: ignore[return-value]
    step = timedelta(seconds=schedule["interval_seconds"])
    anchor: datetime = schedule["created_at"]
    if after < anchor:
        return anchor
    return anchor + step * ((after - anchor) // step + 1)


def due_slot(schedule: dict[str, Any], at: datetime) -> tuple[datetime, int]:
    """The slot to fire at ``at`` for a schedule due then (``next_fire <= at``): the latest
    slot not after ``at``, and how many older ones it passes over (missed while no server
    ran; counted up to :data:`MAX_SKIPPED_COUNTED`). Those are skipped: a scan that was due
    hours ago is worth one run now, not many."""
    first: datetime = schedule["next_fire"]
    if not schedule["cron"]:
        step = timedelta(seconds=schedule["interval_seconds"])
        skipped = (at - first) // step
        return first + step * skipped, skipped
    zone = check_zone(schedule["timezone"])
    # Five cron fields name whole minutes: the slot before a second past ``at`` is the
    # latest one not after it.
    latest = utc(croniter(schedule["cron"], (at + timedelta(seconds=1)).astimezone(zone))
                 .get_prev(datetime))
    if latest is None or latest < first:
        return first, 0
    later = croniter(schedule["cron"], first.astimezone(zone))
    skipped = 0
    while skipped < MAX_SKIPPED_COUNTED and utc(later.get_next(datetime)) <= latest:  # type: ignore[operator]
        skipped += 1
    return latest, skipped


def redact(url: str) -> str:
    """What may be shown of a hook's URL: its scheme and host, never a path, query or
    password (where chat services keep their tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def _schedule_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id, "owner": row.owner, "name": row.name, "target": row.target,
        "package": row.package, "params": decode(row.params), "placement": row.placement,
        "cron": row.cron, "interval_seconds": row.interval_seconds,
        "timezone": row.timezone, "paused": bool(row.paused),
        "next_fire": utc(row.next_fire), "created_at": utc(row.created_at),
    }


def _hook_dict(row: Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "schedule_id": row.schedule_id, "job_id": row.job_id,
            "kind": row.kind, "url": redact(row.url), "events": list(row.events),
            "created_at": utc(row.created_at)}


def _delivery_dict(row: Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "hook_id": row.hook_id, "job_id": row.job_id, "event": row.event,
            "status": row.status, "attempts": list(row.attempts),
            "created_at": utc(row.created_at)}


_SELECT = select(_schedules, _users.c.name.label("owner")).join(
    _users, _users.c.id == _schedules.c.owner_id)


def _wants(event: str) -> ColumnElement[bool]:
    """Whether a hook's JSON list of events holds ``event`` (its stored text, as SQLite and
    PostgreSQL both write it: ``["done", "failed"]``)."""
    return cast(_hooks.c.events, String).contains(f'"{event}"', autoescape=True)


_JOB_COLUMNS = (_jobs.c.id.label("jid"), _jobs.c.name.label("jname"), _jobs.c.status,
                _jobs.c.error, _jobs.c.target, _jobs.c.owner, _jobs.c.finished_at)


def _notification(row: Row[Any], event: str | None) -> dict[str, Any]:
    """A hook and an ended job of a row selecting ``_hooks`` and :data:`_JOB_COLUMNS`."""
    return {
        "hook": {"id": row.id, "kind": row.kind, "url": row.url, "secret": row.secret,
                 "events": list(row.events), "schedule_id": row.schedule_id},
        "job": {"id": row.jid, "name": row.jname, "status": row.status, "error": row.error,
                "target": row.target, "owner": row.owner, "finished_at": utc(row.finished_at)},
        "event": event}


def job_event(status: str) -> str | None:
    """The hook event of a job's final status: ``done``, or ``failed`` (failed or
    cancelled); None while it has not ended."""
    return {"done": "done", "failed": "failed", "cancelled": "failed"}.get(status)


class SchedulesMixin:
    """Schedules, their fired slots, hooks and deliveries (see :class:`levrt.store.Store`)."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractContextManager[Connection]: ...

        def _write(self) -> AbstractContextManager[Connection]: ...

        def list_documents(self, job_id: str) -> list[dict[str, Any]]: ...

    # -- schedules -------------------------------------------------------------------------

    def add_schedule(self, owner: str, name: str, *, target: str, params: dict[str, Any],
                     package: str | None = None, placement: str | None = None,
                     cron: str | None = None, interval: int | None = None,
                     timezone: str = "UTC", at: datetime | None = None,
                     limit: int | None = None) -> dict[str, Any]:
        """A new schedule of ``owner``'s firing ``target`` (of ``package==version``) with
        ``params`` (as the server checked them) at each slot of ``cron`` or every
        ``interval`` seconds in ``timezone``, from ``at`` (default now) on, placed at
        ``placement`` (as a job's: ``device:NAME``..., None for the server's runner).
        ScheduleError names a bad field; HubConflictError when the name is taken, or the
        owner has ``limit`` schedules already."""
        if not isinstance(name, str) or not SCHEDULE_NAME_RE.fullmatch(name):
            raise ScheduleError("name", f"schedule name {name!r} is not usable: 1-64 letters, "
                                "digits, '_', '.' or '-', starting with a letter or digit")
        check_timing(cron, interval, timezone)
        created = at or now()
        try:
            first = next_slot({"cron": cron, "interval_seconds": interval,
                               "timezone": timezone, "created_at": created}, created)
        except (CroniterError, OverflowError) as exc:  # "0 0 31 2 *": no such day
            raise ScheduleError("cron", f"{cron!r} never fires: {exc}") from None
        with self._write() as conn:
            owner_id = user_id_of(conn, owner)
            check_quota(conn, _schedules.c.owner_id, owner_id, limit, "schedules")
            try:
                result = conn.execute(insert(_schedules).values(
                    owner_id=owner_id, name=name, target=target, package=package,
                    params=params, placement=placement, cron=cron, interval_seconds=interval,
                    timezone=timezone, paused=False, next_fire=first, created_at=created))
            except IntegrityError:
                raise HubConflictError(f"you have a schedule {name!r} already: remove it "
                                       f"first (lev schedule rm {name})") from None
            row = conn.execute(_SELECT.where(
                _schedules.c.id == result.inserted_primary_key[0])).one()
        return _schedule_dict(row)

    def list_schedules(self, owner: str | None = None) -> list[dict[str, Any]]:
        """``owner``'s schedules by name (everyone's when None)."""
        query = _SELECT.order_by(_users.c.name, _schedules.c.name)
        if owner is not None:
            query = query.where(_users.c.name == owner)
        with self._read() as conn:
            return [_schedule_dict(row) for row in conn.execute(query)]

    def get_schedule(self, owner: str, name: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(_SELECT.where(_users.c.name == owner,
                                             _schedules.c.name == name)).first()
        return None if row is None else _schedule_dict(row)

    def pause_schedule(self, owner: str, name: str, paused: bool, *,
                       at: datetime | None = None) -> dict[str, Any] | None:
        """Pause or resume ``owner``'s schedule ``name``; None when there is none. Resuming
        fires next at its first slot after ``at`` (default now): none of the slots passed
        while paused."""
        schedule = self.get_schedule(owner, name)
        if schedule is None:
            return None
        values: dict[str, Any] = {"paused": paused}
        if not paused and schedule["paused"]:
            values["next_fire"] = next_slot(schedule, at or now())
        with self._write() as conn:
            conn.execute(update(_schedules).where(_schedules.c.id == schedule["id"])
                         .values(**values))
        return {**schedule, **values}

    def remove_schedule(self, owner: str, name: str) -> bool:
        """Remove ``owner``'s schedule ``name`` with its record of fired slots and its
        hooks; False when there is none. Its jobs stay."""
        schedule = self.get_schedule(owner, name)
        if schedule is None:
            return False
        with self._write() as conn:
            hooks = select(_hooks.c.id).where(_hooks.c.schedule_id == schedule["id"])
            conn.execute(delete(_deliveries).where(_deliveries.c.hook_id.in_(hooks)))
            conn.execute(delete(_hooks).where(_hooks.c.schedule_id == schedule["id"]))
            conn.execute(delete(_fires).where(_fires.c.schedule_id == schedule["id"]))
            result = conn.execute(delete(_schedules).where(_schedules.c.id == schedule["id"]))
        return bool(result.rowcount)

    def due_schedules(self, at: datetime,
                      schedule_id: int | None = None) -> list[dict[str, Any]]:
        """The schedules not paused whose next slot is at ``at`` or before (only the one
        ``schedule_id`` when given)."""
        query = _SELECT.where(_schedules.c.paused.is_(False), _schedules.c.next_fire <= at)
        if schedule_id is not None:
            query = query.where(_schedules.c.id == schedule_id)
        with self._read() as conn:
            rows = conn.execute(query.order_by(_schedules.c.next_fire)).all()
        return [_schedule_dict(row) for row in rows]

    def claim_slot(self, schedule: dict[str, Any], slot: datetime, skipped: int,
                   next_fire: datetime, *, at: datetime | None = None) -> bool:
        """Take ``slot`` of ``schedule`` (as read by :meth:`due_schedules`) to fire, and
        move its next slot to ``next_fire``; False when another server took it first, or the
        schedule was paused, changed or removed meanwhile."""
        with self._write() as conn:
            moved = conn.execute(update(_schedules).where(
                _schedules.c.id == schedule["id"], _schedules.c.paused.is_(False),
                _schedules.c.next_fire == schedule["next_fire"]).values(next_fire=next_fire))
            if moved.rowcount != 1:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(insert(_fires).values(
                        schedule_id=schedule["id"], slot=slot, skipped=skipped, job_id=None,
                        fired_at=at or now()))
            except IntegrityError:
                return False  # fired already: next_fire was set back by hand or by a clock
        return True

    def record_fire(self, schedule_id: int, slot: datetime, job_id: str) -> None:
        """The job that firing ``slot`` of the schedule submitted."""
        with self._write() as conn:
            conn.execute(update(_fires).where(_fires.c.schedule_id == schedule_id,
                                              _fires.c.slot == slot).values(job_id=job_id))

    def list_fires(self, schedule_id: int, limit: int = 20) -> list[dict[str, Any]]:
        """The schedule's latest fired slots, newest first: ``slot``, ``skipped``,
        ``job_id``, ``status`` (of the job), ``fired_at``."""
        query = (select(_fires, _jobs.c.status)
                 .join(_jobs, _jobs.c.id == _fires.c.job_id, isouter=True)
                 .where(_fires.c.schedule_id == schedule_id)
                 .order_by(_fires.c.slot.desc()).limit(limit))
        with self._read() as conn:
            return [{"slot": utc(row.slot), "skipped": row.skipped, "job_id": row.job_id,
                     "status": row.status, "fired_at": utc(row.fired_at)}
                    for row in conn.execute(query)]

    # -- the previous run ------------------------------------------------------------------

    def previous_documents(self, job_id: str) -> dict[str, Any] | None:
        """The documents of the previous successful job before ``job_id``: of the same
        schedule when a schedule fired it, else of the same owner, target (for a job without
        one, of ``levrt.run`` in a script: the same name), package and parameters.
        ``{"job_id", "finished_at", "documents"}`` (as :meth:`list_documents`), or None when
        there is none."""
        with self._read() as conn:
            job = conn.execute(select(_jobs).where(_jobs.c.id == job_id)).first()
            if job is None:
                raise KeyError(f"no job {job_id!r}")
            done = _jobs.c.status == "done"
            before = _jobs.c.created_at < job.created_at
            schedule_id = conn.execute(select(_fires.c.schedule_id).where(
                _fires.c.job_id == job_id)).scalar()
            found = None
            if schedule_id is not None:
                found = conn.execute(
                    select(_jobs.c.id, _jobs.c.finished_at)
                    .join(_fires, _fires.c.job_id == _jobs.c.id)
                    .where(_fires.c.schedule_id == schedule_id, done, before)
                    .order_by(_jobs.c.created_at.desc()).limit(1)).first()
            if found is None:
                params = decode(job.params)
                # A job of levrt.run in a script has no target: its workflow's name tells.
                what = (_jobs.c.target == job.target if job.target is not None
                        else and_(_jobs.c.target.is_(None), _jobs.c.name == job.name))
                same = and_(done, before, what,
                            or_(_jobs.c.owner == job.owner,
                                and_(_jobs.c.owner.is_(None), job.owner is None)),
                            or_(_jobs.c.package == job.package,
                                and_(_jobs.c.package.is_(None), job.package is None)))
                rows = conn.execute(select(_jobs.c.id, _jobs.c.finished_at, _jobs.c.params)
                                    .where(same).order_by(_jobs.c.created_at.desc())
                                    .limit(_PREVIOUS_LOOKBACK))
                found = next((row for row in rows if decode(row.params) == params), None)
        if found is None:
            return None
        return {"job_id": found.id, "finished_at": utc(found.finished_at),
                "documents": self.list_documents(found.id)}

    # -- hooks -----------------------------------------------------------------------------

    def add_hook(self, owner: str, *, kind: str, url: str, events: list[str],
                 schedule_id: int | None = None, job_id: str | None = None,
                 limit: int | None = None) -> tuple[dict[str, Any], str | None]:
        """A notification of ``owner``'s on ``events`` of the jobs of schedule
        ``schedule_id`` or of the job ``job_id``: a ``webhook`` POSTed to ``url``, or an
        ``apprise`` URL (``mailto://``, ``slack://``...). Answers the hook and, for a
        webhook, its signing secret: the only copy shown. ScheduleError names a bad field;
        HubConflictError when the owner has ``limit`` hooks already."""
        if kind not in HOOK_KINDS:
            raise ScheduleError("kind", f"kind must be one of {', '.join(HOOK_KINDS)}, "
                                f"not {kind!r}")
        if not events or any(event not in HOOK_EVENTS for event in events):
            raise ScheduleError("events", f"events must be some of {', '.join(HOOK_EVENTS)}, "
                                f"not {events!r}")
        scheme = urlsplit(url).scheme
        if kind == "webhook" and scheme not in ("http", "https"):
            raise ScheduleError("url", f"a webhook's URL must be http(s)://..., not {url!r}")
        if not scheme or not urlsplit(url).netloc:
            raise ScheduleError("url", "the URL must be SCHEME://..., as apprise reads it "
                                "(mailtos://user:pass@host?to=..., slack://...)")
        if (schedule_id is None) == (job_id is None):
            raise ScheduleError("schedule", "a hook is of one schedule or one task")
        secret = HOOK_SECRET_PREFIX + secrets.token_urlsafe(32) if kind == "webhook" else None
        with self._write() as conn:
            owner_id = user_id_of(conn, owner)
            check_quota(conn, _hooks.c.owner_id, owner_id, limit, "notification hooks")
            result = conn.execute(insert(_hooks).values(
                owner_id=owner_id, schedule_id=schedule_id, job_id=job_id,
                kind=kind, url=url, secret=secret, events=sorted(set(events)),
                created_at=now()))
            row = conn.execute(select(_hooks).where(
                _hooks.c.id == result.inserted_primary_key[0])).one()
        return _hook_dict(row), secret

    def list_hooks(self, owner: str, *, schedule_id: int | None = None,
                   job_id: str | None = None) -> list[dict[str, Any]]:
        """``owner``'s hooks (of one schedule or job when given), URLs redacted."""
        query = (select(_hooks).join(_users, _users.c.id == _hooks.c.owner_id)
                 .where(_users.c.name == owner).order_by(_hooks.c.id))
        if schedule_id is not None:
            query = query.where(_hooks.c.schedule_id == schedule_id)
        if job_id is not None:
            query = query.where(_hooks.c.job_id == job_id)
        with self._read() as conn:
            return [_hook_dict(row) for row in conn.execute(query)]

    def remove_hook(self, owner: str, hook_id: int) -> bool:
        """Remove ``owner``'s hook and its deliveries; False when there is none."""
        with self._write() as conn:
            mine = conn.execute(select(_hooks.c.id).join(
                _users, _users.c.id == _hooks.c.owner_id).where(
                _hooks.c.id == hook_id, _users.c.name == owner)).scalar()
            if mine is None:
                return False
            conn.execute(delete(_deliveries).where(_deliveries.c.hook_id == hook_id))
            conn.execute(delete(_hooks).where(_hooks.c.id == hook_id))
        return True

    def pending_notifications(self, limit: int = 100) -> list[dict[str, Any]]:
        """Hooks with an ended job they have no delivery for yet, oldest jobs first (a
        schedule's hook: jobs that ended after it was added): ``{"hook": {..., "url",
        "secret", "events"}, "job": {id, name, status, error, ...}, "event"}``, ``event``
        the job's (:func:`job_event`); left out when the hook wants neither that event nor,
        for a done job, ``new_rows``."""
        fired = select(_fires.c.job_id, _fires.c.schedule_id).where(
            _fires.c.job_id.is_not(None)).subquery()
        query = (
            select(_hooks, *_JOB_COLUMNS)
            .join(fired, fired.c.schedule_id == _hooks.c.schedule_id, isouter=True)
            .join(_jobs, or_(_jobs.c.id == _hooks.c.job_id, _jobs.c.id == fired.c.job_id))
            .join(_deliveries, and_(_deliveries.c.hook_id == _hooks.c.id,
                                    _deliveries.c.job_id == _jobs.c.id), isouter=True)
            .where(_deliveries.c.id.is_(None),
                   # Only what the hook wants, here rather than after: ended jobs it does
                   # not want would otherwise fill every page before those it does.
                   or_(and_(_jobs.c.status == "done",
                            or_(_wants("done"), _wants("new_rows"))),
                       and_(_jobs.c.status.in_(("failed", "cancelled")), _wants("failed"))),
                   # A schedule's new hook is not sent for the tasks it fired before.
                   or_(_hooks.c.job_id.is_not(None),
                       _jobs.c.finished_at >= _hooks.c.created_at))
            .order_by(_jobs.c.finished_at).limit(limit))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [_notification(row, job_event(row.status)) for row in rows]

    def claim_delivery(self, hook_id: int, job_id: str, event: str, *,
                       until: datetime) -> int | None:
        """Take the delivery of ``job_id``'s ``event`` by the hook, held by the caller
        ``until`` then; its id, or None when another server took it first."""
        try:
            with self._write() as conn:
                result = conn.execute(insert(_deliveries).values(
                    hook_id=hook_id, job_id=job_id, event=event, status="sending",
                    attempts=[], next_at=until, created_at=now()))
        except IntegrityError:
            return None
        return int(result.inserted_primary_key[0])

    def due_deliveries(self, at: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Deliveries still sending whose next attempt is due at ``at`` (or whose server
        stopped holding them), as :meth:`pending_notifications` with their ``event`` and
        ``"delivery": {"id", "next_at", "attempts"}`` (how many were made)."""
        query = (
            select(_hooks, *_JOB_COLUMNS, _deliveries.c.id.label("did"),
                   _deliveries.c.event.label("devent"), _deliveries.c.next_at,
                   _deliveries.c.attempts)
            .join(_hooks, _hooks.c.id == _deliveries.c.hook_id)
            .join(_jobs, _jobs.c.id == _deliveries.c.job_id)
            .where(_deliveries.c.status == "sending", _deliveries.c.next_at <= at)
            .order_by(_deliveries.c.next_at).limit(limit))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [{**_notification(row, row.devent),
                 "delivery": {"id": row.did, "next_at": utc(row.next_at),
                              "attempts": len(row.attempts or [])}} for row in rows]

    def take_delivery(self, delivery: dict[str, Any], until: datetime) -> bool:
        """Hold a due delivery (as :meth:`due_deliveries` read it) ``until`` then, to try it
        again; False when another server took it first."""
        with self._write() as conn:
            result = conn.execute(update(_deliveries).where(
                _deliveries.c.id == delivery["id"], _deliveries.c.status == "sending",
                _deliveries.c.next_at == delivery["next_at"]).values(next_at=until))
        return result.rowcount == 1

    def record_attempt(self, delivery_id: int, attempt: dict[str, Any], status: str,
                       next_at: datetime | None = None) -> None:
        """Add an attempt (``{"at", "code", "error"}``, JSON-ready) to the delivery and set
        its status: ``sending`` (the next attempt due at ``next_at``), ``delivered``,
        ``failed`` or ``skipped``."""
        with self._write() as conn:
            attempts = conn.execute(select(_deliveries.c.attempts).where(
                _deliveries.c.id == delivery_id)).scalar() or []
            conn.execute(update(_deliveries).where(_deliveries.c.id == delivery_id).values(
                attempts=[*attempts, attempt], status=status,
                next_at=next_at if status == "sending" else None))

    def list_deliveries(self, owner: str, *, schedule_id: int | None = None,
                        job_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The latest deliveries of ``owner``'s hooks, newest first: of one schedule's hooks
        when ``schedule_id`` is given, about one job (by its own hooks or its schedule's)
        when ``job_id`` is."""
        query = (select(_deliveries).join(_hooks, _hooks.c.id == _deliveries.c.hook_id)
                 .join(_users, _users.c.id == _hooks.c.owner_id)
                 .where(_users.c.name == owner)
                 .order_by(_deliveries.c.id.desc()).limit(limit))
        if schedule_id is not None:
            query = query.where(_hooks.c.schedule_id == schedule_id)
        if job_id is not None:
            query = query.where(_deliveries.c.job_id == job_id)
        with self._read() as conn:
            return [_delivery_dict(row) for row in conn.execute(query)]
