"""The workflows an agent runs on its task queues. Deterministic code only: Temporal replays
it. Every agent registers them, so one started on a device's (or pool's) queue runs there."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

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


# The name the server starts it by (levrt.server.dispatch.JOB_WORKFLOW).
JOB = "levrt.job"
# An agent silent this long is lost: its job goes to another agent of the pool.
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
# How often a lost job is given to an agent again before it fails.
JOB_ATTEMPTS = 3


@workflow.defn(name=JOB)
class RunJob:
    """Run one dispatched job on an agent polling this workflow's queue (``agent.run_job``).
    An agent that stops heartbeating loses it to another agent of the queue; when no attempt
    finishes it, an agent records the job failed (``agent.end_job``). Cancelling the workflow
    interrupts the job's ``lev run`` and waits for it to stop."""

    @workflow.run
    async def run(self, job_id: str) -> Any:
        queue = workflow.info().task_queue
        try:
            return await workflow.execute_activity(
                "agent.run_job", job_id, task_queue=queue,
                start_to_close_timeout=timedelta(days=30), heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=JOB_ATTEMPTS,
                                         non_retryable_error_types=["JobRefused"]),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                raise
            reason = str(exc.cause or exc)
            await workflow.execute_activity(
                "agent.end_job", args=[job_id, "failed", f"no agent finished it: {reason}"],
                task_queue=queue, start_to_close_timeout=timedelta(minutes=1))
            raise


def _retrieved(handle: asyncio.Future[Any]) -> None:
    if not handle.cancelled():
        handle.exception()


# The name the temporal executor starts it by (levrt.executors.temporal.RUNS_WORKFLOW).
RUNS = "levrt.runs"


@workflow.defn(name=RUNS)
class RunSpecsOnAgents:
    """Run specs of a job on the agents polling this workflow's queue, each as an activity
    ``agent.run_cr`` whose id is its run id, all at once (each takes a slot of whichever
    agent polls first). An agent lost mid-run loses that run to another agent of the queue,
    which runs it again from the start. The signal ``cancel`` with run ids cancels those
    runs. The driver that started it reads each run's end from its history as it comes;
    one workflow for the runs a fan-out starts together costs Temporal about a quarter of
    one workflow per run (bench/temporal_batching.py)."""

    def __init__(self) -> None:
        self._runs: dict[int, workflow.ActivityHandle[Any]] = {}
        self._cancelled: set[int] = set()

    @workflow.run
    async def run(self, runs: list[list[Any]]) -> None:
        for spec, coll in runs:
            handle = self._runs[spec["run_id"]] = workflow.start_activity(
                "agent.run_cr", args=[spec, coll], activity_id=str(spec["run_id"]),
                task_queue=workflow.info().task_queue,
                start_to_close_timeout=timedelta(days=30), heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=JOB_ATTEMPTS,
                                         non_retryable_error_types=["JobRefused"]),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
            # A run's failure is read from the history; one that ends while this workflow
            # leaves the worker's cache (the worker stopping) is not an error to print.
            handle.add_done_callback(_retrieved)
        self.cancel(sorted(self._cancelled))  # asked before the runs were scheduled
        await asyncio.gather(*self._runs.values(), return_exceptions=True)

    @workflow.signal(name="cancel")
    def cancel(self, run_ids: list[int]) -> None:
        for run_id in run_ids:
            handle = self._runs.get(run_id)
            if handle is None:
                self._cancelled.add(run_id)
            else:
                handle.cancel()
