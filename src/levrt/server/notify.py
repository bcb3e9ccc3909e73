"""Notifications of ended jobs (docs/schedules.md#notifications): signed webhooks and, through
apprise, chat and mail services.

The :class:`Notifier` runs in the app's lifespan: every ``poll`` seconds it asks the store for
hooks with an ended job not yet delivered, claims each delivery there (of two servers on one
store only one sends it) and makes its first attempt. A failed attempt worth another makes
the next one due ``backoff`` × 2 ** n seconds later, ``attempts`` in all; the due time is
kept with the delivery, so whichever server sharing the store looks next makes it, after a
restart too. A server holds a delivery while attempting it (:data:`LEASE_SECONDS`): if it
dies meanwhile, another takes the delivery up after that. Every attempt goes to the
delivery log.

A webhook is a POST of a JSON body with ``X-Lev-Event``, ``X-Lev-Delivery`` and
``X-Lev-Signature: sha256=<hex>``, the HMAC-SHA256 of the body's bytes under the hook's
secret. A 2xx answer delivers it; a 4xx other than 408 and 429 fails it at once (asking
again would get the same); anything else, or no answer, is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import apprise
import httpx
from starlette.concurrency import run_in_threadpool

from levrt._job_json import to_json
from levrt.rows import diff, job_tables
from levrt.store import Store

logger = logging.getLogger(__name__)

POLL_SECONDS = 5.0
ATTEMPTS = 5
BACKOFF_SECONDS = 2.0
SEND_TIMEOUT = 15.0
# How long a server holds a delivery it is attempting: past it (the server died), another
# server takes the delivery up again.
LEASE_SECONDS = SEND_TIMEOUT + 45.0
SIGNATURE_HEADER = "X-Lev-Signature"
# Answers that say "later" rather than "never".
_RETRIED_4XX = (408, 429)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Lev-Signature`` value of ``body`` under ``secret``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_rows(store: Store, job_id: str) -> list[dict[str, Any]]:
    """The rows of ``job_id`` its previous run (:meth:`~levrt.store.Store.previous_documents`)
    did not have, per collection: ``[{"coll", "keys", "new": [row, ...]}]``, only those with
    new rows (every row is new on a first run)."""
    previous = store.previous_documents(job_id)
    before = [] if previous is None else job_tables(store, previous["job_id"])
    found = diff(before, job_tables(store, job_id))
    return [{"coll": table.coll, "keys": table.keys, "new": to_json(table.new)}
            for table in found if table.new]


class _Refused(Exception):
    """A delivery the receiver refused for good."""


def _message(job: dict[str, Any], url: str | None) -> tuple[str, str]:
    """The title and text of a chat or mail notification."""
    title = f"levrt: task {job['name']} {job['status']}"
    lines = [f"Task {job['id']} ({job['target']}) ended {job['status']}."]
    if job["error"]:
        lines.append(f"Error: {job['error']}")
    if url:
        lines.append(url)
    return title, "\n".join(lines)


class Notifier:
    """Delivers the store's pending notifications; ``public_url`` (the server's root) makes
    the link to each task."""

    def __init__(self, store: Store, *, public_url: str | None = None,
                 poll: float = POLL_SECONDS, attempts: int = ATTEMPTS,
                 backoff: float = BACKOFF_SECONDS,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.store = store
        self.public_url = public_url
        self.poll = poll
        self.attempts = attempts
        self.backoff = backoff
        self.clock = clock
        self._loop: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def tick(self) -> list[asyncio.Task[None]]:
        """Claim each new notification and each delivery due for another attempt, and
        start an attempt at each; the attempts started."""
        at = self.clock()
        until = at + timedelta(seconds=LEASE_SECONDS)
        started = []
        for item in await run_in_threadpool(self.store.pending_notifications):
            event, rows = await run_in_threadpool(self._event, item)
            delivery = await run_in_threadpool(self.store.claim_delivery, item["hook"]["id"],
                                               item["job"]["id"], event, until=until)
            if delivery is None:
                continue  # another server sends it
            if event == "new_rows" and rows == []:
                await run_in_threadpool(self.store.record_attempt, delivery, {
                    "at": at.isoformat(), "code": None, "error": "no new rows"}, "skipped")
                continue
            started.append(self._start(delivery, 0, {**item, "event": event}, rows))
        for item in await run_in_threadpool(self.store.due_deliveries, at):
            if not await run_in_threadpool(self.store.take_delivery, item["delivery"], until):
                continue
            _, rows = await run_in_threadpool(self._event, item)
            started.append(self._start(item["delivery"]["id"], item["delivery"]["attempts"],
                                       item, rows))
        return started

    def _event(self, item: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
        """The event a notification is sent as, and the job's new rows when its hook asks
        for them (None: not asked, or not known)."""
        hook, event = item["hook"], item["event"]
        if event not in ("done", "new_rows") or "new_rows" not in hook["events"]:
            return event, None
        rows = new_rows(self.store, item["job"]["id"])
        return ("done" if "done" in hook["events"] else "new_rows"), rows

    def _start(self, delivery: int, number: int, item: dict[str, Any],
               rows: list[dict[str, Any]] | None) -> asyncio.Task[None]:
        task = asyncio.create_task(self._attempt(delivery, number, item, rows))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return task

    def _body(self, delivery: int, item: dict[str, Any],
              rows: list[dict[str, Any]] | None) -> dict[str, Any]:
        job = item["job"]
        url = f"{self.public_url.rstrip('/')}/tasks/{job['id']}" if self.public_url else None
        body = {"event": item["event"], "delivery": delivery, "job": job,
                "schedule_id": item["hook"]["schedule_id"], "url": url}
        if rows is not None:
            body["new_rows"] = rows
        return dict(to_json(body))

    async def _attempt(self, delivery: int, number: int, item: dict[str, Any],
                       rows: list[dict[str, Any]] | None) -> None:
        """Attempt ``number`` (from 0) of the delivery, recorded; on a failure worth
        another, the next one is due after ``backoff`` × 2 ** ``number`` seconds."""
        hook, body = item["hook"], self._body(delivery, item, rows)
        code, error, next_at = None, None, None
        try:
            if hook["kind"] == "webhook":
                code = await self._post(delivery, hook, item["event"], body)
            else:
                await self._apprise(hook["url"], item["job"], body["url"])
            status = "delivered"
        except _Refused as exc:
            code, error, status = exc.args[0], exc.args[1], "failed"
        except Exception as exc:  # no answer, 5xx, a service that failed: try again
            code = getattr(exc, "code", None)
            error = str(exc) or type(exc).__name__
            status = "failed" if number + 1 >= self.attempts else "sending"
            next_at = self.clock() + timedelta(seconds=self.backoff * 2 ** number)
        await run_in_threadpool(self.store.record_attempt, delivery, {
            "at": self.clock().isoformat(), "code": code, "error": error}, status, next_at)

    async def _post(self, delivery: int, hook: dict[str, Any], event: str,
                    body: dict[str, Any]) -> int:
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "levrt-webhook",
                   "X-Lev-Event": event, "X-Lev-Delivery": str(delivery),
                   SIGNATURE_HEADER: sign(hook["secret"], data)}
        async with httpx.AsyncClient(timeout=SEND_TIMEOUT) as client:
            answer = await client.post(hook["url"], content=data, headers=headers)
        if answer.is_success:
            return answer.status_code
        reason = f"HTTP {answer.status_code} {answer.reason_phrase}".strip()
        if 400 <= answer.status_code < 500 and answer.status_code not in _RETRIED_4XX:
            raise _Refused(answer.status_code, reason)
        failure = RuntimeError(reason)
        failure.code = answer.status_code  # type: ignore[attr-defined]
        raise failure

    async def _apprise(self, url: str, job: dict[str, Any], link: str | None) -> None:
        notifier = apprise.Apprise()
        if not notifier.add(url):
            raise _Refused(None, "apprise does not take this URL: see its list of services")
        title, text = _message(job, link)
        if not await run_in_threadpool(notifier.notify, body=text, title=title):
            raise RuntimeError("apprise could not send it (see the server's log)")

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("the notifier could not look for ended jobs")
            await asyncio.sleep(self.poll)

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop looking and sending; an attempt cut short is made again (by any server)
        once its hold ends."""
        for task in [self._loop, *self._sending]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
