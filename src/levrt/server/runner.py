"""The server's in-process task dispatcher (the embedded default of DESIGN §4).

A submitted task waits in memory for one of ``max_running_tasks`` slots, then runs as

    python -m levrt._cli run TARGET --params JSON --name task-<hex> --quiet --json

with the server's store (``LEV_DB_URL``), because the server never imports or executes package
code (DESIGN §3): ``lev run`` loads the target, records the job, its runs, documents and logs.
The store has no "queued" status, so a waiting task exists only here, under its key
``task-<hex>``; the job row appears once ``lev run`` starts.

How the runner learns the job id: ``lev run`` gets the task's key as its job name, and the
runner polls the store for the job of that name (the key is unique), then renames the job to
the name the user asked for and records its owner, which ``lev run`` has no options for. This
gives the id while the job runs, not only at its end as ``--json`` output would.

Cancelling sends SIGINT, which ``lev run`` turns into a cancelled job and killed runs; the
process gets ``cancel_grace`` seconds for that before its whole session is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool

from levrt.store import Store

from .settings import Settings

# How often the store is asked whether lev run has recorded its job yet.
_POLL_SECONDS = 0.1
# Longest a submission waits for its job row before answering with the task's key.
_START_TIMEOUT = 30.0


@dataclass
class Task:
    """A submitted task; ``job_id`` is set once ``lev run`` has recorded its job."""

    key: str
    target: str
    params: dict[str, Any]
    name: str
    owner: str
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    job_id: str | None = None
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    process: asyncio.subprocess.Process | None = None
    # Set when submit can answer: the job exists, or the task waits for a slot.
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def queued_job(self) -> dict[str, Any]:
        """The task in the shape of a stored job, for a task still waiting for a slot."""
        return {
            "id": self.key, "name": self.name, "target": self.target, "params": self.params,
            "executor": None, "owner": self.owner, "status": "queued", "progress": 0.0,
            "error": None, "created_at": self.created_at, "finished_at": None,
        }


def _error_line(stderr: bytes, code: int | None) -> str:
    """The one-line error lev run printed, without its ``lev: error:`` prefix."""
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    if lines:
        return lines[-1].removeprefix("lev: error: ")
    return f"lev run exited with code {code}"


class TaskRunner:
    """Runs submitted tasks as ``lev run`` subprocesses on ``store``, a few at a time."""

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self._store = store
        self._settings = settings or Settings()
        self._slots = asyncio.Semaphore(self._settings.max_running_tasks)
        self._tasks: dict[str, Task] = {}  # by key, until the task ends
        # Key -> job id for good: a client holding a queued task's key can still follow it.
        self._job_of_key: dict[str, str] = {}
        self._workers: set[asyncio.Task[None]] = set()

    # -- what the routes call --------------------------------------------------------------

    async def submit(self, target: str, params: dict[str, Any], name: str, owner: str) -> Task:
        """Queue a task; return once its job exists (or it waits for a slot)."""
        task = Task(f"task-{uuid.uuid4().hex}", target, params, name, owner)
        self._tasks[task.key] = task
        worker = asyncio.create_task(self._run(task))
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task.settled.wait(), _START_TIMEOUT)
        return task

    def lookup(self, task_id: str) -> tuple[str | None, Task | None]:
        """``(job id, None)`` for a task that has a job (or any other job id), else
        ``(None, queued task)``."""
        if task_id in self._job_of_key:
            return self._job_of_key[task_id], None
        task = self._tasks.get(task_id)
        if task is None:
            return task_id, None
        return (task.job_id, None) if task.job_id else (None, task)

    def queued(self) -> list[Task]:
        """Tasks waiting for a slot, oldest first."""
        return [task for task in self._tasks.values() if task.job_id is None]

    def running_count(self) -> int:
        """Tasks whose ``lev run`` process is alive."""
        return sum(1 for task in list(self._tasks.values())
                   if task.process is not None and task.process.returncode is None)

    async def cancel(self, task_id: str) -> bool:
        """Cancel a queued or running task of this runner; False if it runs no such task."""
        task = self._tasks.get(task_id) or next(
            (task for task in self._tasks.values() if task.job_id == task_id), None)
        if task is None or task.cancel_requested.is_set():
            return task is not None
        task.cancel_requested.set()
        if task.process is None:
            # Still waiting for a slot: it never starts; a cancelled job keeps its record.
            await self._record_job(task, "cancelled", "cancelled before it started")
            task.settled.set()
        elif task.process.returncode is None:
            task.process.send_signal(signal.SIGINT)
        return True

    async def stop(self) -> None:
        """Cancel every task and wait for their processes (the server is shutting down)."""
        for task in list(self._tasks.values()):
            await self.cancel(task.key)
        if self._workers:
            await asyncio.wait(self._workers, timeout=self._settings.cancel_grace + 5)

    # -- running ---------------------------------------------------------------------------

    async def _run(self, task: Task) -> None:
        try:
            if self._slots.locked():
                task.settled.set()  # it has to wait: submit answers with the key
            async with self._slots:
                if not task.cancel_requested.is_set():
                    await self._execute(task)
        except Exception as exc:  # the task must end recorded, whatever went wrong here
            if task.job_id is None:
                await self._record_job(task, "failed", f"cannot run lev run: {exc}")
            else:
                await run_in_threadpool(self._finish_if_running, task.job_id, "failed", str(exc))
        finally:
            task.settled.set()
            self._tasks.pop(task.key, None)

    async def _execute(self, task: Task) -> None:
        argv = [sys.executable, "-m", "levrt._cli", "run", task.target,
                "--params", json.dumps(task.params), "--name", task.key, "--quiet", "--json"]
        # The argument list goes to exec as it is: no shell ever sees the user's values.
        # A session of its own: a cancelled task's leftover processes are killed as a group,
        # and a Ctrl-C meant for the server does not reach the task behind the runner's back.
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "LEV_DB_URL": self._store.url},
            start_new_session=True,
        )
        task.process = process
        cancelled = task.cancel_requested
        if cancelled.is_set():  # cancelled while the process was being started
            process.send_signal(signal.SIGINT)
        output = asyncio.create_task(process.communicate())
        while task.job_id is None:
            ended = output.done()
            await self._claim_job(task)
            if ended or task.job_id is not None:
                break
            await asyncio.sleep(_POLL_SECONDS)
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
        if task.job_id is None:
            # lev run ended before recording a job: the target did not load, the parameters
            # did not fit it, or it was interrupted. Its one error line becomes the job's.
            await self._record_job(task, status, _error_line(stderr, process.returncode))
        else:
            error = f"lev run ended (exit code {process.returncode}) without finishing the job"
            await run_in_threadpool(self._finish_if_running, task.job_id, status, error)

    async def _claim_job(self, task: Task) -> None:
        found = await run_in_threadpool(self._store.list_jobs, name=task.key, limit=1)
        if found:
            job_id = found[0]["id"]
            await run_in_threadpool(self._store.label_job, job_id, name=task.name,
                                    owner=task.owner)
            self._set_job(task, job_id)

    async def _record_job(self, task: Task, status: str, error: str) -> None:
        def record() -> str:
            job_id = self._store.create_job(task.name, target=task.target, params=task.params,
                                            owner=task.owner)
            self._store.finish_job(job_id, status, error=error)
            return job_id

        self._set_job(task, await run_in_threadpool(record))

    def _set_job(self, task: Task, job_id: str) -> None:
        task.job_id = job_id
        self._job_of_key[task.key] = job_id
        task.settled.set()

    def _finish_if_running(self, job_id: str, status: str, error: str) -> None:
        # lev run finishes its job itself; a job still "running" means it was killed first.
        job = self._store.get_job(job_id)
        if job is not None and job["status"] == "running":
            self._store.finish_job(job_id, status, error=error)
