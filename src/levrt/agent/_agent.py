"""The agent: a Temporal worker on the device's task queue and its pools' queues, and a
heartbeat to the server. It connects out only, to the server's HTTP API and to the Temporal
frontend; it never opens the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any

from levrt._temporal import workflow_runner
from levrt.agent._activities import HEARTBEAT_EVERY, Activities, Load
from levrt.agent._driver import Drivers
from levrt.agent._enrolment import AgentError
from levrt.agent._facts import gather_facts
from levrt.agent._workflows import Ask, RunJob, RunSpecsOnAgents
from levrt.client import AgentClient, ApiError, ApiUnreachable

log = logging.getLogger("lev.agent")


class Agent:
    """``lev agent``: reports to the server through ``client`` (an :class:`AgentClient`
    holding a device token) and serves its activities on its Temporal queues.

    ``temporal`` (``HOST:PORT``) overrides the address the server tells; ``slots`` is how
    many activities run at once from each of its queues (default: the machine's cores; one
    limit over all queues would let idle pollers of one queue hold every slot); ``executor``
    runs the tools of the jobs it takes (``auto``, ``docker`` or ``process``). :meth:`run`
    returns after :meth:`shutdown`; it raises :class:`AgentError` when the server refuses the
    device or Temporal cannot be reached at start."""

    def __init__(self, client: AgentClient, *, temporal: str | None = None,
                 slots: int | None = None, executor: str = "auto",
                 facts: Callable[[], dict[str, Any]] = gather_facts) -> None:
        self._client = client
        self._executor = executor
        self._temporal = temporal
        self._load = Load(slots or os.cpu_count() or 1)
        self._facts = facts
        self._stop = asyncio.Event()
        self.config: dict[str, Any] | None = None

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Stop polling, let running activities end, stop heartbeats. Safe to call twice,
        and before :meth:`run`."""
        self._stop.set()

    async def _beat(self, facts: dict[str, Any] | None = None,
                    patience: float | None = None) -> dict[str, Any]:
        """One heartbeat (``patience`` as the client's); the device's configuration.
        ApiError for a beat the server could not take now: no answer, or a 5xx (its store
        restarting, say); AgentError for a refusal of the device."""
        try:
            config: dict[str, Any] = await asyncio.to_thread(
                self._client.heartbeat, running=self._load.running, slots=self._load.slots,
                facts=facts, patience=patience)
        except ApiError as exc:
            if isinstance(exc, ApiUnreachable) or exc.status >= 500:
                raise
            raise AgentError(f"the server refuses this device: {exc}") from None
        return config

    async def run(self) -> None:
        facts = await asyncio.to_thread(self._facts)
        try:
            self.config = config = await self._beat(facts)
        except ApiError as exc:
            raise AgentError(str(exc)) from None
        address = self._temporal or config["temporal"]
        if not address:
            raise AgentError("the server does not say where Temporal is: give lev agent "
                             "--temporal HOST:PORT, or start the server with lev serve "
                             "--temporal HOST:PORT")
        from temporalio.client import Client
        from temporalio.worker import Worker

        try:
            temporal = await Client.connect(address)
        except RuntimeError as exc:
            given = "--temporal" if self._temporal else "the server"
            raise AgentError(f"cannot reach Temporal at {address} (the address {given} gave; "
                             f"is its frontend running and reachable from here?): {exc}") \
                from None
        queues = [config["queues"]["device"], *config["queues"]["pools"]]
        drivers = Drivers()
        activities = Activities(self._load, self._client, self._facts,
                                executor=self._executor, temporal=address, drivers=drivers)
        workers = [Worker(temporal, task_queue=queue, workflows=[Ask, RunJob, RunSpecsOnAgents],
                          activities=activities.registered(),
                          max_concurrent_activities=self._load.slots,
                          # Temporal's default sends one every 24 s at most (80% of the
                          # timeout), and a cancellation waits for the next one.
                          max_heartbeat_throttle_interval=timedelta(seconds=HEARTBEAT_EVERY),
                          interceptors=[self._load],
                          workflow_runner=workflow_runner()) for queue in queues]
        log.info("device %s/%s: polling %s at %s", config["owner"], config["name"],
                 ", ".join(queues), address)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(drivers.aclose)  # after the workers stopped
            for worker in workers:
                await stack.enter_async_context(worker)
            await drivers.prepare()
            await self._heartbeats(float(config["heartbeat_interval"]))
        log.info("stopped")

    async def _heartbeats(self, interval: float) -> None:
        """Beat every ``interval`` seconds until shut down; a server that does not answer,
        or answers 5xx, is tried again at the next beat; one that refuses the device ends
        the agent."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            if self._stop.is_set():
                return
            try:
                # Tried once: the next beat is the next try. Sent again for the client's
                # patience, a beat to a server that is down held a stopping agent for as
                # long (a minute), and its process's exit waited for that thread.
                await self._beat(patience=0)
            except ApiError as exc:
                log.warning("heartbeat: %s", exc)
