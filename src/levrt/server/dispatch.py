"""Tasks sent to a device or a pool (docs/distributed.md#dispatch).

Such a task is a job recorded ``queued`` with its placement (``device:NAME`` or
``pool:NAME``) and a Temporal workflow, ``levrt.job`` with the id :func:`workflow_id`, started
on that device's or pool's task queue. Whichever agent polls the queue runs the workflow's one
activity, which claims the job from the server (``POST /api/agent/jobs/{id}/claim``: only an
agent of that device or pool may), runs ``lev run --job`` with the job's own token, heartbeats
while it goes, and is cancelled through Temporal. Temporal keeps the workflow, so neither a
restart of the server nor one of the agent loses the task.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette.concurrency import run_in_threadpool

from levrt._config import extra_hint
from levrt.server.params import check_size
from levrt.store import Store

if TYPE_CHECKING:
    from levrt.server.runner import TaskRunner

#: the workflow every agent registers to run a job (levrt.agent._workflows)
JOB_WORKFLOW = "levrt.job"


def deployment_key(secret: bytes) -> str:
    """A short name for the servers sharing ``secret`` (and so a store), in the names they
    give Temporal: two deployments sharing a Temporal namespace never take each other's
    work, though both have a user ``alice`` with a device ``box``."""
    # The label is older than its use for queues: another would rename every Schedule.
    return hmac.new(secret, b"levrt schedules", hashlib.sha256).hexdigest()[:12]


def device_queue(key: str, owner: str, name: str) -> str:
    """The Temporal task queue of ``owner``'s device ``name`` in deployment ``key``."""
    return f"lev-{key}-device:{owner}/{name}"


def pool_queue(key: str, owner: str, pool: str) -> str:
    """The Temporal task queue of ``owner``'s pool ``pool`` in deployment ``key``, polled
    by each device in it."""
    return f"lev-{key}-pool:{owner}/{pool}"


def workflow_id(job_id: str) -> str:
    """The Temporal workflow id of a dispatched job: one workflow per job."""
    return f"lev-job-{job_id}"


class PlacementError(ValueError):
    """A task names a device or pool it cannot be sent to: ``field`` (``device`` or
    ``pool``) and a message saying why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Placement:
    """Where a task runs: one of its owner's devices, or any device of one of its pools;
    ``spread``, a pool whose agents also share the job's runs (the temporal executor)."""

    kind: Literal["device", "pool", "spread"]
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str | None) -> Placement | None:
        """The placement a job records (``device:NAME`` / ``pool:NAME``); None for none."""
        if not text:
            return None
        kind, _, name = text.partition(":")
        if kind not in ("device", "pool", "spread") or not name:
            raise ValueError(f"not a placement: {text!r}")
        return cls(kind, name)  # type: ignore[arg-type]

    def queue(self, key: str, owner: str) -> str:
        """The Temporal task queue its agents poll, in deployment ``key``."""
        maker = device_queue if self.kind == "device" else pool_queue
        return maker(key, owner, self.name)

    def takes(self, device: dict[str, Any]) -> bool:
        """Whether ``device`` (a store device row) may run a job placed here."""
        if self.kind == "device":
            return bool(device["name"] == self.name)
        return self.name in device["pools"]


def placement(store: Store, owner: str, device: str | None, pool: str | None,
              spread: bool = False) -> Placement | None:
    """The placement a task asks for (None: the server's runner), checked against
    ``owner``'s devices; ``spread`` spreads the job's runs over the pool's agents. Raises
    :class:`PlacementError` naming the field."""
    if device and pool:
        raise PlacementError("pool", "give a device or a pool, not both")
    if spread and not pool:
        raise PlacementError("spread", "runs spread over a pool's agents: give the pool")
    if not device and not pool:
        return None
    devices = store.list_devices(owner)
    if device:
        if not any(found["name"] == device for found in devices):
            raise PlacementError("device", f"you have no device {device!r} (lev device list)")
        return Placement("device", device)
    assert pool is not None
    if not any(pool in found["pools"] for found in devices):
        raise PlacementError("pool", f"none of your devices is in a pool {pool!r} (lev device "
                             "add NAME --pool POOL)")
    return Placement("spread" if spread else "pool", pool)


def chosen(store: Store, owner: str, where: str | None) -> Placement | None:
    """The placement ``where`` names as a form's "Run on" choice or a job's record: empty
    (the server's runner), ``device:NAME``, ``pool:NAME`` or ``spread:NAME``, checked
    against ``owner``'s devices now as :func:`placement` does (a device may have gone)."""
    if not where:
        return None
    kind, _, name = where.partition(":")
    if kind not in ("device", "pool", "spread") or not name:
        raise PlacementError("where", f"run on 'device:NAME' or 'pool:NAME', not {where!r}")
    return placement(store, owner, name if kind == "device" else None,
                     name if kind != "device" else None, kind == "spread")


class Dispatcher:
    """Sends tasks where they are placed: to ``runner``, the server's own, or to devices,
    whose jobs' workflows it starts and cancels through the Temporal frontend at
    ``address`` (``HOST:PORT``; None when the server was not told where Temporal is), on
    the queues of deployment ``key`` (:func:`deployment_key`). ``max_params_bytes`` caps a
    task's parameters, as JSON."""

    def __init__(self, address: str | None, runner: TaskRunner, *, key: str,
                 max_params_bytes: int = 1 << 20) -> None:
        self.address = address
        self.key = key
        self.runner = runner
        self.max_params_bytes = max_params_bytes
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def temporal(self) -> Any:
        """The server's Temporal client, connected on first use. RuntimeError when Temporal
        is not configured or cannot be reached."""
        if self.address is None:
            raise RuntimeError("tasks run only on this server's runner: it was started "
                               "without Temporal (lev serve --temporal HOST:PORT)")
        async with self._lock:
            if self._client is None:
                try:
                    from temporalio.client import Client
                except ImportError:
                    raise RuntimeError("sending tasks to devices needs temporalio: "
                                       + extra_hint("agent")) from None
                try:
                    self._client = await Client.connect(self.address)
                except RuntimeError as exc:
                    raise RuntimeError(f"cannot reach Temporal at {self.address}: {exc}") \
                        from None
        return self._client

    async def start(self, job_id: str, queue: str) -> None:
        """Start the job's workflow on ``queue``. RuntimeError when Temporal cannot be
        reached."""
        client = await self.temporal()
        await client.start_workflow(JOB_WORKFLOW, job_id, id=workflow_id(job_id),
                                    task_queue=queue)

    async def cancel(self, job_id: str) -> None:
        """Ask the job's workflow to cancel: its agent interrupts ``lev run``, whose runs
        are stopped. RuntimeError when Temporal cannot be reached."""
        client = await self.temporal()
        await client.get_workflow_handle(workflow_id(job_id)).cancel()

    async def submit(self, store: Store, where: Placement | None, *, target: str,
                     params: dict[str, Any], name: str, owner: str,
                     package: str | None) -> str:
        """Submit a task to the server's runner (``where`` None), or record a queued job
        placed ``where`` and start its workflow; the job's id. A job whose workflow cannot
        be started ends ``failed`` saying why, and RuntimeError is raised (also when
        Temporal is not configured); :class:`~levrt.server.params.ParamsInvalid` when the
        parameters are too large."""
        if where is None:
            return await self.runner.submit(target, params, name, owner, package)
        check_size(params, self.max_params_bytes)
        await self.temporal()  # not configured, or unreachable: no job is recorded
        job_id = await run_in_threadpool(store.create_job, name, target=target, params=params,
                                         owner=owner, package=package, queued=True,
                                         placement=str(where))
        try:
            await self.start(job_id, where.queue(self.key, owner))
        except Exception as exc:
            await run_in_threadpool(store.end_unfinished_job, job_id, "failed",
                                    error=f"not sent to {where}: {exc}")
            raise RuntimeError(f"cannot send the task to {where}: {exc}") from None
        return job_id
