"""The tasks API under ``/api/tasks``: launch a target as a job, list, show, follow, cancel.

Every route needs an API token; the log and its event stream also take a web page's session
cookie (they only read). A task belongs to the user who submitted it: other users get
404 for it, as if it did not exist; an administrator sees every task and job. A task's id is
its job's id; a task still waiting for a runner slot answers under its key ``task-<hex>``,
which keeps answering (as its job) once it has started.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from levrt._cli import _to_json, job_bundle
from levrt.server.auth import CurrentReader, CurrentUser, StoreDep
from levrt.server.runner import Task, TaskRunner
from levrt.store import Store
from levrt.store._store import FINAL_STATUSES

router = APIRouter(prefix="/api/tasks", tags=["tasks"])

# How often a live stream looks for new log lines and status changes.
_EVENT_POLL_SECONDS = 0.3
# A comment line after this much silence, so proxies and clients keep the stream open.
_KEEPALIVE_SECONDS = 15.0

TaskStatus = Literal["queued", "running", "done", "failed", "cancelled"]


class TaskRequest(BaseModel):
    target: str = Field(min_length=3, max_length=1000, description=(
        "PACKAGE_DIR:function (a hub package folder on the server) or module:function of an "
        "installed package, as for lev run"))
    params: dict[str, Any] = Field(default_factory=dict, description="the function's arguments")
    name: str | None = Field(None, min_length=1, max_length=200,
                             description="job name (default: the function's)")

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


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    return _to_json({
        "id": job["id"], "name": job["name"], "target": job["target"], "status": job["status"],
        "progress": job["progress"], "created": job["created_at"],
        "finished": job["finished_at"], "owner": job["owner"], "error": job["error"],
    })


def _visible(job: dict[str, Any], user: dict[str, Any]) -> bool:
    return bool(user["is_admin"]) or job["owner"] == user["name"]


def _find(request: Request, store: Store, user: dict[str, Any],
          task_id: str) -> tuple[dict[str, Any], Task | None]:
    """The task's job (a queued task's as it will be), and the task while it is queued;
    404 for what the user may not see as for what does not exist."""
    job_id, queued = _runner(request).lookup(task_id)
    job = queued.queued_job() if queued is not None else store.get_job(job_id or task_id)
    if job is None or not _visible(job, user):
        raise HTTPException(404, f"no task {task_id!r}")
    return job, queued


@router.post("", status_code=202)
async def submit(body: TaskRequest, request: Request, store: StoreDep,
                 user: CurrentUser) -> dict[str, Any]:
    """Launch ``target`` with ``params`` as a job. Answers once the job exists, with its id
    and status; a task waiting for a free slot answers with its key and ``queued``."""
    name = body.name or body.target.rpartition(":")[2]
    task = await _runner(request).submit(body.target, body.params, name, user["name"])
    if task.job_id is None:
        return {"id": task.key, "status": "queued"}
    job = await run_in_threadpool(store.get_job, task.job_id)
    return {"id": task.job_id, "status": job["status"] if job else "running"}


@router.get("")
def list_tasks(
    request: Request, store: StoreDep, user: CurrentUser,
    status: TaskStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, Any]]:
    """The caller's tasks (an administrator's: everyone's), queued ones first, then the
    newest jobs."""
    queued = [task.queued_job() for task in _runner(request).queued()]
    shown = [job for job in queued if _visible(job, user) and status in (None, "queued")]
    if status != "queued":
        owner = None if user["is_admin"] else user["name"]
        shown += store.list_jobs(limit=limit, status=status, owner=owner)
    return [_summary(job) for job in shown[:limit]]


@router.get("/{task_id}")
def show(task_id: str, request: Request, store: StoreDep, user: CurrentUser) -> dict[str, Any]:
    """The task as ``lev run --json`` prints it: job, runs, documents, log, result."""
    job, queued = _find(request, store, user, task_id)
    if queued is not None:
        return {"job": _to_json(job), "runs": [], "documents": [], "log": [], "result": None}
    return job_bundle(store, job["id"])


@router.get("/{task_id}/logs")
def logs(
    task_id: str, request: Request, store: StoreDep, user: CurrentReader,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[dict[str, Any]]:
    """Log rows with ``seq`` after ``after``, oldest first (``seq``, ``ts``, ``run_id``,
    ``stream``, ``text``)."""
    job, queued = _find(request, store, user, task_id)
    if queued is not None:
        return []
    rows: list[dict[str, Any]] = _to_json(store.get_logs(job["id"], after=after, limit=limit))
    return rows


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _events(request: Request, store: Store, task_id: str,
                  after: int) -> AsyncIterator[str]:
    runner = _runner(request)
    shown: tuple[str, float] | None = None
    quiet = 0.0
    while not await request.is_disconnected():
        job_id, queued = runner.lookup(task_id)
        job = queued.queued_job() if queued else await run_in_threadpool(store.get_job, job_id)
        if job is None:  # cannot happen once _find has seen it; end rather than spin
            yield _event("end", {"status": "unknown", "error": None})
            return
        sent = False
        if (job["status"], job["progress"]) != shown:
            shown = (job["status"], job["progress"])
            yield _event("status", {"id": job["id"], "status": job["status"],
                                    "progress": job["progress"]})
            sent = True
        # Read after the status: a job seen finished has written all its log lines.
        rows = [] if queued else await run_in_threadpool(store.get_logs, job["id"], after=after)
        for row in rows:
            after = row["seq"]
            yield _event("log", _to_json(row))
            sent = True
        if job["status"] in FINAL_STATUSES:
            yield _event("end", {"status": job["status"], "error": job["error"]})
            return
        quiet = 0.0 if sent else quiet + _EVENT_POLL_SECONDS
        if quiet >= _KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keepalive\n\n"
        await asyncio.sleep(_EVENT_POLL_SECONDS)


@router.get("/{task_id}/events", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {}},
          "description": "events status, log (one per line) and end"}})
def events(
    task_id: str, request: Request, store: StoreDep, user: CurrentReader,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    """Server-sent events until the job ends: ``status`` ({id, status, progress}) when it
    changes, ``log`` (a log row) for each line after ``after``, then ``end`` ({status,
    error})."""
    _find(request, store, user, task_id)
    return StreamingResponse(_events(request, store, task_id, after),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/{task_id}/cancel", status_code=202)
async def cancel(task_id: str, request: Request, store: StoreDep,
                 user: CurrentUser) -> dict[str, Any]:
    """Cancel a queued or running task: a running one is interrupted (its job ends
    ``cancelled`` and its runs are stopped); answers with the status at that moment."""
    job, _ = await run_in_threadpool(_find, request, store, user, task_id)
    if job["status"] in FINAL_STATUSES:
        raise HTTPException(409, f"task {task_id!r} has already ended ({job['status']})")
    if not await _runner(request).cancel(task_id):
        raise HTTPException(409, f"task {task_id!r} was not started by this server: stop it "
                            "where it runs")
    job, _ = await run_in_threadpool(_find, request, store, user, task_id)
    return {"id": job["id"], "status": job["status"]}
