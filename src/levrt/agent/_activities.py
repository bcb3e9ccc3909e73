"""The activities an agent offers, registered with Temporal by name (``agent.<what>``).

The server runs them through a workflow on a device's or pool's task queue
(:mod:`levrt.agent._workflows`); each is a method of :class:`Activities`, which holds what
they share: the agent's facts and its load."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from levrt.agent._facts import gather_facts


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
    """The agent's activities; :meth:`registered` lists them for a Temporal worker."""

    def __init__(self, load: Load, facts: Callable[[], dict[str, Any]] = gather_facts) -> None:
        self._load = load
        self._facts = facts

    @activity.defn(name="agent.facts")
    async def facts(self) -> dict[str, Any]:
        """This machine's facts now, as the agent reports them at start."""
        return await asyncio.to_thread(self._facts)

    def registered(self) -> list[Callable[..., Any]]:
        return [self.facts]
