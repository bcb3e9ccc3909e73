"""Schedules: task templates the server submits at the slots of a cron expression or an
interval (docs/schedules.md), their API under ``/api/schedules``, their notifications
(``/api/hooks``) and their pages.

The :class:`Scheduler` runs in the app's lifespan: every ``poll`` seconds it asks the store
for the schedules due, claims each slot there (of two servers on one store only one gets it)
and submits the task through the runner. Its clock is injectable, so tests need not wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from levrt.server import sessions, web
from levrt.server.auth import CurrentReader, CurrentUser, StoreDep
from levrt.server.dispatch import Dispatcher, PlacementError, chosen, placement
from levrt.server.params import ParamsInvalid, check_size
from levrt.server.schemas import Body, errors
from levrt.server.settings import Settings
from levrt.server.tasks import TaskRequest, _checked, _invalid, find_job
from levrt.store import HubConflictError, ScheduleError, Store
from levrt.store._common import now
from levrt.store._schedules import HOOK_EVENTS, due_slot, next_slot

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/schedules", tags=["schedules"], responses=errors(401))
hooks_router = APIRouter(tags=["notifications"], responses=errors(401))
pages = APIRouter(include_in_schema=False)

# How often the scheduler looks for due schedules, in seconds: the most a slot fires late.
POLL_SECONDS = 5.0


class Scheduler:
    """Submits the due schedules' tasks through ``dispatcher``, where each schedule places
    them; ``clock`` gives the time (UTC, aware), ``poll`` the seconds between looks."""

    def __init__(self, store: Store, dispatcher: Dispatcher, *,
                 clock: Callable[[], datetime] = now, poll: float = POLL_SECONDS) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.poll = poll
        self._loop: asyncio.Task[None] | None = None

    async def tick(self, schedule_id: int | None = None, *,
                   at: datetime | None = None) -> list[str]:
        """Fire every schedule due now (or ``at``; only ``schedule_id`` when given), once
        each: the ids of the jobs submitted. A slot another server claimed first is left to
        it; of the slots missed meanwhile, only the latest fires."""
        at = at or self.clock()
        fired = []
        for schedule in await run_in_threadpool(self.store.due_schedules, at, schedule_id):
            slot, skipped = due_slot(schedule, at)
            claimed = await run_in_threadpool(self.store.claim_slot, schedule, slot, skipped,
                                              next_slot(schedule, at), at=at)
            if not claimed:
                continue
            try:
                where = await run_in_threadpool(chosen, self.store, schedule["owner"],
                                                schedule["placement"])
                job_id = await self.dispatcher.submit(
                    self.store, where, target=schedule["target"], params=schedule["params"],
                    name=schedule["name"], owner=schedule["owner"],
                    package=schedule["package"])
            except Exception:  # one schedule's failure must not stop the others
                logger.exception("schedule %s of %s: cannot submit its task",
                                 schedule["name"], schedule["owner"])
                continue
            await run_in_threadpool(self.store.record_fire, schedule["id"], slot, job_id)
            fired.append(job_id)
        return fired

    def changed(self) -> None:
        """A schedule was made, paused, resumed or removed: the store, polled, tells."""

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the store was unreachable for a moment: try next time
                logger.exception("the scheduler could not look for due schedules")
            await asyncio.sleep(self.poll)

    def start(self) -> None:
        """Look for due schedules every ``poll`` seconds from now on."""
        self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop


# -- shapes --------------------------------------------------------------------------------


class ScheduleRequest(TaskRequest):
    name: str = Field(min_length=1, max_length=64, description=(  # type: ignore[assignment]
        "the schedule's name, also its jobs' (letters, digits, '_', '.', '-')"))
    cron: str | None = Field(None, max_length=200, description=(
        "five cron fields (minute hour day-of-month month day-of-week), e.g. '0 3 * * *'"))
    interval: int | None = Field(None, description="seconds between slots (at least 60)")
    timezone: str = Field("UTC", max_length=64, description="IANA zone the cron reads in")


class HookRequest(Body):
    kind: Literal["webhook", "apprise"] = Field(description=(
        "webhook: a signed JSON POST; apprise: any apprise URL (mailto://, slack://...)"))
    url: str = Field(min_length=3, max_length=2000, description="never shown again")
    events: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=lambda: ["done", "failed"], max_length=16,
        description=f"some of {', '.join(HOOK_EVENTS)}")


# The largest hook id the store keeps (a 32-bit integer column, in PostgreSQL).
_MAX_ID = 2**31 - 1


# Apprise services that act on the server's own machine, not over the network: syslog://
# writes to its local syslog socket.
_LOCAL_APPRISE = frozenset({"syslog"})


def _check_url(url: str) -> None:
    """ScheduleError (``url``) for a URL no request could be sent to: one that does not
    parse (``http://[::1``), with a port of 0 or past 65535, or with spaces or control
    characters, and an apprise service local to the server (the store checks the scheme of a
    webhook)."""
    if any(char.isspace() or not char.isprintable() for char in url):
        raise ScheduleError("url", "the URL holds spaces or control characters: encode them")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ScheduleError("url", f"not a URL: {exc}") from None
    if port == 0:
        raise ScheduleError("url", "port 0 takes no requests: give the port that listens")
    if parts.scheme in _LOCAL_APPRISE:
        raise ScheduleError("url", "notifications go over the network, not to the server's "
                            "own syslog: use rsyslog://HOST for a syslog server")


def _refused(exc: ScheduleError | PlacementError) -> HTTPException:
    return _invalid({(exc.field,): str(exc)})


def _mine(store: Store, user: dict[str, Any], name: str) -> dict[str, Any]:
    schedule = store.get_schedule(user["name"], name)
    if schedule is None:
        raise HTTPException(404, f"you have no schedule {name!r}")
    return schedule


def _create(store: Store, user: dict[str, Any], body: ScheduleRequest,
            settings: Settings) -> dict[str, Any]:
    target, params, package = _checked(store, user, body)
    try:
        check_size(params, settings.max_params_bytes)  # as a task's: each fire submits them
    except ParamsInvalid as exc:
        raise _invalid({("params", name): msg for name, msg in exc.errors.items()},
                       413) from None
    try:
        where = placement(store, user["name"], body.device, body.pool, body.spread)
        return store.add_schedule(user["name"], body.name, target=target, params=params,
                                  package=package, placement=where and str(where),
                                  cron=body.cron, interval=body.interval,
                                  timezone=body.timezone, limit=settings.max_per_user)
    except (ScheduleError, PlacementError) as exc:
        raise _refused(exc) from None


def _details(store: Store, user: dict[str, Any], schedule: dict[str, Any]) -> dict[str, Any]:
    return {**schedule, "fires": store.list_fires(schedule["id"]),
            "hooks": store.list_hooks(user["name"], schedule_id=schedule["id"]),
            "deliveries": store.list_deliveries(user["name"], schedule_id=schedule["id"])}


def _add_hook(request: Request, store: Store, user: dict[str, Any], body: HookRequest, *,
              schedule_id: int | None = None, job_id: str | None = None) -> dict[str, Any]:
    try:
        _check_url(body.url)
        hook, secret = store.add_hook(user["name"], kind=body.kind, url=body.url,
                                      events=body.events, schedule_id=schedule_id,
                                      job_id=job_id,
                                      limit=request.app.state.settings.max_per_user)
    except ScheduleError as exc:
        raise _refused(exc) from None
    return {**hook, "secret": secret}


# -- the API -------------------------------------------------------------------------------


@router.post("", status_code=201, responses=errors(400, 409, 413, 422))
def add_schedule(body: ScheduleRequest, request: Request, store: StoreDep,
                 user: CurrentUser) -> dict[str, Any]:
    """A schedule firing ``target`` with ``params`` (checked as for a task; the version
    is pinned now) at each slot of ``cron`` in ``timezone``, or every ``interval`` seconds.
    422 names the field: a cron expression that does not parse, an unknown zone, an
    interval under 60 s, both or neither, a device or pool you do not have. 413 names the
    parameters past the server's ``max_params_bytes``, as for a task. 409 when the name is
    taken."""
    made = _create(store, user, body, request.app.state.settings)
    _changed(request)
    return made


@router.get("")
def list_schedules(store: StoreDep, user: CurrentReader) -> list[dict[str, Any]]:
    """The caller's schedules by name, each with its ``next_fire`` (UTC)."""
    return store.list_schedules(user["name"])


@router.get("/{name}", responses=errors(404))
def show_schedule(name: str, store: StoreDep, user: CurrentReader) -> dict[str, Any]:
    """The schedule with its latest ``fires`` (slot, skipped older slots, job and its
    status), ``hooks`` (URLs redacted) and ``deliveries`` (each with its attempts)."""
    return _details(store, user, _mine(store, user, name))


@router.post("/{name}/pause", responses=errors(404))
def pause_schedule(name: str, store: StoreDep, user: CurrentUser,
                   request: Request) -> dict[str, Any]:
    """Stop firing it until resumed."""
    return _pause(request, store, user, name, True)


@router.post("/{name}/resume", responses=errors(404))
def resume_schedule(name: str, store: StoreDep, user: CurrentUser,
                    request: Request) -> dict[str, Any]:
    """Fire it again, from its first slot after now (slots passed while paused are not)."""
    return _pause(request, store, user, name, False)


def _pause(request: Request, store: Store, user: dict[str, Any], name: str,
           paused: bool) -> dict[str, Any]:
    schedule = store.pause_schedule(user["name"], name, paused)
    if schedule is None:
        raise HTTPException(404, f"you have no schedule {name!r}")
    _changed(request)
    return schedule


def _changed(request: Request) -> None:
    request.app.state.scheduler.changed()


@router.delete("/{name}", status_code=204, responses=errors(404))
def remove_schedule(name: str, store: StoreDep, user: CurrentUser,
                    request: Request) -> Response:
    """Remove the schedule and its hooks; its jobs stay."""
    if not store.remove_schedule(user["name"], name):
        raise HTTPException(404, f"you have no schedule {name!r}")
    _changed(request)
    return Response(status_code=204)


@router.post("/{name}/hooks", status_code=201, responses=errors(400, 404, 409, 422))
def add_schedule_hook(name: str, body: HookRequest, request: Request, store: StoreDep,
                      user: CurrentUser) -> dict[str, Any]:
    """Notify on ``events`` of the schedule's jobs. For a webhook the answer's ``secret``
    signs each body (``X-Lev-Signature: sha256=<hex HMAC>``): it is shown this once."""
    return _add_hook(request, store, user, body, schedule_id=_mine(store, user, name)["id"])


@hooks_router.post("/api/tasks/{task_id}/hooks", status_code=201,
                   responses=errors(400, 404, 409, 422))
def add_task_hook(task_id: str, body: HookRequest, request: Request, store: StoreDep,
                  user: CurrentUser) -> dict[str, Any]:
    """Notify on ``events`` of this task's job (as for a schedule's hooks)."""
    return _add_hook(request, store, user, body, job_id=find_job(store, user, task_id)["id"])


@hooks_router.get("/api/tasks/{task_id}/hooks", responses=errors(404))
def task_hooks(task_id: str, store: StoreDep, user: CurrentReader) -> dict[str, Any]:
    """The task's own ``hooks`` (URLs redacted) and the ``deliveries`` about its job, by
    its hooks or its schedule's, newest first (each with its attempts)."""
    job = find_job(store, user, task_id)
    owner = job["owner"] or user["name"]
    return {"hooks": store.list_hooks(owner, job_id=job["id"]),
            "deliveries": store.list_deliveries(owner, job_id=job["id"])}


@hooks_router.get("/api/hooks")
def list_hooks(store: StoreDep, user: CurrentReader) -> list[dict[str, Any]]:
    """The caller's hooks, URLs redacted, secrets never shown."""
    return store.list_hooks(user["name"])


@hooks_router.get("/api/hooks/deliveries")
def list_deliveries(
    store: StoreDep, user: CurrentReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """The delivery log of the caller's hooks, newest first: per hook and job the
    ``event``, ``status`` (sending, delivered, failed, skipped) and each attempt's ``at``,
    ``code`` (the HTTP status, if any) and ``error``."""
    return store.list_deliveries(user["name"], limit=limit)


@hooks_router.delete("/api/hooks/{hook_id}", status_code=204, responses=errors(404))
def remove_hook(hook_id: Annotated[int, Path(le=_MAX_ID)], store: StoreDep,
                user: CurrentUser) -> Response:
    if not store.remove_hook(user["name"], hook_id):
        raise HTTPException(404, f"you have no hook {hook_id}")
    return Response(status_code=204)


# -- the pages -----------------------------------------------------------------------------


async def _page(request: Request, status_code: int = 200, **context: Any) -> Response:
    user = await web._user(request)
    store: Store = request.app.state.store

    def read() -> list[dict[str, Any]]:
        return [_details(store, user, schedule)
                for schedule in store.list_schedules(user["name"])]

    return web._render(request, "schedules.html", status_code, user=user,
                       schedules=await run_in_threadpool(read), events=HOOK_EVENTS, **context)


@pages.get("/schedules", response_class=HTMLResponse)
async def schedules_page(request: Request) -> Response:
    return await _page(request)


def _form_timing(form: Any) -> tuple[str | None, int | None]:
    cron = str(form.get("cron") or "").strip() or None
    interval = str(form.get("interval") or "").strip()
    if not interval:
        return cron, None
    try:
        return cron, int(interval)
    except ValueError:
        raise ScheduleError("interval", f"the interval is a number of seconds, not "
                            f"{interval!r}") from None


async def _schedule_form(request: Request, task_id: str, status_code: int = 200,
                         **context: Any) -> Response:
    user = await web._user(request)
    job = await web._users_job(request, user, task_id)
    if job is None or not job["target"]:
        return web._not_found(request, user, f"no task {task_id!r} to schedule")
    context.setdefault("form", {"name": job["name"], "cron": "0 3 * * *", "interval": "",
                                "timezone": "UTC", "where": job["placement"] or ""})
    places = await run_in_threadpool(web._places, request.app.state.store, user,
                                     context["form"]["where"])
    return web._render(request, "schedule_form.html", status_code, user=user, job=job,
                       task_id=task_id, params_json=json.dumps(job["params"], indent=2),
                       places=places, **context)


@pages.get("/tasks/{task_id}/schedule", response_class=HTMLResponse)
async def schedule_form(request: Request, task_id: str) -> Response:
    """The form that makes a schedule of a task: its target, version and parameters."""
    return await _schedule_form(request, task_id)


@pages.post("/tasks/{task_id}/schedule", response_class=HTMLResponse)
async def schedule_task(request: Request, task_id: str) -> Response:
    user = await web._user(request)
    form = await sessions.check_csrf(request)
    job = await web._users_job(request, user, task_id)
    if job is None or not job["target"]:
        return web._not_found(request, user, f"no task {task_id!r} to schedule")
    values = {key: str(form.get(key) or "").strip()
              for key in ("name", "cron", "interval", "timezone", "where")}
    store: Store = request.app.state.store
    try:
        cron, interval = _form_timing(form)
        where = await run_in_threadpool(chosen, store, user["name"], values["where"])
        await run_in_threadpool(
            lambda: store.add_schedule(
                user["name"], values["name"], target=job["target"],
                params=dict(job["params"] or {}), package=job["package"],
                placement=where and str(where), cron=cron, interval=interval,
                timezone=values["timezone"] or "UTC",
                limit=request.app.state.settings.max_per_user))
    except (ScheduleError, PlacementError, HubConflictError) as exc:
        field = "name" if isinstance(exc, HubConflictError) else exc.field
        return await _schedule_form(request, task_id, 409 if isinstance(
            exc, HubConflictError) else 400, form=values, error=str(exc), error_field=field)
    _changed(request)
    return RedirectResponse("/schedules", 303)


@pages.post("/schedules/{name}/{action}")
async def schedule_action(request: Request, name: str, action: str) -> Response:
    """Pause, resume or remove a schedule, or add a hook to it, from the page."""
    user = await web._user(request)
    form = await sessions.check_csrf(request)
    store: Store = request.app.state.store
    if action in ("pause", "resume"):
        done = await run_in_threadpool(store.pause_schedule, user["name"], name,
                                       action == "pause")
    elif action == "remove":
        done = await run_in_threadpool(store.remove_schedule, user["name"], name)
    elif action == "hooks":
        return await _page_hook(request, user, store, name, form)
    else:
        return web._not_found(request, user, f"no action {action!r}")
    if not done:
        return await _page(request, 404, error=f"you have no schedule {name!r}")
    _changed(request)
    return RedirectResponse("/schedules", 303)


async def _page_hook(request: Request, user: dict[str, Any], store: Store, name: str,
                     form: Any) -> Response:
    schedule = await run_in_threadpool(store.get_schedule, user["name"], name)
    if schedule is None:
        return await _page(request, 404, error=f"you have no schedule {name!r}")
    try:
        added = await _form_hook(request, store, user, form, schedule_id=schedule["id"])
    except ScheduleError as exc:
        return await _page(request, 400, error=f"{exc.field}: {exc}")
    except HubConflictError as exc:
        return await _page(request, 409, error=str(exc))
    return await _page(request, added_hook={**added, "to": name})


async def _form_hook(request: Request, store: Store, user: dict[str, Any], form: Any,
                     **of: Any) -> dict[str, Any]:
    """The hook a page's form adds, with its secret (shown this once)."""
    url = str(form.get("url") or "").strip()
    _check_url(url)
    hook, secret = await run_in_threadpool(
        lambda: store.add_hook(user["name"], kind=str(form.get("kind") or ""), url=url,
                               events=[str(event) for event in form.getlist("events")],
                               limit=request.app.state.settings.max_per_user, **of))
    return {**hook, "secret": secret}


@pages.post("/tasks/{task_id}/hooks", response_class=HTMLResponse)
async def task_hook(request: Request, task_id: str) -> Response:
    """Add a notification to a task from its page."""
    user = await web._user(request)
    form = await sessions.check_csrf(request)
    job = await web._users_job(request, user, task_id)
    if job is None:
        return web._not_found(request, user, f"no task {task_id!r}")
    try:
        added = await _form_hook(request, request.app.state.store, user, form,
                                 job_id=job["id"])
    except (ScheduleError, HubConflictError) as exc:
        field = f"{exc.field}: " if isinstance(exc, ScheduleError) else ""
        return await web.render_task(request, task_id, 400 if field else 409,
                                     hook_error=f"{field}{exc}")
    return await web.render_task(request, task_id, added_hook={**added, "to": "this task"})


def register(app: Any, dispatcher: Dispatcher, store: Store) -> Scheduler:
    """Add the routes and pages to ``app``; the scheduler that fires the schedules (with
    Temporal, :mod:`levrt.server.temporal_schedules` drives it)."""
    for routes in (router, hooks_router, pages):
        app.include_router(routes)
    return Scheduler(store, dispatcher)

