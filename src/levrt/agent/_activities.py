"""The activities an agent offers, registered with Temporal by name (``agent.<what>``).

The server runs them through a workflow on a device's or pool's task queue
(:mod:`levrt.agent._workflows`); each is a method of :class:`Activities`, which holds what
they share: the agent's facts and its load."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from levrt import executors
from levrt._cr import run_recorded
from levrt._driver import error_line
from levrt.agent._driver import Drivers, stop_driver
from levrt.agent._enrolment import AgentError
from levrt.agent._facts import gather_facts
from levrt.agent._wheels import search_path
from levrt.client import AgentClient, ApiError, ApiUnreachable, Client, JobStore
from levrt.executors import RunSpec

# Seconds between an activity's heartbeats (Temporal's timeout for them is 30 s). A
# cancellation reaches the activity in the answer to a heartbeat: this is its delay too.
HEARTBEAT_EVERY = 2.0
# Job stores an agent keeps for the spread runs of jobs (a job's token is good until it ends).
KEPT_STORES = 16


def _progress(watch: Client, job_id: str, last: dict[str, Any]) -> dict[str, Any]:
    """The job's progress for a heartbeat (``status``, ``progress``, ``runs``,
    ``finished``), asked once with the job's token; the last one known while the server
    does not answer."""
    try:
        answer: dict[str, Any] = watch.request(
            "GET", f"/api/driver/jobs/{quote(job_id, safe='')}/progress").json()
        return answer
    except (ApiError, ApiUnreachable):
        return last


class Load(Interceptor):
    """Activities going on the agent and the slots it has (what heartbeats report): a
    worker interceptor, so every activity counts, whatever its kind."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.running = 0

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Counted(next, self)


class _Counted(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, load: Load) -> None:
        super().__init__(next)
        self._load = load

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        self._load.running += 1
        try:
            return await super().execute_activity(input)
        finally:
            self._load.running -= 1


class Activities:
    """The agent's activities; :meth:`registered` lists them for a Temporal worker.
    ``client`` is the agent's (its device token); ``executor`` runs the jobs' tools
    (``auto``: docker when an engine answers); ``temporal`` is the frontend's
    ``HOST:PORT``, for the drivers of jobs whose runs are spread; ``grace`` is how long (seconds) an
    interrupted ``lev run`` has to record its job cancelled before its session is killed;
    ``drivers`` starts the jobs' ``lev run`` (default: each cold, when its job comes)."""

    def __init__(self, load: Load, client: AgentClient,
                 facts: Callable[[], dict[str, Any]] = gather_facts, *,
                 executor: str = "auto", grace: float = 10.0,
                 temporal: str | None = None, drivers: Drivers | None = None) -> None:
        self._executor = executor
        self._drivers = drivers or Drivers(warm=False)
        self._temporal = temporal
        self._run_tokens: dict[str, str] = {}
        self._stores: dict[str, JobStore] = {}
        self._load = load
        self._client = client
        self._facts = facts
        self._grace = grace

    @activity.defn(name="agent.facts")
    async def facts(self) -> dict[str, Any]:
        """This machine's facts now, as the agent reports them at start."""
        return await asyncio.to_thread(self._facts)

    @activity.defn(name="agent.run_job")
    async def run_job(self, job_id: str) -> str:
        """Run a job sent to this device or its pools with ``lev run --job`` and its own
        job token; the job's status when ``lev run`` ends. Heartbeats while it goes; on
        cancellation, interrupts it and waits for it (at most the grace time, then kills
        its session)."""
        try:
            claim = await asyncio.to_thread(self._client.claim_job, job_id)
        except ApiError as exc:
            if exc.status in (403, 409):  # not ours, or ended: no other attempt would do
                raise ApplicationError(str(exc), type="JobRefused", non_retryable=True) \
                    from None
            raise
        try:
            path = await asyncio.to_thread(
                search_path, claim["wheels"],
                functools.partial(self._client.job_wheel, job_id))
        except (AgentError, OSError, ApiError) as exc:
            await asyncio.to_thread(self._client.end_job, job_id, "failed",
                                    f"the agent cannot fetch the package: {exc}")
            raise ApplicationError(str(exc), type="JobRefused", non_retryable=True) from None
        spread = None
        if claim.get("runs_queue") and self._temporal:
            spread = {"LEV_TEMPORAL": self._temporal, "LEV_RUN_QUEUE": claim["runs_queue"]}
        process = await self._drivers.start(
            job_id, claim["target"], path, self._client.base_url, claim["token"],
            "temporal" if spread else self._executor, spread or {})
        output = asyncio.ensure_future(process.communicate())
        watch = Client(self._client.base_url, claim["token"], timeout=HEARTBEAT_EVERY)
        progress: dict[str, Any] = {}
        try:
            while not output.done():
                progress = await asyncio.to_thread(_progress, watch, job_id, progress)
                activity.heartbeat(progress)
                await asyncio.wait({output}, timeout=HEARTBEAT_EVERY)
        except asyncio.CancelledError:
            await stop_driver(process, output, self._grace)
            await asyncio.to_thread(self._client.end_job, job_id, "cancelled", "cancelled")
            raise
        finally:
            await asyncio.to_thread(watch.close)
        _, stderr = output.result()
        if process.returncode != 0:
            await asyncio.to_thread(self._client.end_job, job_id, "failed",
                                    error_line(stderr, process.returncode))
        return "done" if process.returncode == 0 else "failed"

    @activity.defn(name="agent.run_cr")
    async def run_cr(self, spec: dict[str, Any], coll: str | None) -> dict[str, Any]:
        """Run one run of a job whose runs are spread over this agent's pool, with this
        agent's executor, recording it through the server with the job's token:
        ``{"exit_code", "error"}``. Another attempt (the first agent was lost) forgets what
        the first one recorded of the run, then runs it again."""
        run = RunSpec.from_json(spec)
        try:
            # One request per job, not per run: the token is good until the job ends.
            token = self._run_tokens.get(run.job_id) or await asyncio.to_thread(
                self._client.run_token, run.job_id)
            if len(self._run_tokens) >= 1000:  # of jobs long ended, most of them
                self._run_tokens.clear()
            self._run_tokens[run.job_id] = token
        except ApiError as exc:
            if exc.status in (403, 409):
                raise ApplicationError(str(exc), type="JobRefused", non_retryable=True) \
                    from None
            raise
        store = self._job_store(run.job_id, token)
        executor = await asyncio.to_thread(executors.create, self._executor, "lev agent")
        try:
            if activity.info().attempt > 1:
                await asyncio.to_thread(store.discard_run, run.job_id, run.run_id,
                                        keep_run=True)
            return await run_recorded(store, executor, run, coll or "_", activity.heartbeat,
                                      HEARTBEAT_EVERY)
        finally:
            await executor.aclose()
            await asyncio.to_thread(store.flush)

    def _job_store(self, job_id: str, token: str) -> JobStore:
        """One store per job for all its runs here: a new one per run cost more than the
        run's own bookkeeping (a client, a thread). The oldest goes past :data:`KEPT_STORES`."""
        store = self._stores.pop(job_id, None)
        if store is None:
            store = JobStore(job_id, token, base_url=self._client.base_url)
        self._stores[job_id] = store
        while len(self._stores) > KEPT_STORES:
            self._stores.pop(next(iter(self._stores))).close()
        return store

    @activity.defn(name="agent.end_job")
    async def end_job(self, job_id: str, status: str, error: str) -> None:
        """Record a job no agent could finish as ``status`` with ``error``."""
        await asyncio.to_thread(self._client.end_job, job_id, status, error)

    def registered(self) -> list[Callable[..., Any]]:
        return [self.facts, self.run_job, self.run_cr, self.end_job]
