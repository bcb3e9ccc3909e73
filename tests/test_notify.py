"""Notifications of ended jobs: a webhook received by a local HTTP listener with a valid
signature and retried after a 500, one refused for good by a 404, a mail received by a local
SMTP server (aiosmtpd) through apprise's mailto://, hooks claimed once by two notifiers, and
secrets never shown again."""

import asyncio
import hashlib
import hmac
import json
import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import test_tasks
from aiosmtpd.controller import Controller
from helpers_hub import PASSWORD, TestClient
from helpers_pg import store_url
from test_tasks import ended, submit, wait_for

from levrt.server import Settings, create_app
from levrt.server.notify import SIGNATURE_HEADER, Notifier
from levrt.store import ScheduleError, Store

tokens = test_tasks.tokens
noop = test_tasks.noop
HELLO = "lev.alice.noop:hello"
HOUR = timedelta(hours=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Listener:
    """An HTTP server on 127.0.0.1 recording each POST and answering the next of
    ``answers`` (the last one again once they run out)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.received = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                code = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook/s3cr3t-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def valid(secret: str, headers: dict, body: bytes) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers[SIGNATURE_HEADER], expected)


async def drain(notifier):
    """Let ``notifier`` look until no delivery is left sending; how many attempts it made."""
    made = 0
    for _ in range(200):
        started = await notifier.tick()
        if started:
            await asyncio.wait(started)
        made += len(started)
        later = notifier.clock() + timedelta(days=1)
        if not notifier.store.due_deliveries(later):
            return made
        await asyncio.sleep(notifier.backoff)
    raise AssertionError("deliveries still sending")


def notify_now(client):
    """Run the app's notifier until its deliveries ended."""
    notifier = client.app.state.notifier
    notifier.backoff = 0.05
    return client.portal.call(drain, notifier)


def test_a_webhook_is_signed_and_retried_after_a_500(store, tokens, noop):
    alice = tokens["alice"]
    with Listener([500, 200]) as listener, TestClient(
            create_app(Settings(db_url=store.url, public_url="http://lev.test"),
                       store=store)) as client:
        task = submit(client, alice, HELLO, {"word": "hooked"})["id"]
        answer = client.post(f"/api/tasks/{task}/hooks", headers=alice, json={
            "kind": "webhook", "url": listener.url, "events": ["done", "failed"]})
        assert answer.status_code == 201, answer.text
        hook = answer.json()
        secret = hook["secret"]
        assert secret.startswith("levw_")
        assert "s3cr3t" not in hook["url"]
        assert ended(client, alice, task)["status"] == "done"
        notify_now(client)
        deliveries = wait_for(lambda: [d for d in client.get(
            "/api/hooks/deliveries", headers=alice).json() if d["status"] != "sending"])
        assert len(listener.received) == 2
        for headers, body in listener.received:
            assert valid(secret, headers, body)
            assert headers["X-Lev-Event"] == "done"
        sent = json.loads(listener.received[-1][1])
        assert sent["job"]["id"] == task and sent["job"]["status"] == "done"
        assert sent["url"] == f"http://lev.test/tasks/{task}"
        [delivery] = deliveries
        assert delivery["status"] == "delivered"
        assert [a["code"] for a in delivery["attempts"]] == [500, 200]
        # Sent once: a later look finds nothing pending.
        notify_now(client)
        assert len(listener.received) == 2
        # The secret and the URL's path are never shown again.
        listed = client.get("/api/hooks", headers=alice).json()
        assert [h["id"] for h in listed] == [hook["id"]]
        assert "secret" not in listed[0] and "s3cr3t" not in json.dumps(listed)
        assert "s3cr3t" not in client.get(f"/api/tasks/{task}", headers=alice).text
        # The task's own route and page show its hook and its delivery log.
        mine = client.get(f"/api/tasks/{task}/hooks", headers=alice).json()
        assert [h["id"] for h in mine["hooks"]] == [hook["id"]]
        assert [d["status"] for d in mine["deliveries"]] == ["delivered"]
        login = client.get("/login").text
        client.post("/login", data={"user": "alice", "password": PASSWORD, "csrf_token": (
            login.split('name="csrf_token" value="', 1)[1].split('"', 1)[0])})
        page = client.get(f"/tasks/{task}").text
        section = page[page.index('id="notifications"'):]
        assert "delivered" in section and "500" in section and "s3cr3t" not in page
        # bob sees none of it and may not hook alice's task.
        bob = tokens["bob"]
        assert client.get("/api/hooks", headers=bob).json() == []
        assert client.get(f"/api/tasks/{task}/hooks", headers=bob).status_code == 404
        assert client.post(f"/api/tasks/{task}/hooks", headers=bob, json={
            "kind": "webhook", "url": listener.url}).status_code == 404
        assert client.delete(f"/api/hooks/{hook['id']}", headers=bob).status_code == 404
        assert client.delete(f"/api/hooks/{hook['id']}", headers=alice).status_code == 204


def test_hook_fields_are_checked(store, tokens, noop):
    alice = tokens["alice"]
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as client:
        task = submit(client, alice, HELLO)["id"]

        def refused(field, **body):
            answer = client.post(f"/api/tasks/{task}/hooks", headers=alice, json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"][0]["loc"][:2] == ["body", field], answer.text

        refused("kind", kind="pigeon", url="http://127.0.0.1/")
        refused("url", kind="webhook", url="ftp://127.0.0.1/")
        refused("url", kind="apprise", url="no-scheme")
        refused("events", kind="webhook", url="http://127.0.0.1/", events=["sometimes"])
        refused("events", kind="webhook", url="http://127.0.0.1/", events=[])


def ended_job(store, status, owner="alice"):
    job = store.create_job("scan", target="m:f", params={}, owner=owner)
    store.finish_job(job, status, error=None if status == "done" else "it broke")
    return job


def deliver(notifier):
    return asyncio.run(drain(notifier))


def test_a_refusal_is_not_retried_and_events_are_chosen(store):
    store.create_user("alice", PASSWORD)
    done, failed = ended_job(store, "done"), ended_job(store, "failed")
    with Listener([404]) as listener:
        for job in (done, failed):
            store.add_hook("alice", kind="webhook", url=listener.url, events=["failed"],
                           job_id=job)
        notifier = Notifier(store, backoff=0.01)
        assert deliver(notifier) == 1  # the failed job's only
        [delivery] = store.list_deliveries("alice")
        assert delivery["job_id"] == failed and delivery["event"] == "failed"
        assert delivery["status"] == "failed"
        assert [(a["code"], a["error"]) for a in delivery["attempts"]] == [
            (404, "HTTP 404 Not Found")]
        assert len(listener.received) == 1


def test_two_notifiers_on_one_store_deliver_once(store):
    store.create_user("alice", PASSWORD)
    jobs = [ended_job(store, "done") for _ in range(5)]
    with Listener([200]) as listener:
        for job in jobs:
            store.add_hook("alice", kind="webhook", url=listener.url, events=["done"],
                           job_id=job)

        async def both():
            counts = await asyncio.gather(*(drain(Notifier(store, backoff=0.01)) for _ in range(2)))
            return sum(counts)

        assert asyncio.run(both()) == 5
        assert len(listener.received) == 5
        assert {d["status"] for d in store.list_deliveries("alice")} == {"delivered"}


@pytest.fixture
def smtp():
    """A local SMTP server (aiosmtpd) keeping the messages it receives."""

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


def test_a_mail_reaches_a_local_smtp_server(store, smtp):
    store.create_user("alice", PASSWORD)
    schedule = store.add_schedule("alice", "nightly", target="m:f", params={},
                                  cron="0 3 * * *")
    earlier = ended_job(store, "done")
    store.claim_slot(schedule, schedule["next_fire"], 0, schedule["next_fire"] + HOUR)
    store.record_fire(schedule["id"], schedule["next_fire"], earlier)
    url = f"mailto://127.0.0.1:{smtp.port}?from=lev@example.org&to=ops@example.org"
    store.add_hook("alice", kind="apprise", url=url, events=["done", "failed"],
                   schedule_id=schedule["id"])
    # Only tasks that end after the hook was added are told of.
    failed = ended_job(store, "failed")
    schedule = store.get_schedule("alice", "nightly")
    store.claim_slot(schedule, schedule["next_fire"], 0, schedule["next_fire"] + HOUR)
    store.record_fire(schedule["id"], schedule["next_fire"], failed)
    assert deliver(Notifier(store, backoff=0.01)) == 1
    [mail] = smtp.messages
    assert mail.rcpt_tos == ["ops@example.org"]
    text = mail.content.decode()
    assert "levrt: task scan failed" in text and "it broke" in text
    [delivery] = store.list_deliveries("alice", schedule_id=schedule["id"])
    assert delivery["status"] == "delivered" and delivery["job_id"] == failed
    assert store.list_hooks("alice")[0]["url"] == "mailto://127.0.0.1/…"


def test_apprise_urls_it_cannot_send_to_fail_after_retries(store):
    store.create_user("alice", PASSWORD)
    job = ended_job(store, "done")
    store.add_hook("alice", kind="apprise", url=f"mailto://127.0.0.1:{free_port()}?"
                   "from=lev@example.org&to=ops@example.org", events=["done"], job_id=job)
    deliver(Notifier(store, attempts=2, backoff=0.01))
    [delivery] = store.list_deliveries("alice")
    assert delivery["status"] == "failed" and len(delivery["attempts"]) == 2
    with pytest.raises(ScheduleError):
        store.add_hook("alice", kind="webhook", url="http://127.0.0.1/", events=["done"])


def test_new_rows_are_told_of_alone(store):
    """A hook on new_rows only: sent when a done job has rows its previous run had not,
    with those rows; skipped (and logged) when it has none."""
    store.create_user("alice", PASSWORD)

    def scan(ports):
        job = store.create_job("scan", target="m:f", params={}, owner="alice")
        store.merge_document("_", job, None, {"host": "127.0.0.1", "ports": [
            {"port": port, "state": "open"} for port in ports]})
        store.finish_job(job, "done")
        return job

    with Listener([200]) as listener:
        jobs = []
        for ports in ([22], [22, 80], [22, 80]):
            jobs.append(scan(ports))
            store.add_hook("alice", kind="webhook", url=listener.url, events=["new_rows"],
                           job_id=jobs[-1])
            deliver(Notifier(store, backoff=0.01))
        bodies = [json.loads(body) for _, body in listener.received]
        assert [b["job"]["id"] for b in bodies] == jobs[:2]
        assert {b["event"] for b in bodies} == {"new_rows"}
        assert [row["port"] for row in bodies[1]["new_rows"][0]["new"]] == [80]
        by_job = {d["job_id"]: d for d in store.list_deliveries("alice")}
        assert by_job[jobs[2]]["status"] == "skipped"


@pytest.fixture(params=["file", "postgresql"])
def any_store(request):
    with Store(store_url(request, request.param)) as opened:
        yield opened


def test_only_wanted_events_are_pending(any_store):
    """Done jobs a hook on failed does not want never crowd out the failed one it does,
    however many there are (SQLite and PostgreSQL)."""
    store = any_store
    store.create_user("alice", PASSWORD)
    schedule = store.add_schedule("alice", "s", target="m:f", params={}, interval=60)
    store.add_hook("alice", kind="webhook", url="http://127.0.0.1:9/", events=["failed"],
                   schedule_id=schedule["id"])
    jobs = [ended_job(store, "done") for _ in range(12)] + [ended_job(store, "cancelled")]
    for job in jobs:
        schedule = store.get_schedule("alice", "s")
        store.claim_slot(schedule, schedule["next_fire"], 0,
                         schedule["next_fire"] + timedelta(minutes=1))
        store.record_fire(schedule["id"], schedule["next_fire"], job)
    [pending] = store.pending_notifications(limit=5)
    assert pending["job"]["id"] == jobs[-1] and pending["event"] == "failed"


def test_a_retry_survives_a_restart_and_a_dead_server(store):
    """The next attempt is kept in the store: a new notifier (the server restarted) makes
    it; a delivery held by a server that died is taken up once the hold ends."""
    store.create_user("alice", PASSWORD)
    first, second = ended_job(store, "done"), ended_job(store, "done")
    with Listener([500, 200]) as listener:
        for job in (first, second):
            store.add_hook("alice", kind="webhook", url=listener.url, events=["done"],
                           job_id=job)
        # A server that claimed the second job's delivery and died before sending it.
        hooks = {h["job_id"]: h["id"] for h in store.list_hooks("alice")}
        gone = store.claim_delivery(hooks[second], second, "done",
                                    until=datetime.now(timezone.utc) - timedelta(seconds=1))

        async def once():
            started = await Notifier(store, backoff=0.01).tick()
            await asyncio.wait(started)
            return len(started)

        assert asyncio.run(once()) == 2  # the first job's first attempt, and the orphan
        restarted = Notifier(store, backoff=0.01)
        assert deliver(restarted) >= 1
        by_job = {d["job_id"]: d for d in store.list_deliveries("alice")}
        assert by_job[second]["id"] == gone
        assert {d["status"] for d in by_job.values()} == {"delivered"}
        assert sorted(len(d["attempts"]) for d in by_job.values()) == [1, 2]
        assert len(listener.received) == 3
