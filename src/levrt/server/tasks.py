"""The tasks API under ``/api/tasks``: launch a target as a job, list, show, follow, cancel.

Every route needs an API token; the log and its event stream also take a web page's session
cookie (they only read). A task belongs to the user who submitted it: other users get
404 for it, as if it did not exist; an administrator sees every task and job. A task's id is
its job's id from the moment it is submitted: it is recorded ``queued`` until a runner slot
is free.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field, field_validator
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from levrt._job_json import job_bundle, to_json
from levrt._status import FINAL_STATUSES, JobStatus
from levrt.server import dispatch, published
from levrt.server.auth import CurrentReader, CurrentUser, StoreDep
from levrt.server.paging import Page
from levrt.server.params import ParamsInvalid, check_params
from levrt.server.runner import TaskRunner
from levrt.server.schemas import Body, errors
from levrt.server.upload import OwnFiles, keep_file, limited_form
from levrt.store import Store
from levrt.store._store import LOG_PAGE_BYTES, LOG_PAGE_ROWS

router = APIRouter(prefix="/api/tasks", tags=["tasks"], responses=errors(401))

# How often a live stream looks for new log lines and status changes.
_EVENT_POLL_SECONDS = 0.3
# A comment line after this much silence, so proxies and clients keep the stream open.
_KEEPALIVE_SECONDS = 15.0


class TaskRequest(Body):
    target: str = Field(min_length=3, max_length=1000, description=(
        "a published tool mode or workflow: lev.<user>.<tool>.<module>:<function> (its "
        "qualname in the manifest) or lev.<user>.<tool>:<function> (an export of the "
        "package); an administrator may also give any target lev run takes (module:function, "
        "PACKAGE_DIR:function) on the server"))
    free_form: ClassVar[frozenset[str]] = frozenset({"params"})

    params: dict[str, Any] = Field(default_factory=dict, description="the function's arguments")
    name: str | None = Field(None, min_length=1, max_length=200,
                             description="job name (default: the function's)")
    version: str | None = Field(None, min_length=1, max_length=100, description=(
        "for a published package's target: the version to run (default: the latest)"))
    device: str | None = Field(None, min_length=1, max_length=64, description=(
        "run it on this device of yours (default: the server's own runner)"))
    pool: str | None = Field(None, min_length=1, max_length=64, description=(
        "run it on whichever device of this pool of yours takes it first"))
    spread: bool = Field(False, description=(
        "with pool: also spread the job's runs over the pool's agents, each run on the "
        "first with a free slot"))

    @field_validator("target")
    @classmethod
    def _target_form(cls, value: str) -> str:
        # lev run would take a leading dash for an option of its own.
        where, colon, attr = value.rpartition(":")
        if value.startswith("-") or not colon or not where or not attr:
            raise ValueError("target must be module.path:function or PACKAGE_DIR:function")
        return value


def _runner(request: Request) -> TaskRunner:
    runner: TaskRunner = request.app.state.runner
    return runner


def device_filter(store: Store, user: dict[str, Any], device: str) -> dict[str, Any]:
    """The :meth:`~levrt.store.Store.list_jobs` filters of the tasks of ``device``, a name as
    the devices page lists it: this server's runner (named as its host) has the tasks not
    sent to a device that ran on this host or wait for its slots; one of the user's agent
    devices has those sent to it, and those sent to one of its pools whose ``lev run`` ran on
    the host it reported. LookupError, in words, for any other name or a device that has not
    reported its host yet."""
    here = socket.gethostname()
    if device == here:
        return {"driver_host": here}
    found = store.get_device(user["name"], device)
    if found is None:
        raise LookupError(f"no device {device!r}: give this server's runner ({here}) or one "
                          "of your devices (the devices page lists them)")
    host = (found["facts"] or {}).get("hostname")
    if not host:
        raise LookupError(f"device {device!r} has not reported its host yet: start its agent")
    return {"driver_host": host, "device": device}


def _dispatcher(request: Request) -> dispatch.Dispatcher:
    dispatcher: dispatch.Dispatcher = request.app.state.dispatcher
    return dispatcher


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    return to_json({
        "id": job["id"], "name": job["name"], "target": job["target"], "status": job["status"],
        "progress": job["progress"], "created": job["created_at"],
        "finished": job["finished_at"], "owner": job["owner"], "error": job["error"],
    })


def _visible(job: dict[str, Any], user: dict[str, Any]) -> bool:
    return bool(user["is_admin"]) or job["owner"] == user["name"]


def find_job(store: Store, user: dict[str, Any], task_id: str) -> dict[str, Any]:
    """The task's job; 404 for what the user may not see as for what does not exist."""
    job = store.get_job(task_id)
    if job is None or not _visible(job, user):
        raise HTTPException(404, f"no task {task_id!r}")
    return job


@router.post("", status_code=202, responses=errors(400, 413, 422))
async def submit(body: TaskRequest, request: Request, store: StoreDep,
                 user: CurrentUser) -> dict[str, Any]:
    """Launch ``target`` with ``params`` as a job: it is recorded ``queued`` and starts
    when a runner slot is free. Answers with the job's id and status.

    A published package's target is checked against its manifest first: 422 names each
    parameter that is unknown, missing or does not fit its type or pattern (``loc``
    ``["body", "params", NAME]``), and the task runs that version's published files."""
    target, params, package = await run_in_threadpool(_checked, store, user, body)
    name = body.name or target.rpartition(":")[2]
    try:
        where = await run_in_threadpool(dispatch.placement, store, user["name"], body.device,
                                        body.pool, body.spread)
    except dispatch.PlacementError as exc:
        raise _invalid({(exc.field,): str(exc)}) from None
    try:
        job_id = await _dispatcher(request).submit(store, where, target=target, params=params,
                                                   name=name, owner=user["name"],
                                                   package=package)
    except ParamsInvalid as exc:  # more parameters than a task takes
        raise _invalid({("params", field): msg for field, msg in exc.errors.items()},
                       413) from None
    except RuntimeError as exc:  # Temporal cannot be reached, or is not configured
        raise HTTPException(503, str(exc)) from None
    return {"id": job_id, "status": "queued"}


def _invalid(errors: dict[tuple[str, ...], str], status: int = 422) -> HTTPException:
    """422 (or ``status``) in FastAPI's own shape, one item per bad field."""
    return HTTPException(status, [{"loc": ["body", *loc], "msg": msg, "type": "value_error"}
                                  for loc, msg in errors.items()])


def _checked(store: Store, user: dict[str, Any],
             body: TaskRequest) -> tuple[str, dict[str, Any], str | None]:
    """The target to run, its parameters as checked, and ``package==version`` for a
    published package's."""
    try:
        found = published.resolve(store, body.target, body.version)
    except LookupError as exc:
        raise _invalid({("target",): str(exc)}) from None
    if found is None:
        # Anything else lev run can load runs code of the server's choosing, not the hub's.
        if not user["is_admin"]:
            raise _invalid({("target",): f"{body.target!r} is not a tool mode or workflow "
                            "of a package on this hub (lev.<user>.<tool>.<module>:<function>); "
                            "only an administrator may run other targets"})
        if body.version is not None:
            raise _invalid({("version",): "only a published package's target has versions"})
        return body.target, body.params, None
    try:
        # A File is a digest of the user's own uploads, never another user's.
        params = check_params(found.entry, body.params, OwnFiles(store, user["name"]))
    except ParamsInvalid as exc:
        raise _invalid({("params", name): msg for name, msg in exc.errors.items()}) from None
    return found.entry["qualname"], params, found.pin


@router.post("/files", status_code=201, responses=errors(400, 413, 422))
async def upload_file(request: Request, store: StoreDep, user: CurrentUser) -> dict[str, Any]:
    """Keep a file for a task's ``levrt.File`` parameter: multipart/form-data with one
    ``file`` part, at most ``LEV_SERVER_MAX_UPLOAD_BYTES``. Answers with its ``digest``
    (``sha256:<hex>``, the parameter's value), ``name`` and ``size``."""
    settings = request.app.state.settings
    form = await limited_form(request, settings.max_upload_bytes, max_files=1, max_fields=1)
    kept = await keep_file(store, form.get("file"), user["name"])
    if kept is None:
        raise _invalid({("file",): "send the file as the multipart/form-data part 'file'"})
    return kept


@router.get("", responses=errors(422))
def list_tasks(
    request: Request, response: Response, store: StoreDep, user: CurrentUser,
    status: JobStatus | None = None,
    q: Annotated[str | None, Query(max_length=200,
                                   description="text the name or target holds")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="from 1")] = 1,
    limit: Annotated[int, Query(ge=1, le=1000, description="tasks per page")] = 50,
    device: Annotated[str | None, Query(
        max_length=255, description="only the tasks of this device: this server's runner "
        "(its host name) or one of your devices, as GET /api/devices names them")] = None,
) -> list[dict[str, Any]]:
    """A page of the caller's tasks (an administrator's: everyone's), newest first. The
    ``X-Total-Count`` header says how many match over all pages, and ``Link`` gives the
    ``next`` and ``prev`` pages. ``device`` keeps the tasks whose ``lev run`` ran on that
    device's machine (and, for this server's runner, the queued ones); 422 for a name that
    is no device of the caller's."""
    owner = None if user["is_admin"] else user["name"]
    try:
        on = device_filter(store, user, device) if device else {}
    except LookupError as exc:
        raise HTTPException(422, [{"loc": ["query", "device"], "msg": str(exc),
                                   "type": "value_error"}]) from None
    total = store.count_jobs(status=status, owner=owner, search=q, **on)
    shown = Page(page, limit, total)
    shown.set_headers(request, response)
    found = store.list_jobs(limit=limit, offset=shown.offset, status=status, owner=owner,
                            search=q, **on)
    return [_summary(job) for job in found]


@router.get("/{task_id}", responses=errors(404))
def show(task_id: str, store: StoreDep, user: CurrentUser) -> dict[str, Any]:
    """The task as ``lev run --json`` prints it: job, runs, documents, the log's tail (the
    last rows, up to about 1 MiB; ``log_more`` is true when earlier rows exist: read them
    from ``/logs``), result."""
    return job_bundle(store, find_job(store, user, task_id)["id"])


@router.get("/{task_id}/logs", responses=errors(404, 422))
def logs(
    task_id: str, store: StoreDep, user: CurrentReader,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=LOG_PAGE_ROWS)] = LOG_PAGE_ROWS,
) -> list[dict[str, Any]]:
    """One page of log rows with ``seq`` after ``after``, oldest first (``seq``, ``ts``,
    ``run_id``, ``stream``, ``text``): at most ``limit`` rows and about 4 MiB of text. The
    next page is ``after`` = the last row's ``seq``; an empty page is the end so far."""
    job = find_job(store, user, task_id)
    rows: list[dict[str, Any]] = to_json(store.get_logs(
        job["id"], after=after, limit=limit, max_bytes=LOG_PAGE_BYTES))
    return rows


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _events(request: Request, store: Store, job_id: str,
                  after: int) -> AsyncIterator[str]:
    shown: tuple[str, float] | None = None
    counted = (0, 0)
    quiet = 0.0
    while not await request.is_disconnected():
        job = await run_in_threadpool(store.get_job, job_id)
        if job is None:  # cannot happen once find_job has seen it; end rather than spin
            yield _event("end", {"status": "unknown", "error": None})
            return
        sent = False
        if (job["status"], job["progress"]) != shown:
            shown = (job["status"], job["progress"])
            yield _event("status", {"id": job["id"], "status": job["status"],
                                    "progress": job["progress"]})
            sent = True
        runs = await run_in_threadpool(store.count_runs, job_id)
        if runs != counted:
            counted = runs
            yield _event("runs", {"runs": runs[0], "finished": runs[1]})
            sent = True
        # Read after the status: a job seen finished has written all its log lines. One
        # page at a time, so that a huge log never sits in memory whole.
        rows = await run_in_threadpool(store.get_logs, job_id, after=after,
                                       limit=LOG_PAGE_ROWS, max_bytes=LOG_PAGE_BYTES)
        for row in rows:
            after = row["seq"]
            yield _event("log", to_json(row))
            sent = True
        if rows:
            continue  # more may be waiting: no pause until the log is caught up
        if job["status"] in FINAL_STATUSES:
            yield _event("end", {"status": job["status"], "error": job["error"]})
            return
        quiet = 0.0 if sent else quiet + _EVENT_POLL_SECONDS
        if quiet >= _KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keepalive\n\n"
        await asyncio.sleep(_EVENT_POLL_SECONDS)


class EventStreams:
    """Open event streams per user, at most ``limit`` each: every stream polls the store,
    so a user opening hundreds would slow the server for everyone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, user: str) -> int:
        return self._open.get(user, 0)

    def open(self, user: str) -> Callable[[], None] | None:
        """A new stream's closer (to call once it ends; more calls do nothing), or None
        when the user has ``limit`` streams open."""
        with self._lock:
            if self._open.get(user, 0) >= self.limit:
                return None
            self._open[user] = self._open.get(user, 0) + 1
        closed = False

        def close() -> None:
            nonlocal closed
            with self._lock:
                if not closed:
                    closed = True
                    self._open[user] -= 1
                    if not self._open[user]:
                        del self._open[user]

        return close


async def _closing(stream: AsyncIterator[str], close: Callable[[], None]) -> AsyncIterator[str]:
    try:
        async for chunk in stream:
            yield chunk
    finally:
        close()


@router.get("/{task_id}/events", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {}},
          "description": "events status, runs, log (one per line) and end"},
    **errors(404, 422, 429)})
def events(
    task_id: str, request: Request, store: StoreDep, user: CurrentReader,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    """Server-sent events until the job ends: ``status`` ({id, status, progress}) when it
    changes, ``runs`` ({runs, finished}: how many runs, how many ended) when that changes,
    ``log`` (a log row) for each line after ``after``, then ``end`` ({status, error}).
    429 when the user has ``LEV_SERVER_MAX_EVENT_STREAMS`` streams open already."""
    job = find_job(store, user, task_id)
    streams: EventStreams = request.app.state.event_streams
    close = streams.open(user["name"])
    if close is None:
        raise HTTPException(429, f"you have {streams.limit} live task streams open (task "
                            "pages or lev task follow): close some and try again",
                            headers={"Retry-After": "10"})
    # Closed when the stream ends, and after the response in case it never started.
    return StreamingResponse(_closing(_events(request, store, job["id"], after), close),
                             media_type="text/event-stream", background=BackgroundTask(close),
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def cancel_dispatched(request: Request, store: Store, job: dict[str, Any]) -> None:
    """Cancel a task sent to a device or pool: through its workflow, which interrupts the
    agent's ``lev run``; one no agent took yet ends ``cancelled`` at once. 503 when
    Temporal cannot be reached."""
    try:
        await _dispatcher(request).cancel(job["id"])
    except RuntimeError as exc:
        raise HTTPException(503, str(exc)) from None
    except Exception as exc:  # temporalio's RPCError: the workflow is gone already
        if job["status"] != "queued":
            raise HTTPException(409, f"task {job['id']!r} cannot be cancelled: {exc}") from None
    if job["status"] == "queued":
        await run_in_threadpool(store.end_unfinished_job, job["id"], "cancelled",
                                error="cancelled before it started")


@router.post("/{task_id}/cancel", status_code=202, responses=errors(404, 409))
async def cancel(task_id: str, request: Request, store: StoreDep,
                 user: CurrentUser) -> dict[str, Any]:
    """Cancel a queued or running task: a running one is interrupted (its job ends
    ``cancelled`` and its runs are stopped); answers with the status at that moment."""
    job = await run_in_threadpool(find_job, store, user, task_id)
    if job["status"] in FINAL_STATUSES:
        raise HTTPException(409, f"task {task_id!r} has already ended ({job['status']})")
    if job["placement"] is not None:
        await cancel_dispatched(request, store, job)
    elif not await _runner(request).cancel(job["id"]):
        raise HTTPException(409, f"task {task_id!r} was not started by this server: stop it "
                            "where it runs")
    job = await run_in_threadpool(find_job, store, user, task_id)
    return {"id": job["id"], "status": job["status"]}
