"""Schedules fired by Temporal Schedules, for a server given Temporal (``lev serve --temporal``).

The store stays the schedules' record (docs/schedules.md); Temporal is their clock. Each
schedule has a Temporal Schedule of the same timing (its cron expression in its time zone,
or its interval counted from its creation) whose action starts the workflow ``levrt.fire``
on this deployment's server queue; any server of the deployment runs it, and its activity
fires the schedule through :meth:`levrt.server.schedules.Scheduler.tick`: the slot is
claimed in the store, so it fires once however many servers or Temporal actions ask, and
of slots missed while no server ran, only the latest fires.

The Temporal Schedules follow the store: a sync, at start, every :data:`SYNC_SECONDS`
and right after a schedule is made, paused, resumed or removed, creates the missing ones,
pauses or unpauses them, and deletes those whose schedule is gone. At start (and each time
Temporal is reached again) the schedules the store says are overdue fire once, as without
Temporal: slots missed while Temporal had no Schedule for them. A deployment's ids
and queue carry a key derived from the server's secret, so deployments sharing one Temporal
never fire each other's schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from temporalio import activity, workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from levrt._temporal import workflow_runner
from levrt.server.schedules import Scheduler

logger = logging.getLogger("lev.schedules")

FIRE_WORKFLOW = "levrt.fire"
FIRE_ACTIVITY = "levrt.fire_schedule"
# Seconds between two syncs of the Temporal Schedules with the store.
SYNC_SECONDS = 30.0
# Missed actions are still taken this late (the activity keeps only the latest slot).
CATCHUP_WINDOW = timedelta(days=365)


# What Temporal sets on a workflow a Schedule starts: the time of its action.
_SCHEDULED_AT = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name=FIRE_WORKFLOW)
class Fire:
    """One action of a schedule's Temporal Schedule: fire the schedule if it is due."""

    @workflow.run
    async def run(self, schedule_id: int) -> list[str]:
        scheduled = workflow.info().typed_search_attributes.get(_SCHEDULED_AT)
        fired: list[str] = await workflow.execute_activity(
            FIRE_ACTIVITY, args=[schedule_id, scheduled.isoformat() if scheduled else None],
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=5))
        return fired


def _spec(schedule: dict[str, Any]) -> ScheduleSpec:
    if schedule["cron"]:
        return ScheduleSpec(cron_expressions=[schedule["cron"]],
                            time_zone_name=schedule["timezone"])
    every = int(schedule["interval_seconds"])
    # Slots are counted from the schedule's creation, as the store counts them; Temporal's
    # offset is whole seconds: rounded up, its actions come at or just after the slots.
    offset = math.ceil(schedule["created_at"].timestamp()) % every
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every),
                                                        offset=timedelta(seconds=offset))])


class TemporalScheduler:
    """Fires ``scheduler``'s schedules from Temporal Schedules through the frontend at
    ``address``, named for the dispatcher's deployment key. Same surface as
    :class:`~levrt.server.schedules.Scheduler`: :meth:`start`, :meth:`stop`,
    :meth:`changed`."""

    def __init__(self, scheduler: Scheduler, *, sync_every: float = SYNC_SECONDS) -> None:
        self.scheduler = scheduler
        self.key: str = scheduler.dispatcher.key
        self.queue = f"lev-server-{self.key}"
        self.sync_every = sync_every
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._event_loop: asyncio.AbstractEventLoop | None = None

    @property
    def address(self) -> str | None:
        """The Temporal frontend's ``HOST:PORT``: the dispatcher's."""
        address: str | None = self.scheduler.dispatcher.address
        return address

    def schedule_id(self, schedule: dict[str, Any]) -> str:
        """The Temporal Schedule's id of the store's ``schedule``. Its creation time is in
        it: a store may give a removed schedule's id to a new one, whose timing differs."""
        created = int(schedule["created_at"].timestamp())
        return f"lev-{self.key}-schedule-{schedule['id']}-{created}"

    @activity.defn(name=FIRE_ACTIVITY)
    async def fire(self, schedule_id: int, scheduled: str | None) -> list[str]:
        """Fire the schedule if it is due now, or at ``scheduled`` (ISO 8601), the time of
        Temporal's action when its clock is ahead of ours: the jobs submitted (none when
        another server or an earlier action fired its slot)."""
        at = self.scheduler.clock()
        if scheduled is not None:
            at = max(at, datetime.fromisoformat(scheduled))
        return await self.scheduler.tick(schedule_id, at=at)

    async def sync(self) -> None:
        """Make Temporal's Schedules of this deployment match the store's schedules."""
        client = await self.scheduler.dispatcher.temporal()
        schedules = await run_in_threadpool(self.scheduler.store.list_schedules)
        wanted = {self.schedule_id(s): s for s in schedules}
        for name, schedule in wanted.items():
            await self._align(client, name, schedule)
        prefix = f"lev-{self.key}-schedule-"
        async for listed in await client.list_schedules():
            if listed.id.startswith(prefix) and listed.id not in wanted:
                with contextlib.suppress(RPCError):  # removed by another server meanwhile
                    await client.get_schedule_handle(listed.id).delete()

    async def _align(self, client: Client, name: str, schedule: dict[str, Any]) -> None:
        handle = client.get_schedule_handle(name)
        try:
            described = await handle.describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            action = ScheduleActionStartWorkflow(
                FIRE_WORKFLOW, schedule["id"], id=f"lev-{self.key}-fire-{schedule['id']}",
                task_queue=self.queue)
            with contextlib.suppress(ScheduleAlreadyRunningError):  # another server's sync
                await client.create_schedule(name, Schedule(
                    action=action, spec=_spec(schedule),
                    policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE,
                                          catchup_window=CATCHUP_WINDOW),
                    state=ScheduleState(paused=schedule["paused"],
                                        note=f"{schedule['owner']}/{schedule['name']}")))
            return
        if described.schedule.state.paused != schedule["paused"]:
            if schedule["paused"]:
                await handle.pause(note="paused in levrt")
            else:
                await handle.unpause(note="resumed in levrt")

    async def _run(self) -> None:
        while True:
            try:
                client = await self.scheduler.dispatcher.temporal()
                async with Worker(client, task_queue=self.queue, workflows=[Fire],
                                  activities=[self.fire], workflow_runner=workflow_runner()):
                    await self.sync()
                    # Slots missed while no server (or no Temporal) ran: Temporal takes up
                    # only those of its Schedules that existed then; the latest fires now.
                    await self.scheduler.tick()
                    while True:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self.sync_every)
                        self._wake.clear()
                        await self.sync()
            except Exception:  # Temporal away: schedules fire when it is back
                logger.exception("cannot keep the schedules in Temporal at %s", self.address)
                await asyncio.sleep(min(self.sync_every, 5.0))

    def changed(self) -> None:
        """A schedule was made, paused, resumed or removed: sync soon. Thread safe."""
        if self._event_loop is not None:
            self._event_loop.call_soon_threadsafe(self._wake.set)

    def start(self) -> None:
        """Connect, serve the fire workflow and keep the Temporal Schedules in sync."""
        self._event_loop = asyncio.get_running_loop()
        self._loop_task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
