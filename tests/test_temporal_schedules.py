"""Schedules on a server given Temporal: each has a Temporal Schedule of the same timing,
paused, resumed and removed with it; Temporal's action fires a due slot once however often
it comes; a schedule Temporal lost is made again by the next sync, and an overdue slot
fires once at start. Against the session's Temporal dev server."""

import asyncio
import math
from datetime import datetime, timedelta, timezone

import test_tasks
from helpers_hub import TestClient
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from test_tasks import wait_for

from levrt.server import Settings, create_app
from levrt.server.auth import server_secret
from levrt.server.dispatch import deployment_key
from levrt.server.temporal_schedules import TemporalScheduler

tokens = test_tasks.tokens
noop = test_tasks.noop
HELLO = "lev.alice.noop:hello"


def _app(store, temporal_server):
    return TestClient(create_app(Settings(db_url=store.url, temporal=temporal_server.address),
                                 store=store))


def _described(client, scheduler: TemporalScheduler, schedule: dict):
    """The Temporal Schedule of the store's schedule, None when there is none."""
    async def describe():
        temporal = await Client.connect(scheduler.address)
        try:
            return await temporal.get_schedule_handle(
                scheduler.schedule_id(schedule)).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
    return asyncio.run(describe())


def _temporal_call(scheduler: TemporalScheduler, schedule: dict, method: str) -> None:
    async def call():
        temporal = await Client.connect(scheduler.address)
        await getattr(temporal.get_schedule_handle(scheduler.schedule_id(schedule)),
                      method)()
    asyncio.run(call())


def test_the_store_s_schedules_are_temporal_schedules(store, tokens, noop, temporal_server):
    alice = tokens["alice"]
    with _app(store, temporal_server) as client:
        scheduler = client.app.state.scheduler
        assert isinstance(scheduler, TemporalScheduler)
        assert scheduler.key == deployment_key(server_secret(client.app.state))
        answer = client.post("/api/schedules", headers=alice, json={
            "name": "nightly", "target": HELLO, "params": {"word": "t"},
            "cron": "30 2 * * *", "timezone": "Europe/Paris"})
        assert answer.status_code == 201, answer.text
        nightly = answer.json()
        nightly_row = store.get_schedule("alice", "nightly")
        described = wait_for(lambda: _described(client, scheduler, nightly_row))
        spec = described.schedule.spec
        assert spec.time_zone_name == "Europe/Paris"
        [calendar] = spec.calendars  # Temporal keeps the cron expression as a calendar
        assert (calendar.hour[0].start, calendar.minute[0].start) == (2, 30)
        # Temporal's next action is the store's next slot: 02:30 in Paris.
        assert described.info.next_action_times[0] == datetime.fromisoformat(
            nightly["next_fire"])
        assert not described.schedule.state.paused
        answer = client.post("/api/schedules", headers=alice, json={
            "name": "hourly", "target": HELLO, "params": {"word": "t"}, "interval": 3600})
        hourly = answer.json()
        hourly_row = store.get_schedule("alice", "hourly")
        interval = wait_for(lambda: _described(client, scheduler, hourly_row))
        [every] = interval.schedule.spec.intervals
        created = datetime.fromisoformat(hourly["created_at"])
        assert every.every == timedelta(hours=1)
        assert every.offset == timedelta(seconds=math.ceil(created.timestamp()) % 3600)
        # Temporal acts at the store's next slot, or within the second after it (its offset
        # is whole seconds): never just before, when the slot would not be due yet.
        slot = datetime.fromisoformat(hourly["next_fire"])
        actions = interval.info.next_action_times
        assert any(timedelta(0) <= at - slot < timedelta(seconds=1) for at in actions), (
            slot, actions)
        # Paused, resumed and removed with the store's.
        assert client.post("/api/schedules/nightly/pause", headers=alice).status_code == 200
        wait_for(lambda: _described(client, scheduler, nightly_row).schedule.state.paused)
        assert client.post("/api/schedules/nightly/resume", headers=alice).status_code == 200
        wait_for(lambda: not _described(client, scheduler, nightly_row).schedule.state.paused)
        assert client.delete("/api/schedules/nightly", headers=alice).status_code == 204
        wait_for(lambda: _described(client, scheduler, nightly_row) is None)
        # One Temporal lost (a dev server restarted without its state) is made again.
        _temporal_call(scheduler, hourly_row, "delete")
        client.portal.call(scheduler.sync)
        assert _described(client, scheduler, hourly_row) is not None
        client.delete("/api/schedules/hourly", headers=alice)
        wait_for(lambda: _described(client, scheduler, hourly_row) is None)


def test_temporal_fires_a_due_slot_once(store, tokens, noop, temporal_server):
    alice = tokens["alice"]
    with _app(store, temporal_server) as client:
        scheduler = client.app.state.scheduler
        wait_for(lambda: scheduler.scheduler.dispatcher._client is not None)
        package = client.get("/api/packages/lev.alice.noop", headers=alice).json()
        made = store.add_schedule(
            "alice", "due", target=HELLO, params={"word": "fired"}, interval=60,
            package=f"lev.alice.noop=={package['latest']}",
            at=datetime.now(timezone.utc) - timedelta(seconds=65))
        # Made behind the server's back: the next sync gives it a Temporal Schedule, whose
        # first action would be at its next slot; an action taken now fires the due one.
        client.portal.call(scheduler.sync)
        assert store.list_fires(made["id"]) == []
        for _ in range(3):
            _temporal_call(scheduler, made, "trigger")
        fires = wait_for(lambda: [f for f in store.list_fires(made["id"]) if f["job_id"]])
        job = test_tasks.ended(client, alice, fires[0]["job_id"])
        assert job["status"] == "done" and job["name"] == "due"
        assert len(store.list_fires(made["id"])) == 1
        client.delete("/api/schedules/due", headers=alice)


def test_an_overdue_slot_fires_once_at_start(store, tokens, noop, temporal_server):
    alice = tokens["alice"]
    package = None
    with _app(store, temporal_server) as client:
        package = client.get("/api/packages/lev.alice.noop", headers=alice).json()["latest"]
    made = store.add_schedule(
        "alice", "late", target=HELLO, params={"word": "late"}, interval=60,
        package=f"lev.alice.noop=={package}",
        at=datetime.now(timezone.utc) - timedelta(minutes=10, seconds=5))
    with _app(store, temporal_server) as client:
        fires = wait_for(lambda: [f for f in store.list_fires(made["id"]) if f["job_id"]])
        [fire] = fires
        assert fire["skipped"] == 9
        assert test_tasks.ended(client, alice, fire["job_id"])["status"] == "done"
        client.delete("/api/schedules/late", headers=alice)
