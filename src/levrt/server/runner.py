"""The server's in-process task dispatcher: the default, needing nothing beyond the server
(docs/tasks.md#the-runner).

A submitted task is a job recorded ``queued`` in the store, so it survives a restart of the
server: :meth:`TaskRunner.start` takes up every queued job again. It waits for one of
``max_running_tasks`` slots, then runs as

    python -m levrt run --job ID --executor EXECUTOR --quiet --json TARGET

with the server's store (``LEV_DB_URL``) and, for a published package's target, that
version's files on ``PYTHONPATH`` (:mod:`~levrt.server.published`), because the server never
imports or executes package code (docs/hub.md): ``lev run`` loads the target, marks the queued
job running (only one process can), takes the parameters from the job's record — as the
server converted them, never as text to convert again, and never through argv, whose size is
limited (``max_params_bytes`` bounds them instead) — and records its runs, documents and
logs. A ``lev run`` that fails before that (the target does not load, the parameters do not
fit it) leaves the job queued; the runner then records it failed with the one error line
``lev run`` printed.

Cancelling a queued task finishes its job at once; a running one gets SIGINT, which
``lev run`` turns into a cancelled job and killed runs, and ``cancel_grace`` seconds for that
before its whole session is killed. When the server stops, running tasks are cancelled
(none may outlive the server) and queued ones stay queued for its next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from levrt._driver import driver_gone
from levrt._status import UNFINISHED_STATUSES
from levrt.executors.docker import engine_url
from levrt.store import Store

from . import published
from .params import check_size
from .settings import Settings

# Queued jobs a starting server takes up again, at most.
_REQUEUE_LIMIT = 100_000


@dataclass
class Task:
    """A queued or running job the runner has taken."""

    job_id: str
    target: str
    package: str | None = None  # "name==version" when the target is a published package's
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    process: asyncio.subprocess.Process | None = None


@dataclass(frozen=True)
class ExecutorChoice:
    """What runs the tasks' tools now: ``name`` (``docker``, ``process``, or None when
    nothing may), why (``reason``), and the Docker API's ``url`` that answered."""

    name: str | None
    reason: str
    url: str | None = None


def choose_executor(settings: Settings) -> ExecutorChoice:
    """The executor for the next task. ``auto`` takes the container engine when a Docker API
    answers; without one, package code would run as plain processes of the server's user,
    outside any sandbox, which this server does only when told (``allow_host_execution``,
    or ``executor`` set to ``process``)."""
    if settings.executor != "auto":
        return ExecutorChoice(settings.executor,
                              f"chosen by the setting LEV_SERVER_EXECUTOR={settings.executor}")
    url = engine_url()
    if url is not None:
        return ExecutorChoice("docker", f"auto: a Docker API answers at {url}", url)
    if settings.allow_host_execution:
        return ExecutorChoice("process", "auto: no Docker API answers, so tools run as "
                              "processes on this host (LEV_SERVER_ALLOW_HOST_EXECUTION)")
    return ExecutorChoice(None, "auto: no Docker API answers (DOCKER_HOST or a usual "
                          "socket), and this server runs no package code outside a container "
                          "unless told: start a container engine, or set "
                          "LEV_SERVER_ALLOW_HOST_EXECUTION=true (or LEV_SERVER_EXECUTOR="
                          "process) to run tools as processes on the server")


def _error_line(stderr: bytes, code: int | None) -> str:
    """The one-line error lev run printed, without its ``lev: error:`` prefix."""
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    if lines:
        return lines[-1].removeprefix("lev: error: ")
    return f"lev run exited with code {code}"


class TaskRunner:
    """Runs queued jobs as ``lev run`` subprocesses on ``store``, a few at a time."""

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self._store = store
        self._settings = settings or Settings()
        self._slots = asyncio.Semaphore(self._settings.max_running_tasks)
        self._tasks: dict[str, Task] = {}  # by job id, until the task ends
        self._workers: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- what the app and the routes call --------------------------------------------------

    async def start(self) -> int:
        """Settle the running jobs whose process is gone and take up the store's queued
        jobs, oldest first (the server has just started); how many were queued."""
        await run_in_threadpool(self._settle_orphans)
        jobs = await run_in_threadpool(self._store.list_jobs, status="queued",
                                       limit=_REQUEUE_LIMIT, oldest_first=True)
        for job in jobs:
            # A task sent to a device waits in Temporal for its agent, not here.
            if job["id"] not in self._tasks and job["placement"] is None:
                self._take(Task(job["id"], job["target"] or "", job["package"]))
        return len(jobs)

    async def submit(self, target: str, params: dict[str, Any], name: str, owner: str,
                     package: str | None = None) -> str:
        """Record a queued job for ``target`` (of the published ``package==version``, if
        given) with ``params`` (converted, in their typed JSON form) and take it; its id.
        :class:`~levrt.server.params.ParamsInvalid` (``too_large``) names the parameters that
        pass ``max_params_bytes``."""
        check_size(params, self._settings.max_params_bytes)
        job_id = await run_in_threadpool(self._store.create_job, name, target=target,
                                         params=params, owner=owner, package=package,
                                         queued=True)
        self._take(Task(job_id, target, package))
        return job_id

    def running_count(self) -> int:
        """Tasks whose ``lev run`` process is alive."""
        return sum(1 for task in list(self._tasks.values())
                   if task.process is not None and task.process.returncode is None)

    def queued_count(self) -> int:
        """Tasks waiting for a slot."""
        return sum(1 for task in list(self._tasks.values()) if task.process is None)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running task of this runner; False if it has no such task."""
        task = self._tasks.get(job_id)
        if task is None or task.cancel_requested.is_set():
            return task is not None
        task.cancel_requested.set()
        if task.process is None:
            # It never starts (and if its lev run is starting right now, that finds the job
            # no longer queued and stops).
            await run_in_threadpool(self._store.end_unfinished_job, job_id, "cancelled",
                                    error="cancelled before it started")
        elif task.process.returncode is None:
            task.process.send_signal(signal.SIGINT)
        return True

    async def stop(self) -> None:
        """Cancel the running tasks and wait for their processes (the server is shutting
        down); queued tasks stay queued."""
        self._stopping = True
        for task in list(self._tasks.values()):
            if task.process is not None:
                await self.cancel(task.job_id)
        if self._workers:
            await asyncio.wait(self._workers, timeout=self._settings.cancel_grace + 5)

    def _settle_orphans(self) -> None:
        # A job stays "running" when its process was killed outright (the server killed with
        # SIGKILL, the machine stopped): only a driver of this host can be seen to be gone.
        for job in self._store.list_jobs(status="running", limit=_REQUEUE_LIMIT):
            if driver_gone(job["driver"]):
                self._store.end_unfinished_job(
                    job["id"], "failed", error=f"its process ({job['driver']}) ended without "
                    "finishing it: it was killed, or the machine stopped")

    # -- running ---------------------------------------------------------------------------

    def _take(self, task: Task) -> None:
        self._tasks[task.job_id] = task
        worker = asyncio.create_task(self._run(task))
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _run(self, task: Task) -> None:
        try:
            async with self._slots:
                if not (task.cancel_requested.is_set() or self._stopping):
                    await self._execute(task)
        except Exception as exc:  # the task must end recorded, whatever went wrong here
            await run_in_threadpool(self._store.end_unfinished_job, task.job_id, "failed",
                                    error=f"cannot run lev run: {exc}")
        finally:
            self._tasks.pop(task.job_id, None)

    async def _execute(self, task: Task) -> None:
        executor = await run_in_threadpool(choose_executor, self._settings)
        if executor.name is None:
            await run_in_threadpool(self._store.end_unfinished_job, task.job_id, "failed",
                                    error=f"no executor may run it: {executor.reason}")
            return
        # lev run's options before TARGET: after it, a parameter named like one (job, json,
        # ...) would take it over.
        argv = [sys.executable, "-m", "levrt", "run", "--job", task.job_id,
                "--executor", executor.name, "--quiet", "--json", task.target]
        env = {**os.environ, "LEV_DB_URL": self._store.url}
        if executor.url is not None:  # the engine that answered, not another one lev run finds
            env["DOCKER_HOST"] = executor.url
        if task.package:
            path = await run_in_threadpool(published.search_path, self._store, task.package)
            env["PYTHONPATH"] = os.pathsep.join([*path, env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep)
        if self._stopping:  # the server began to stop meanwhile: the job stays queued
            return
        # The argument list goes to exec as it is: no shell ever sees the user's values.
        # A session of its own: a cancelled task's leftover processes are killed as a group,
        # and a Ctrl-C meant for the server does not reach the task behind the runner's back.
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env,
            start_new_session=True,
        )
        task.process = process
        cancelled = task.cancel_requested
        if self._stopping:  # stop() looked while the process was being started
            cancelled.set()
        if cancelled.is_set():  # cancelled while the process was being started
            process.send_signal(signal.SIGINT)
        output = asyncio.create_task(process.communicate())
        cancel = asyncio.create_task(cancelled.wait())
        await asyncio.wait({output, cancel}, return_when=asyncio.FIRST_COMPLETED)
        cancel.cancel()
        if cancelled.is_set():
            # SIGINT was sent: lev run records the cancellation and stops its runs. Past the
            # grace time, or if it left anything behind, its session is killed.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(output), self._settings.cancel_grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        _, stderr = await output
        status = "cancelled" if cancelled.is_set() else "failed"
        await run_in_threadpool(self._record_end, task.job_id, status, stderr,
                                process.returncode)

    def _record_end(self, job_id: str, status: str, stderr: bytes, code: int | None) -> None:
        # lev run finishes the job it started itself: this only settles one it did not
        # start (its error line says why) or one it left running (it was killed).
        job = self._store.get_job(job_id)
        if job is None or job["status"] not in UNFINISHED_STATUSES:
            return
        if job["status"] == "queued":
            error = _error_line(stderr, code)
        else:
            error = f"lev run ended (exit code {code}) without finishing the job"
        self._store.end_unfinished_job(job_id, status, error=error)


def local_device(request: Request) -> dict[str, Any]:
    """The server's own runner as a device, with its tasks of every user counted and the
    executor its next task gets (asks the container engine: call it off the event loop)."""
    runner: TaskRunner = request.app.state.runner
    executor = choose_executor(request.app.state.settings)
    return {"name": socket.gethostname(), "kind": "local runner", "status": "online",
            "executor": executor.name or "none", "executor_reason": executor.reason,
            "running": runner.running_count(), "queued": runner.queued_count(),
            "max_running_tasks": request.app.state.settings.max_running_tasks}
