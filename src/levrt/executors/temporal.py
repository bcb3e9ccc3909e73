"""The temporal executor: each run of the job goes to a pool of agents through Temporal.

A job sent to a pool with its runs spread (``lev task submit --pool P --spread``) is driven by
one agent of the pool with this executor: every ``Cr`` it starts becomes a Temporal workflow
``levrt.run`` on the pool's task queue, whose one activity (``agent.run_cr``) runs the spec on
whichever agent of the pool has a free slot, with that agent's own executor. That agent
records the run's log, documents and end through the server's API with the job's token, as
the driver would; what comes back through Temporal is only the exit code and the error, so
large outputs never ride in Temporal's payloads. A ``Concurrent`` fan-out so spreads over
the pool's agents, each taking as many runs at once as it has slots.

The agent sets ``LEV_TEMPORAL`` (the frontend's ``HOST:PORT``) and ``LEV_RUN_QUEUE`` (the
pool's task queue) for the driver it starts.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from typing import Any

from .base import Executor, ExecutorError, RunHandle, RunObserver, RunSpec

#: the workflow every agent registers to run one spec (levrt.agent._workflows)
RUN_WORKFLOW = "levrt.run"
#: the most a spec may weigh as JSON (its files included): Temporal refuses payloads past 2 MB
MAX_SPEC_BYTES = 1_500_000


def run_workflow_id(job_id: str, run_id: int) -> str:
    return f"lev-run-{job_id}-{run_id}"


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

    @classmethod
    def from_env(cls) -> TemporalExecutor:
        """From ``LEV_TEMPORAL`` and ``LEV_RUN_QUEUE``; ExecutorError naming what is
        missing."""
        address, queue = os.environ.get("LEV_TEMPORAL"), os.environ.get("LEV_RUN_QUEUE")
        if not address or not queue:
            raise ExecutorError("the temporal executor runs a job's runs on a pool's agents: "
                                "it needs LEV_TEMPORAL (HOST:PORT) and LEV_RUN_QUEUE, which "
                                "an agent sets for a task sent with --pool POOL --spread")
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
        data = spec.to_json()
        if len(json.dumps(data)) > MAX_SPEC_BYTES:
            raise ExecutorError(f"run {spec.run_id} ({spec.name}): its files weigh more than "
                                f"the {MAX_SPEC_BYTES} bytes a run sent to a pool may carry")
        # The collection the run's ctx writes go to: the job runtime's recorder knows it.
        coll = getattr(getattr(observer, "info", None), "coll", None)
        client = await self._temporal()
        handle = await client.start_workflow(
            RUN_WORKFLOW, args=[data, coll], id=run_workflow_id(spec.job_id, spec.run_id),
            task_queue=self.queue, execution_timeout=timedelta(days=30))
        return _RemoteRun(handle, observer)


class _RemoteRun(RunHandle):
    host = ""

    def __init__(self, handle: Any, observer: RunObserver) -> None:
        self._handle = handle
        self._observer = observer

    async def wait(self) -> int:
        from temporalio.client import WorkflowFailureError

        try:
            answer: dict[str, Any] = await self._handle.result()
        except WorkflowFailureError as exc:
            self._observer.on_error(f"no agent of the pool finished it: {exc.cause or exc}", "")
            return 1
        if answer.get("error"):
            self._observer.on_error(answer["error"], "")
        return int(answer["exit_code"])

    async def signal(self, sig: str) -> None:
        raise ExecutorError(f"a run on a pool's agent cannot be sent {sig}: cancel it instead")

    async def kill(self) -> None:
        from temporalio.service import RPCError

        try:
            await self._handle.cancel()
        except RPCError:
            return  # it has ended
        try:
            await self._handle.result()
        except Exception:  # noqa: BLE001 - cancelled, as asked
            pass
