"""The workflows an agent runs on its task queues. Deterministic code only: Temporal replays
it. Every agent registers them, so one started on a device's (or pool's) queue runs there."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

# The name the server starts it by (levrt.server.devices.ASK_WORKFLOW).
ASK = "levrt.ask"


@workflow.defn(name=ASK)
class Ask:
    """Run one activity by name on this workflow's own task queue, once, and return its
    answer: how the server asks a device (or any agent of a pool) something."""

    @workflow.run
    async def run(self, activity: str, args: list[Any], timeout: float) -> Any:
        return await workflow.execute_activity(
            activity, args=args, task_queue=workflow.info().task_queue,
            start_to_close_timeout=timedelta(seconds=timeout),
            retry_policy=RetryPolicy(maximum_attempts=1))
