"""Where tasks run: the server's own runner and the user's devices, machines where ``lev
agent`` runs (docs/distributed.md).

Users add and remove devices (``/api/devices``, the devices page); an agent trades the
one-time code for a device token (``POST /api/agent/enrol``) and then reports itself
(``POST /api/agent/heartbeat``). A device token opens the ``/api/agent/`` routes and nothing
else, and no user's token or session opens those: see :func:`current_device`.

Each device polls Temporal task queues named here (:func:`device_queue`, :func:`pool_queue`);
:func:`ask_device` runs one of its activities through Temporal and returns the answer.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from levrt._config import extra_hint
from levrt._status import UNFINISHED_STATUSES
from levrt.executors.docker import engine_facts
from levrt.server import dispatch, published, sessions, web
from levrt.server.auth import CurrentReader, CurrentUser, StoreDep, make_job_token, server_secret
from levrt.server.dispatch import device_queue, pool_queue
from levrt.server.runner import local_device
from levrt.server.schemas import Body, errors
from levrt.store import EnrolmentError, HubConflictError, Store

router = APIRouter(prefix="/api/devices", tags=["devices"], responses=errors(401))
agent_router = APIRouter(prefix="/api/agent", tags=["agent"])
pages = APIRouter(include_in_schema=False)

# An agent heartbeats this often (seconds); a device silent for OFFLINE_AFTER is offline.
HEARTBEAT_INTERVAL = 5.0
OFFLINE_AFTER = timedelta(seconds=3 * HEARTBEAT_INTERVAL)
# The workflow every agent runs on its queues to answer one activity (levrt.agent).
ASK_WORKFLOW = "levrt.ask"


# -- shapes --------------------------------------------------------------------------------


class DeviceRequest(Body):
    name: str = Field(description="1-64 lower-case letters, digits, '_', '.' or '-'")
    pools: list[str] = Field(default_factory=list, max_length=32,
                             description="pools the device joins (same rule as names)")


class DeviceCode(BaseModel):
    name: str
    pools: list[str]
    code: str = Field(description="the one-time enrolment code: shown in this answer only")
    code_expires_at: datetime
    command: str = Field(description="what to run on the device's machine")


class EnrolRequest(Body):
    code: str = Field(min_length=1, max_length=200)


# The largest count the store keeps (a 32-bit integer column, in PostgreSQL).
MAX_COUNT = 2**31 - 1
_Name = Annotated[str, Field(max_length=1000)]


class Facts(Body):
    """What an agent reports of its machine: a :class:`~levrt.server.schemas.Body`, so that
    its keys are checked as text too (a lone surrogate in one made every listing of the
    owner's devices fail)."""

    executors: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=16,
        description="executors its runs can use: process, docker")
    engine: str = Field("", max_length=1000,
                        description="the Docker API URL that answered (empty: none did)")
    engine_version: str = Field("", max_length=200,
                                description="that engine's product and version")
    images: list[_Name] = Field(default_factory=list, max_length=10_000,
                                description="image references its container engine holds")
    tools: dict[_Name, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=10_000,
        description="tool binaries on its PATH: name -> path")
    cores: int = Field(0, ge=0, le=MAX_COUNT)
    memory: int = Field(0, ge=0, le=2**63 - 1, description="bytes")
    version: str = Field("", max_length=64, description="its levrt version")
    hostname: str = Field("", max_length=255)


class Heartbeat(Body):
    running: int = Field(0, ge=0, le=MAX_COUNT, description="runs going on the device now")
    slots: int = Field(0, ge=0, le=MAX_COUNT, description="runs it takes at once")
    facts: Facts | None = Field(None, description="sent at start and when they change")


class Queues(BaseModel):
    device: str
    pools: list[str]


class AgentConfig(BaseModel):
    """What an agent needs from the server: who it is, its queues, where Temporal is."""

    owner: str
    name: str
    pools: list[str]
    queues: Queues
    temporal: str | None = Field(description="HOST:PORT of the Temporal frontend, if known")
    heartbeat_interval: float


class Enrolled(AgentConfig):
    token: str = Field(description="the device token: in this answer only")


# -- who is asking -------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, scheme_name="DeviceToken",
                     description="A device token: lev agent --enrol CODE")


async def current_device(
    store: StoreDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> dict[str, Any]:
    """The device of the request's Bearer device token; 401 for anything else (an API
    token, a session)."""
    if bearer is None:
        raise HTTPException(401, "missing device token: send 'Authorization: Bearer <device "
                            "token>' (lev agent --enrol CODE gets one)",
                            headers={"WWW-Authenticate": "Bearer"})
    device = await run_in_threadpool(store.resolve_device_token, bearer.credentials)
    if device is None:
        raise HTTPException(401, "not a device token, or its device was removed: enrol again "
                            "(lev device add NAME, then lev agent --enrol CODE)",
                            headers={"WWW-Authenticate": "Bearer"})
    return device


CurrentDevice = Annotated[dict[str, Any], Depends(current_device)]


# -- views ---------------------------------------------------------------------------------


def device_status(device: dict[str, Any], now: datetime | None = None) -> str:
    """``online`` when the device's agent was heard from within :data:`OFFLINE_AFTER`,
    ``offline`` when it was earlier, ``not enrolled`` before its agent enrolled."""
    if not device["enrolled"]:
        return "not enrolled"
    seen = device["last_seen"]
    now = now or datetime.now(timezone.utc)
    return "online" if seen is not None and now - seen <= OFFLINE_AFTER else "offline"


def agent_view(device: dict[str, Any]) -> dict[str, Any]:
    """A device as ``GET /api/devices`` shows it."""
    facts = device["facts"] or {}
    executors = facts.get("executors") or []
    executor = executors[0] if executors else "none"
    return {"name": device["name"], "kind": "agent", "status": device_status(device),
            "pools": device["pools"], "executor": executor,
            "executor_reason": _agent_reason(executor, facts, device["facts"] is not None),
            "running": device["running"], "slots": device["slots"], "facts": device["facts"],
            "last_seen": device["last_seen"], "code_expires_at": device["code_expires_at"]}


def _agent_reason(executor: str, facts: dict[str, Any], reported: bool) -> str:
    """Why an agent's runs get ``executor``, from the facts it reported: its executors are
    ``docker`` when a Docker API answered it, then ``process`` when it has bubblewrap."""
    if not reported:
        return "not known until its agent reports its facts"
    if executor == "docker":
        engine = facts.get("engine") or "its machine"
        version = f" ({facts['engine_version']})" if facts.get("engine_version") else ""
        return f"auto: a Docker API answers at {engine}{version}"
    if executor == "process":
        return ("auto: no Docker API answers on its machine, so tools run as processes in "
                "bubblewrap sandboxes")
    return ("no Docker API answers on its machine and it has no bubblewrap: start a "
            "container engine there, or install bubblewrap")


def local_view(request: Request) -> dict[str, Any]:
    """This server's runner as ``GET /api/devices`` shows it: :func:`~levrt.server.runner.
    local_device` with, when its tools run in containers, the engine's ``engine_version``
    and the ``images`` it holds. Blocks on the engine: call it off the event loop."""
    local = local_device(request)
    held = engine_facts(local["engine"]) if local["engine"] else {"engine_version": "",
                                                                  "images": []}
    return {**local, **held}


def _config(request: Request, device: dict[str, Any]) -> dict[str, Any]:
    owner, key = device["owner"], request.app.state.dispatcher.key
    return {"owner": owner, "name": device["name"], "pools": device["pools"],
            "queues": {"device": device_queue(key, owner, device["name"]),
                       "pools": [pool_queue(key, owner, pool) for pool in device["pools"]]},
            "temporal": request.app.state.settings.temporal,
            "heartbeat_interval": HEARTBEAT_INTERVAL}


def _server_url(request: Request) -> str:
    return (request.app.state.settings.public_url or str(request.base_url)).rstrip("/")


def _add(request: Request, store: Store, user: dict[str, Any], name: str,
         pools: list[str]) -> dict[str, Any]:
    added = store.add_device(user["name"], name, pools,
                             limit=request.app.state.settings.max_per_user)
    return {**added, "command": f"lev agent --server {_server_url(request)} "
                                f"--enrol {added['code']}"}


# -- the user's routes ---------------------------------------------------------------------


@router.get("")
def list_devices(request: Request, user: CurrentReader, store: StoreDep) -> list[dict[str, Any]]:
    """The devices tasks run on: first the server's runner (``kind`` ``local runner``: its
    ``executor`` and why, the Docker API URL that answered as ``engine`` (or null) with
    its ``engine_version`` and ``images``, ``running`` and ``queued`` tasks of everyone,
    ``max_running_tasks``), then the caller's devices (``kind`` ``agent``: ``status``
    online / offline / not enrolled, ``pools``, ``executor`` and why, ``running`` runs of
    its ``slots``, the ``facts`` it reported — with its ``engine``, ``engine_version`` and
    ``images`` —, ``last_seen``)."""
    return [local_view(request), *map(agent_view, store.list_devices(user["name"]))]


@router.post("", response_model=DeviceCode, status_code=201, responses=errors(400, 409, 422))
def add_device(body: DeviceRequest, request: Request, user: CurrentUser,
               store: StoreDep) -> dict[str, Any]:
    """Add a device; the answer holds its one-time enrolment code (valid 1 h) and the
    command that enrols the agent on that machine."""
    try:
        return _add(request, store, user, body.name, body.pools)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.delete("/{name}", status_code=204, responses=errors(404))
def remove_device(name: str, user: CurrentUser, store: StoreDep) -> Response:
    """Remove one of the caller's devices: its token stops working at once."""
    if not store.remove_device(user["name"], name):
        raise HTTPException(404, f"you have no device {name!r}")
    return Response(status_code=204)


# -- the agents' routes --------------------------------------------------------------------


@agent_router.post("/enrol", response_model=Enrolled, responses=errors(400, 403, 422))
def enrol(body: EnrolRequest, request: Request, store: StoreDep) -> dict[str, Any]:
    """Trade a one-time enrolment code for the device's token (403 when the code is
    unknown, used or expired: the detail says what to do)."""
    try:
        device, token = store.enrol_device(body.code)
    except EnrolmentError as exc:
        raise HTTPException(403, f"code: {exc}") from None
    return {**_config(request, device), "token": token}


@agent_router.post("/heartbeat", response_model=AgentConfig, responses=errors(400, 401, 422))
def heartbeat(body: Heartbeat, request: Request, device: CurrentDevice,
              store: StoreDep) -> dict[str, Any]:
    """The agent is alive, with its load and (at start, or when they change) its facts;
    the answer is its configuration."""
    # What the agent said: an older agent's facts lack the fields it does not know.
    facts = None if body.facts is None else body.facts.model_dump(exclude_unset=True)
    store.device_seen(device["id"], running=body.running, slots=body.slots, facts=facts)
    return _config(request, device)


# -- jobs sent to a device ------------------------------------------------------------------


class Wheel(BaseModel):
    filename: str
    sha256: str


class Claimed(BaseModel):
    """What an agent needs to run a job sent to its device or pool."""

    id: str
    target: str
    wheels: list[Wheel] = Field(description="the published package's wheel and those of the "
                                "hub packages it requires, the package's first")
    token: str = Field(description="the job's own token, for lev run --job: valid for this "
                       "job only, until it ends")
    runs_queue: str | None = Field(description="for a job whose runs are spread over a "
                                   "pool: the pool's Temporal task queue, where its driver "
                                   "sends them (the temporal executor); else null")


class RunToken(BaseModel):
    token: str


class JobEnd(Body):
    status: Literal["failed", "cancelled"]
    error: str = Field(max_length=10_000)


def _placed_job(store: Store, device: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The job ``job_id`` if it was sent to ``device`` or one of its pools; 403 otherwise,
    for a job that does not exist as for another device's."""
    job = store.get_job(job_id)
    where = None if job is None else dispatch.Placement.parse(job["placement"])
    if job is None or where is None or job["owner"] != device["owner"] or not where.takes(device):
        raise HTTPException(403, f"job {job_id!r} was not sent to device {device['name']!r} or "
                            "its pools")
    return job


def _wheels(store: Store, job: dict[str, Any]) -> list[dict[str, str]]:
    if not job["package"]:
        return []
    package, _, version = job["package"].partition("==")
    found = []
    for name, wanted in published.closure(store, package, version):
        stored = store.get_version(name, wanted)
        if stored is not None:
            found.append({"filename": stored["filename"], "sha256": stored["sha256"]})
    return found


@agent_router.post("/jobs/{job_id}/claim", response_model=Claimed,
                   responses=errors(401, 403, 409))
def claim_job(job_id: str, request: Request, device: CurrentDevice,
              store: StoreDep) -> dict[str, Any]:
    """Take a job sent to this device or one of its pools, to run it: its target, the
    wheels to run it from and its job token. 409 when the job has ended (cancelled
    before an agent took it, say). A job still running is one whose agent was lost
    (Temporal gave its workflow to another agent): it is queued again first."""
    job = _placed_job(store, device, job_id)
    if job["status"] not in UNFINISHED_STATUSES:
        raise HTTPException(409, f"job {job_id!r} has ended ({job['status']})")
    if job["status"] == "running":
        store.requeue_job(job_id, f"its agent was lost; device {device['name']!r} took the job")
    where = dispatch.Placement.parse(job["placement"])
    return {"id": job_id, "target": job["target"], "wheels": _wheels(store, job),
            "token": make_job_token(server_secret(request.app.state), job_id),
            "runs_queue": where.queue(request.app.state.dispatcher.key, device["owner"])
            if where and where.kind == "spread"
            else None}


@agent_router.post("/jobs/{job_id}/run-token", response_model=RunToken,
                   responses=errors(401, 403, 409))
def run_token(job_id: str, request: Request, device: CurrentDevice,
              store: StoreDep) -> dict[str, Any]:
    """The token of a running job whose runs are spread over this device's pool, for the
    agent that runs one of them to record it (403 for another job, 409 for one that is not
    running or not spread)."""
    job = _placed_job(store, device, job_id)
    where = dispatch.Placement.parse(job["placement"])
    if job["status"] != "running" or where is None or where.kind != "spread":
        raise HTTPException(409, f"job {job_id!r} is not a running job whose runs are spread "
                            f"over a pool ({job['status']}, {job['placement']})")
    return {"token": make_job_token(server_secret(request.app.state), job_id)}


@agent_router.get("/jobs/{job_id}/wheels/{filename}", responses=errors(401, 403, 404))
def job_wheel(job_id: str, filename: str, device: CurrentDevice, store: StoreDep) -> Response:
    """One of the wheels :func:`claim_job` names for the job, as bytes."""
    job = _placed_job(store, device, job_id)
    if filename not in {wheel["filename"] for wheel in _wheels(store, job)}:
        raise HTTPException(404, f"job {job_id!r} needs no wheel {filename!r}")
    wheel = store.get_wheel(filename)
    if wheel is None:
        raise HTTPException(404, f"no file {filename!r} on this hub")
    return Response(wheel["content"], media_type="application/octet-stream")


@agent_router.post("/jobs/{job_id}/end", status_code=204,
                   responses=errors(400, 401, 403, 422))
def end_job(job_id: str, body: JobEnd, device: CurrentDevice, store: StoreDep) -> Response:
    """The agent could not run the job, or its ``lev run`` ended without finishing it:
    record the job ``status`` with ``error`` unless it has ended already."""
    _placed_job(store, device, job_id)
    store.end_unfinished_job(job_id, body.status, error=body.error)
    return Response(status_code=204)


# -- asking a device through Temporal ------------------------------------------------------


async def ask_device(temporal: str, queue: str, activity: str, *args: Any,
                     timeout: float = 30.0) -> Any:
    """Run the agent activity ``activity`` (e.g. ``agent.facts``) on whichever agent polls
    ``queue`` and return its answer. ``temporal`` is the frontend's ``HOST:PORT``.
    Raises temporalio's ``WorkflowFailureError`` when no agent answers within ``timeout``
    seconds or the activity fails, RuntimeError when temporalio is not installed."""
    try:
        from temporalio.client import Client
    except ImportError:
        raise RuntimeError(f"asking a device needs temporalio: {extra_hint('agent')}") \
            from None
    client = await Client.connect(temporal)
    return await client.execute_workflow(
        ASK_WORKFLOW, args=[activity, list(args), timeout], id=f"ask-{uuid.uuid4().hex}",
        task_queue=queue, execution_timeout=timedelta(seconds=timeout + 10))


# -- the devices page ----------------------------------------------------------------------


async def _page(request: Request, status_code: int = 200, **context: Any) -> Response:
    user = await web._user(request)
    store: Store = request.app.state.store
    local = await run_in_threadpool(local_view, request)
    mine = await run_in_threadpool(store.list_devices, user["name"])
    return web._render(request, "devices.html", status_code, user=user, local=local,
                      devices=[agent_view(device) for device in mine],
                      offline_after=int(OFFLINE_AFTER.total_seconds()), **context)


@pages.get("/devices", response_class=HTMLResponse)
async def devices_page(request: Request) -> Response:
    return await _page(request)


@pages.post("/devices", response_class=HTMLResponse)
async def add_device_page(request: Request) -> Response:
    """Add a device from the page's form; its enrolment code is shown on the answer only."""
    user = await web._user(request)
    form = await sessions.check_csrf(request)
    name = str(form.get("name") or "").strip()
    pools = str(form.get("pools") or "").replace(",", " ").split()
    store: Store = request.app.state.store
    try:
        added = await run_in_threadpool(_add, request, store, user, name, pools)
    except (ValueError, HubConflictError) as exc:
        return await _page(request, 409 if isinstance(exc, HubConflictError) else 400,
                           error=str(exc), form_name=name, form_pools=" ".join(pools))
    return await _page(request, added=added)


@pages.post("/devices/{name}/remove")
async def remove_device_page(request: Request, name: str) -> Response:
    user = await web._user(request)
    await sessions.check_csrf(request)
    store: Store = request.app.state.store
    if not await run_in_threadpool(store.remove_device, user["name"], name):
        return await _page(request, 404, error=f"you have no device {name!r}")
    return RedirectResponse("/devices", 303)
