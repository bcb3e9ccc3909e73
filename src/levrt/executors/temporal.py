"""The temporal executor: each run of the job goes to a pool of agents through Temporal.

A job sent to a pool with its runs spread (``lev task submit --pool P --spread``) is driven by
one agent of the pool with this executor: the runs it starts go to Temporal in workflows
``levrt.runs`` on the pool's task queue, each run an activity (``agent.run_cr``) that runs
its spec on whichever agent of the pool has a free slot, with that agent's own executor.
That agent records the run's log, documents and end through the server's API with the job's
token, as the driver would; what comes back through Temporal is only the exit code and the
error, so large outputs never ride in Temporal's payloads. A ``Concurrent`` fan-out so
spreads over the pool's agents, each taking as many runs at once as it has slots.

The runs started in one turn of the event loop (a fan-out's, started together) share one
workflow, up to :data:`MAX_BATCH_RUNS` runs or :data:`MAX_SPEC_BYTES` of specs: a workflow
per run was about three quarters of what Temporal spent on a run. The driver follows each
workflow's history and ends each run as its activity ends.

The agent sets ``LEV_TEMPORAL`` (the frontend's ``HOST:PORT``) and ``LEV_RUN_QUEUE`` (the
pool's task queue) for the driver it starts.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import os
import threading
from datetime import timedelta
from typing import Any

from .base import Executor, ExecutorError, RunHandle, RunObserver, RunSpec

#: the workflow every agent registers to run specs (levrt.agent._workflows)
RUNS_WORKFLOW = "levrt.runs"
#: the most a spec, or the specs of one workflow, may weigh as JSON (files included):
#: Temporal refuses payloads past 2 MB
MAX_SPEC_BYTES = 1_500_000
#: the most runs one workflow carries
MAX_BATCH_RUNS = 100
#: seconds the driver asks again for a workflow's history while Temporal does not answer
#: (restarting, say) before its runs fail
FOLLOW_PATIENCE = 300.0


def runs_workflow_id(job_id: str, first_run_id: int) -> str:
    return f"lev-runs-{job_id}-{first_run_id}"


class TemporalExecutor(Executor):
    """Runs specs on the agents polling ``queue`` through the Temporal frontend at
    ``address``."""

    name = "temporal"

    def __init__(self, address: str, queue: str) -> None:
        self.address = address
        self.queue = queue
        self._client: Any = None
        # The runs of a fan-out all start at once: one connection for them, not one each.
        self._connecting = asyncio.Lock()
        self._open: _Batch | None = None  # taking the runs started in this loop turn
        self._batches: set[asyncio.Task[None]] = set()

    @classmethod
    def from_env(cls) -> TemporalExecutor:
        """From ``LEV_TEMPORAL`` and ``LEV_RUN_QUEUE``; ExecutorError naming what is
        missing."""
        address, queue = os.environ.get("LEV_TEMPORAL"), os.environ.get("LEV_RUN_QUEUE")
        if not address or not queue:
            raise ExecutorError("the temporal executor runs a job's runs on a pool's agents: "
                                "it needs LEV_TEMPORAL (HOST:PORT) and LEV_RUN_QUEUE, which "
                                "an agent sets for a task sent with --pool POOL --spread")
        # Importing Temporal's client takes about 0.4 s of CPU: done meanwhile, it overlaps
        # the job's start and the records of its first runs instead of delaying them.
        threading.Thread(target=importlib.import_module, args=("temporalio.client",),
                         name="lev-import-temporal", daemon=True).start()
        return cls(address, queue)

    def describe(self) -> str:
        return f"temporal (each run on an agent of {self.queue}, through {self.address})"

    async def _temporal(self) -> Any:
        async with self._connecting:
            if self._client is None:
                from temporalio.client import Client

                try:
                    self._client = await Client.connect(self.address)
                except RuntimeError as exc:
                    raise ExecutorError(f"cannot reach Temporal at {self.address}: "
                                        f"{exc}") from None
        return self._client

    async def start(self, spec: RunSpec, observer: RunObserver) -> RunHandle:
        """Start ``spec`` in the workflow of this loop turn's runs; returns once that
        workflow has started. ExecutorError for a spec too heavy to send, or a Temporal
        that refuses the workflow or does not answer."""
        data = spec.to_json()
        size = len(json.dumps(data))
        if size > MAX_SPEC_BYTES:
            raise ExecutorError(f"run {spec.run_id} ({spec.name}): its files weigh more than "
                                f"the {MAX_SPEC_BYTES} bytes a run sent to a pool may carry")
        # The collection the run's ctx writes go to: the job runtime's recorder knows it.
        coll = getattr(getattr(observer, "info", None), "coll", None)
        batch = self._open
        if batch is None or not batch.fits(size):
            batch = self._open = _Batch(self, spec.job_id)
            asyncio.get_running_loop().call_soon(self._launch, batch)
        run = batch.add(spec.run_id, [data, coll], size, observer)
        try:
            await asyncio.shield(batch.started)
        except asyncio.CancelledError:
            # The run is in the workflow, or about to be: it must not go on unseen.
            await asyncio.wait({batch.started})
            if not batch.started.cancelled() and batch.started.exception() is None:
                await run.kill()
            raise
        return run

    def _launch(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None
        task = asyncio.ensure_future(batch.run())
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)
        task.add_done_callback(batch.settle)

    async def aclose(self) -> None:
        for task in list(self._batches):
            task.cancel()
        await asyncio.gather(*self._batches, return_exceptions=True)


class _Batch:
    """The runs of one ``levrt.runs`` workflow: starts it, then follows its history and
    ends each run as its activity ends."""

    def __init__(self, executor: TemporalExecutor, job_id: str) -> None:
        self._executor = executor
        self._job_id = job_id
        self._args: list[list[Any]] = []
        self._bytes = 0
        self._runs: dict[int, _RemoteRun] = {}
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handle: Any = None
        self._kills: set[int] = set()
        self._signalling: asyncio.Task[None] | None = None

    def settle(self, _: object = None) -> None:
        """Its starts fail if it never started (cancelled: the job's driver is ending)."""
        if not self.started.done():
            self.started.set_exception(ExecutorError("the job ended before its runs were "
                                                     "sent to the pool"))

    def fits(self, size: int) -> bool:
        return len(self._args) < MAX_BATCH_RUNS and self._bytes + size <= MAX_SPEC_BYTES

    def add(self, run_id: int, args: list[Any], size: int,
            observer: RunObserver) -> _RemoteRun:
        self._args.append(args)
        self._bytes += size
        run = self._runs[run_id] = _RemoteRun(self, run_id, observer)
        return run

    async def run(self) -> None:
        try:
            client = await self._executor._temporal()
            first = self._args[0][0]["run_id"]
            self._handle = await client.start_workflow(
                RUNS_WORKFLOW, args=[self._args], id=runs_workflow_id(self._job_id, first),
                task_queue=self._executor.queue, execution_timeout=timedelta(days=30))
        except Exception as exc:  # noqa: BLE001 - each run's start raises it
            self.started.set_exception(
                exc if isinstance(exc, ExecutorError) else ExecutorError(
                    f"Temporal did not start the runs on {self._executor.queue}: {exc}"))
            return
        self.started.set_result(None)
        reason = "the job's driver stopped following it"
        try:
            reason = await self._follow(client)
        except Exception as exc:  # noqa: BLE001 - its runs end with it
            reason = f"the driver could not read its workflow: {type(exc).__name__}: {exc}"
        finally:
            for run in self._runs.values():
                run.end({"exit_code": 1, "error": f"no agent of the pool finished it: {reason}"})

    async def _follow(self, client: Any) -> str:
        """Read the workflow's history until it closes, ending each run as its activity
        ends; why runs still going were not seen to end."""
        from temporalio.api.enums.v1 import EventType
        from temporalio.service import RPCError, RPCStatusCode

        loop = asyncio.get_running_loop()
        scheduled: dict[int, int] = {}  # scheduled event id -> run id
        seen = 0  # a history read again after an error skips what it has seen
        silent_since: float | None = None
        while True:
            try:
                async for event in self._handle.fetch_history_events(wait_new_event=True):
                    silent_since = None
                    if event.event_id <= seen:
                        continue
                    seen = event.event_id
                    closed = await self._on(event, scheduled, client.data_converter)
                    if closed:
                        return f"its workflow ended ({EventType.Name(event.event_type)})"
                return "its workflow's history ended"
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return f"its workflow is gone: {exc}"
                silent_since = silent_since or loop.time()
                if loop.time() - silent_since > FOLLOW_PATIENCE:
                    return f"Temporal did not answer for {FOLLOW_PATIENCE:g} s: {exc}"
                await asyncio.sleep(1.0)

    async def _on(self, event: Any, scheduled: dict[int, int], converter: Any) -> bool:
        """Take one history event; whether it closed the workflow."""
        from temporalio.api.enums.v1 import EventType as E

        kind = event.event_type
        if kind == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = int(attrs.activity_id)
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs = event.activity_task_completed_event_attributes
            [answer] = await converter.decode(attrs.result.payloads)
            # The agent recorded the run's end before it answered.
            self._end(scheduled.get(attrs.scheduled_event_id), answer, recorded=True)
        elif kind in (E.EVENT_TYPE_ACTIVITY_TASK_FAILED, E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT):
            attrs = (event.activity_task_failed_event_attributes
                     if kind == E.EVENT_TYPE_ACTIVITY_TASK_FAILED
                     else event.activity_task_timed_out_event_attributes)
            self._end(scheduled.get(attrs.scheduled_event_id), {
                "exit_code": 1,
                "error": f"no agent of the pool finished it: {_failure(attrs.failure)}"})
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            attrs = event.activity_task_canceled_event_attributes
            self._end(scheduled.get(attrs.scheduled_event_id),
                      {"exit_code": 1, "error": "cancelled"})
        return kind in _closing_events()

    def _end(self, run_id: int | None, answer: dict[str, Any], recorded: bool = False) -> None:
        run = self._runs.pop(run_id, None) if run_id is not None else None
        if run is not None:
            run.end(answer, recorded)

    async def cancel(self, run_id: int) -> None:
        """Ask the workflow to cancel ``run_id``; the kills of one loop turn go in one
        signal. A workflow that has ended has nothing left to cancel."""
        self._kills.add(run_id)
        if self._signalling is None:
            # Its first step comes after the rest of this loop turn's kills.
            self._signalling = asyncio.ensure_future(self._signal())
        await asyncio.shield(self._signalling)

    async def _signal(self) -> None:
        from temporalio.service import RPCError, RPCStatusCode

        kills, self._kills, self._signalling = sorted(self._kills), set(), None
        deadline = asyncio.get_running_loop().time() + FOLLOW_PATIENCE
        while True:
            try:
                await self._handle.signal("cancel", kills)
                return
            except RPCError as exc:
                # Not found: the workflow has ended, and its follower ends every run. Else
                # Temporal is away: a cancel must not be lost while it restarts.
                if (exc.status == RPCStatusCode.NOT_FOUND
                        or asyncio.get_running_loop().time() > deadline):
                    return
            await asyncio.sleep(1.0)


def _failure(failure: Any) -> str:
    """A Temporal failure's message and its causes', outermost first."""
    messages = [failure.message]
    while failure.HasField("cause"):
        failure = failure.cause
        messages.append(failure.message)
    return ": ".join(message for message in messages if message)


@functools.cache
def _closing_events() -> frozenset[int]:
    from temporalio.api.enums.v1 import EventType as E

    return frozenset({E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
                      E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
                      E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
                      E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
                      E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
                      E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW})


class _RemoteRun(RunHandle):
    host = ""

    def __init__(self, batch: _Batch, run_id: int, observer: RunObserver) -> None:
        self._batch = batch
        self._run_id = run_id
        self._observer = observer
        self._ended: asyncio.Future[dict[str, Any]] = \
            asyncio.get_running_loop().create_future()

    def end(self, answer: dict[str, Any], recorded: bool = False) -> None:
        if not self._ended.done():
            self.recorded = recorded
            self._ended.set_result(answer)

    async def wait(self) -> int:
        answer = await asyncio.shield(self._ended)
        if answer.get("error"):
            self._observer.on_error(answer["error"], "")
        return int(answer["exit_code"])

    async def signal(self, sig: str) -> None:
        raise ExecutorError(f"a run on a pool's agent cannot be sent {sig}: cancel it instead")

    async def kill(self) -> None:
        if not self._ended.done():
            await self._batch.cancel(self._run_id)
            await asyncio.shield(self._ended)
