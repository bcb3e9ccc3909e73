"""Schedules: slot arithmetic, claiming a slot once with two schedulers on one store (SQLite
and PostgreSQL), firing at an injected time through the app exactly once and again after a
restart, the API's refusals, ``lev schedule``, the pages, and ``ctx.previous()``."""

import asyncio
import html
import io
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import test_tasks
from helpers_hub import PASSWORD, TestClient, serve_in_thread
from helpers_pg import store_url
from test_tasks import _csrf, ended, lev

import levrt
from levrt import ctx
from levrt.server import Settings, create_app
from levrt.server.dispatch import Dispatcher
from levrt.server.schedules import Scheduler
from levrt.store import HubConflictError, ScheduleError, Store
from levrt.store._schedules import MAX_SKIPPED_COUNTED, due_slot, next_slot

# The fixtures of test_tasks: alice's, bob's and root's tokens, and lev.alice.noop published.
tokens = test_tasks.tokens
noop = test_tasks.noop

T0 = datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc)
HELLO = "lev.alice.noop:hello"


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


# -- slot arithmetic -----------------------------------------------------------------------


def test_cron_slots_are_read_in_the_schedules_time_zone():
    # 03:00 in Paris is 02:00 UTC in winter and 01:00 UTC in summer (DST began 2026-03-29).
    paris = {"cron": "0 3 * * *", "interval_seconds": None, "timezone": "Europe/Paris",
             "created_at": T0}
    assert next_slot(paris, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)
    assert next_slot(paris, utc(2026, 3, 27, 12)) == utc(2026, 3, 28, 2)
    # Strictly after: a slot is never its own next.
    assert next_slot(paris, utc(2026, 3, 29, 1)) == utc(2026, 3, 30, 1)


def test_interval_slots_count_from_creation():
    every = {"cron": None, "interval_seconds": 600, "timezone": "UTC", "created_at": T0}
    assert next_slot(every, T0) == T0 + timedelta(minutes=10)
    assert next_slot(every, T0 + timedelta(minutes=25)) == T0 + timedelta(minutes=30)


def test_missed_slots_fire_once_for_the_latest():
    daily = {"cron": "0 3 * * *", "interval_seconds": None, "timezone": "UTC",
             "created_at": T0, "next_fire": utc(2026, 3, 29, 3)}
    # Down from the 29th to the 1st of April at 04:00: slots 29th, 30th, 31st, 1st.
    assert due_slot(daily, utc(2026, 4, 1, 4)) == (utc(2026, 4, 1, 3), 3)
    assert due_slot(daily, utc(2026, 3, 29, 3)) == (utc(2026, 3, 29, 3), 0)
    # Every minute, missed for ten weeks: the latest slot, the count capped, and quickly.
    minutely = dict(daily, cron="* * * * *", timezone="Europe/Paris")
    started = time.perf_counter()
    assert due_slot(minutely, utc(2026, 6, 7, 3, 5, 30)) == (utc(2026, 6, 7, 3, 5),
                                                            MAX_SKIPPED_COUNTED)
    assert time.perf_counter() - started < 1
    every = {"cron": None, "interval_seconds": 60, "timezone": "UTC", "created_at": T0,
             "next_fire": T0 + timedelta(minutes=1)}
    assert due_slot(every, T0 + timedelta(days=70, seconds=90)) == (
        T0 + timedelta(days=70, minutes=1), 70 * 24 * 60)


# -- the store -----------------------------------------------------------------------------


@pytest.fixture(params=["file", "postgresql"])
def db_url(request):
    return store_url(request, request.param)


def test_fields_are_checked(db_url):
    with Store(db_url) as store:
        store.create_user("alice", PASSWORD)

        def add(**timing):
            return store.add_schedule("alice", "scan", target="m:f", params={}, **timing)

        for timing, field in [({"cron": "61 * * * *"}, "cron"), ({"cron": "* * *"}, "cron"),
                              ({"interval": 0}, "interval"), ({"interval": 59}, "interval"),
                              ({"interval": 10**18}, "interval"), ({"cron": "0 0 31 2 *"}, "cron"),
                              ({"cron": "0 3 * * *", "timezone": "../etc/passwd"}, "timezone"),
                              ({}, "cron"), ({"cron": "0 3 * * *", "interval": 60}, "cron"),
                              ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "timezone")]:
            with pytest.raises(ScheduleError) as refused:
                add(**timing)
            assert refused.value.field == field, timing
        add(cron="0 3 * * *")
        with pytest.raises(HubConflictError):
            add(cron="0 4 * * *")


class RecordingRunner:
    """Stands in for the TaskRunner in the claim test: records a queued job per submit, as
    the runner does, without running it."""

    def __init__(self, store):
        self.store = store

    async def submit(self, target, params, name, owner, package=None):
        return self.store.create_job(name, target=target, params=params, owner=owner,
                                     package=package, queued=True)


def test_two_schedulers_on_one_store_fire_each_slot_once(db_url):
    """Two servers (two Store objects, two schedulers) look at the same instants at the
    same time, twenty slots over: every slot fires exactly once."""
    with Store(db_url) as first, Store(db_url) as second:
        first.create_user("alice", PASSWORD)
        first.add_schedule("alice", "every", target="m:f", params={"a": 1}, interval=60,
                           at=T0)
        clock = {"at": T0}
        schedulers = [Scheduler(s, Dispatcher(None, RecordingRunner(s), key="test"),
                                clock=lambda: clock["at"]) for s in (first, second)]
        for minute in range(1, 21):
            clock["at"] = T0 + timedelta(minutes=minute, seconds=1)
            barrier = threading.Barrier(2)

            def tick(scheduler, barrier=barrier):
                barrier.wait()
                return asyncio.run(scheduler.tick())

            results: list[list[str]] = []
            threads = [threading.Thread(target=lambda s=s, r=results: r.append(tick(s)))
                       for s in schedulers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(len(r) for r in results) == [0, 1], minute
        schedule = first.get_schedule("alice", "every")
        fires = first.list_fires(schedule["id"], limit=100)
        assert [f["slot"] for f in reversed(fires)] == [
            T0 + timedelta(minutes=m) for m in range(1, 21)]
        assert len({f["job_id"] for f in fires}) == 20
        assert len(first.list_jobs(limit=100)) == 20


def test_a_paused_schedule_does_not_fire_and_resumes_from_now(db_url):
    with Store(db_url) as store:
        store.create_user("alice", PASSWORD)
        store.add_schedule("alice", "s", target="m:f", params={}, cron="0 * * * *", at=T0)
        store.pause_schedule("alice", "s", True)
        scheduler = Scheduler(store, Dispatcher(None, RecordingRunner(store), key="test"),
                              clock=lambda: T0 + timedelta(hours=5, minutes=30))
        assert asyncio.run(scheduler.tick()) == []
        resumed = store.pause_schedule("alice", "s", False, at=T0 + timedelta(hours=5, minutes=30))
        assert resumed["next_fire"] == T0 + timedelta(hours=6)
        assert store.get_schedule("alice", "s")["next_fire"] == T0 + timedelta(hours=6)
        assert store.remove_schedule("alice", "s")
        assert store.list_schedules("alice") == []


# -- the previous run ----------------------------------------------------------------------


async def remembering(target: str = "a"):
    """A workflow that says what its previous run found, then finds one more host."""
    before = await ctx.previous()
    hosts = [] if before is None else before["documents"][0]["data"]["hosts"]
    await ctx.doc.set(hosts=[*hosts, f"{target}-{len(hosts)}"])
    return None if before is None else before["job_id"]


def test_a_workflow_reads_its_previous_successful_run(store):
    def once(target):
        return levrt.run(remembering(target), store=store, executor="process",
                         target="tests:remembering", params={"target": target})

    assert once("a") is None
    first = store.list_jobs(limit=1)[0]["id"]
    assert once("b") is None  # other parameters: another series
    assert once("a") == first
    second = store.list_jobs(limit=1)[0]["id"]
    assert store.list_documents(second)[0]["data"] == {"hosts": ["a-0", "a-1"]}
    # A failed job is not a previous run to build on.
    failing = store.create_job("remembering", target="tests:remembering",
                               params={"target": "a"})
    store.finish_job(failing, "failed", error="no")
    assert once("a") == second


def test_a_scheduled_job_reads_its_schedules_previous_run(store):
    store.create_user("alice", PASSWORD)
    schedule = store.add_schedule("alice", "s", target="m:f", params={"p": 1}, interval=60,
                                  at=T0)
    jobs = []
    for minute in (1, 2):
        job = store.create_job("s", target="m:f", params={"p": 1}, owner="alice")
        store.merge_document("_", job, None, {"minute": minute})
        store.finish_job(job, "done")
        current = dict(schedule, next_fire=T0 + timedelta(minutes=minute))
        store.claim_slot(current, current["next_fire"], 0,
                         T0 + timedelta(minutes=minute + 1))
        store.record_fire(schedule["id"], current["next_fire"], job)
        jobs.append(job)
    found = store.previous_documents(jobs[1])
    assert found["job_id"] == jobs[0]
    assert found["documents"][0]["data"] == {"minute": 1}
    assert store.previous_documents(jobs[0]) is None


# -- through the server --------------------------------------------------------------------


def fire(client, at):
    """Run the app's scheduler once at ``at``; the job ids it submitted."""
    scheduler = client.app.state.scheduler
    scheduler.clock = lambda: at
    return client.portal.call(scheduler.tick)


def test_a_schedule_fires_at_its_time_once_and_after_a_restart(store, tokens, noop):
    alice = tokens["alice"]
    settings = Settings(db_url=store.url)
    with TestClient(create_app(settings, store=store)) as client:
        answer = client.post("/api/schedules", headers=alice, json={
            "name": "nightly", "target": HELLO, "params": {"word": "again"},
            "cron": "30 2 * * *", "timezone": "Europe/Paris"})
        assert answer.status_code == 201, answer.text
        created = answer.json()
        assert created["package"] == "lev.alice.noop==1.0"
        slot = created["next_fire"]
        at = datetime.fromisoformat(slot)
        assert at.astimezone(timezone.utc).hour in (0, 1)  # 02:30 in Paris
        assert fire(client, at - timedelta(seconds=1)) == []
        [job_id] = fire(client, at + timedelta(seconds=3))
        assert fire(client, at + timedelta(seconds=4)) == []
        job = ended(client, alice, job_id)
        assert job["status"] == "done", job["error"]
        assert job["name"] == "nightly" and job["params"] == {"word": "again"}
    # A new server on the same store: the slot stays fired; the next day's fires once.
    with TestClient(create_app(settings, store=store)) as client:
        assert fire(client, at + timedelta(seconds=5)) == []
        shown = client.get("/api/schedules/nightly", headers=alice).json()
        assert [(f["job_id"], f["status"]) for f in shown["fires"]] == [(job_id, "done")]
        # Three days later: one task for the latest missed slot, two skipped.
        [late] = fire(client, at + timedelta(days=3, hours=1))
        shown = client.get("/api/schedules/nightly", headers=alice).json()
        assert shown["fires"][0]["job_id"] == late and shown["fires"][0]["skipped"] == 2
        assert datetime.fromisoformat(shown["next_fire"]) == at + timedelta(days=4)
        ended(client, alice, late)


def test_the_api_names_the_refused_field(store, tokens, noop):
    alice, bob = tokens["alice"], tokens["bob"]
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as client:
        def refused(field, **body):
            answer = client.post("/api/schedules", headers=alice, json={
                "name": "s", "target": HELLO, **body})
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"][0]["loc"] == ["body", field], answer.text

        refused("cron", cron="every day")
        refused("timezone", cron="0 3 * * *", timezone="Nowhere/Land")
        refused("interval", interval=0)
        refused("interval", interval=-5)
        refused("cron")
        refused("target", target="lev.alice.noop:missing", cron="0 3 * * *")
        answer = client.post("/api/schedules", headers=alice, json={
            "name": "s", "target": HELLO, "params": {"nope": 1}, "cron": "0 3 * * *"})
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["body", "params", "nope"]
        body = {"name": "s", "target": HELLO, "interval": 3600}
        assert client.post("/api/schedules", headers=alice, json=body).status_code == 201
        assert client.post("/api/schedules", headers=alice, json=body).status_code == 409
        # Another user's schedules are not there for bob.
        assert client.get("/api/schedules", headers=bob).json() == []
        assert client.post("/api/schedules/s/pause", headers=bob).status_code == 404
        assert client.post("/api/schedules/s/pause", headers=alice).json()["paused"] is True
        assert client.post("/api/schedules/s/resume", headers=alice).json()["paused"] is False
        assert client.delete("/api/schedules/s", headers=alice).status_code == 204
        assert client.delete("/api/schedules/s", headers=alice).status_code == 404


def test_lev_schedule_add_list_pause_resume_rm(store, tokens, noop, capsys, monkeypatch):
    with serve_in_thread(store) as url:
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        code, _, err = lev(capsys, "login", url, "--user", "alice", "--password-stdin")
        assert code == 0, err
        code, out, err = lev(capsys, "schedule", "add", "daily", HELLO, "--cron", "0 3 * * *",
                             "--timezone", "Asia/Tokyo", "--param", "word=yo")
        assert code == 0, err
        assert "schedule daily added: next at" in out
        code, out, _ = lev(capsys, "schedule", "list")
        assert "daily" in out and "0 3 * * *" in out and "Asia/Tokyo" in out
        assert lev(capsys, "schedule", "pause", "daily")[0] == 0
        code, out, _ = lev(capsys, "schedule", "list", "--json")
        assert '"paused": true' in out
        assert lev(capsys, "schedule", "resume", "daily")[0] == 0
        code, _, err = lev(capsys, "schedule", "add", "bad", HELLO, "--cron", "nope")
        assert code != 0 and err.startswith("lev: error: ") and "cron" in err
        assert len(err.strip().splitlines()) == 1
        assert lev(capsys, "schedule", "rm", "daily")[0] == 0
        code, _, err = lev(capsys, "schedule", "rm", "daily")
        assert code != 0 and "no schedule 'daily'" in err


def test_schedule_pages(store, tokens, noop):
    alice = tokens["alice"]
    with TestClient(create_app(Settings(db_url=store.url), store=store),
                    follow_redirects=False) as web:
        answer = web.post("/login", data={"user": "alice", "password": PASSWORD,
                                          "csrf_token": _csrf(web.get("/login"))})
        assert answer.status_code == 303
        task = web.post("/api/tasks", headers=alice, json={
            "target": HELLO, "params": {"word": "page"}}).json()["id"]
        page = web.get(f"/tasks/{task}").text
        assert f'href="/tasks/{task}/schedule">Schedule…</a>' in page
        form = web.get(f"/tasks/{task}/schedule")
        assert 'value="hello"' in form.text and '"word": "page"' in html.unescape(form.text)
        answer = web.post(f"/tasks/{task}/schedule", data={
            "csrf_token": _csrf(form), "name": "hello", "cron": "0 3 * * *",
            "timezone": "Nowhere"})
        assert answer.status_code == 400 and "unknown time zone" in answer.text
        answer = web.post(f"/tasks/{task}/schedule", data={
            "csrf_token": _csrf(form), "name": "hello", "cron": "", "interval": "900",
            "timezone": "UTC"})
        assert answer.status_code == 303 and answer.headers["location"] == "/schedules"
        made = store.get_schedule("alice", "hello")
        assert made["params"] == {"word": "page"} and made["interval_seconds"] == 900
        page = web.get("/schedules")
        assert 'id="schedule-hello"' in page.text and "every 900 s" in page.text
        assert web.post("/schedules/hello/pause",
                        data={"csrf_token": _csrf(page)}).status_code == 303
        assert store.get_schedule("alice", "hello")["paused"]
        assert web.post("/schedules/hello/resume",
                        data={"csrf_token": _csrf(page)}).status_code == 303
        assert not store.get_schedule("alice", "hello")["paused"]
        # A notification: its webhook secret on this answer only, its URL's path never.
        added = web.post("/schedules/hello/hooks", data={
            "csrf_token": _csrf(page), "kind": "webhook", "events": ["done", "failed"],
            "url": "http://127.0.0.1:9/private-path"})
        assert added.status_code == 200
        secret = added.text.split('<code id="hook-secret">', 1)[1].split("<", 1)[0]
        assert secret.startswith("levw_")
        again = web.get("/schedules").text
        assert secret not in again and "private-path" not in again
        assert "webhook http://127.0.0.1/… on done, failed" in again
        refused = web.post("/schedules/hello/hooks", data={
            "csrf_token": _csrf(page), "kind": "webhook", "events": ["done"], "url": "nope"})
        assert refused.status_code == 400 and "url:" in refused.text
        # The same form on the task's page, for this task alone.
        added = web.post(f"/tasks/{task}/hooks", data={
            "csrf_token": _csrf(page), "kind": "apprise", "events": ["failed"],
            "url": "mailto://127.0.0.1/private-box"})
        assert added.status_code == 200 and "Notification added to <strong>this task" in (
            added.text)
        assert 'id="hook-secret"' not in added.text
        assert store.list_hooks("alice", job_id=task)[0]["events"] == ["failed"]
        page_text = web.get(f"/tasks/{task}").text
        assert "apprise mailto://127.0.0.1/… on failed" in page_text
        assert "private-box" not in page_text
        refused = web.post(f"/tasks/{task}/hooks", data={
            "csrf_token": _csrf(page), "kind": "pager", "events": ["done"],
            "url": "http://127.0.0.1/"})
        assert refused.status_code == 400 and 'id="hook-error"' in refused.text
        assert len(store.list_hooks("alice", job_id=task)) == 1
        assert web.post("/schedules/hello/remove",
                        data={"csrf_token": _csrf(page)}).status_code == 303
        assert store.get_schedule("alice", "hello") is None
