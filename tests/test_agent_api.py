"""Devices over HTTP: adding one (API and page), enrolling its agent with the one-time code,
heartbeats, online/offline, and the two kinds of token kept apart on every route."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from helpers_hub import PASSWORD, TestClient

from levrt.server import Settings, create_app
from levrt.server.auth import server_secret
from levrt.server.devices import OFFLINE_AFTER, device_status
from levrt.server.dispatch import deployment_key
from levrt.store import Store

FACTS = {"executors": ["process"], "images": [], "tools": {"nmap": "/usr/bin/nmap"},
         "cores": 2, "memory": 2 * 2**30, "version": "0.1.0", "hostname": "box"}


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'hub.db'}") as s:
        s.create_user("alice", PASSWORD)
        s.create_user("bob", PASSWORD)
        yield s


@pytest.fixture
def client(store):
    settings = Settings(db_url=store.url, temporal="127.0.0.1:7233")
    with TestClient(create_app(settings, store=store), follow_redirects=False) as c:
        yield c


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def alice(store):
    return bearer(store.create_token("alice", "tests")["token"])


def enrolled(client, headers, name="box", pools=()):
    added = client.post("/api/devices", json={"name": name, "pools": list(pools)},
                        headers=headers)
    assert added.status_code == 201, added.text
    answer = client.post("/api/agent/enrol", json={"code": added.json()["code"]})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_add_enrol_heartbeat_list_remove(client, alice):
    added = client.post("/api/devices", json={"name": "box", "pools": ["dmz"]}, headers=alice)
    assert added.status_code == 201
    code = added.json()["code"]
    assert added.json()["command"] == f"lev agent --server http://testserver --enrol {code}"
    listed = client.get("/api/devices", headers=alice).json()
    assert [d["kind"] for d in listed] == ["local runner", "agent"]
    assert listed[1]["status"] == "not enrolled" and "code" not in listed[1]

    config = client.post("/api/agent/enrol", json={"code": code}).json()
    assert config["token"].startswith("levd_")
    key = deployment_key(server_secret(client.app.state))
    assert len(key) == 12 and config["queues"] == {
        "device": f"lev-{key}-device:alice/box", "pools": [f"lev-{key}-pool:alice/dmz"]}
    assert config["temporal"] == "127.0.0.1:7233" and config["owner"] == "alice"
    assert client.get("/api/devices", headers=alice).json()[1]["status"] == "offline"

    device = bearer(config["token"])
    beat = client.post("/api/agent/heartbeat", headers=device,
                       json={"running": 1, "slots": 4, "facts": FACTS})
    assert beat.status_code == 200 and beat.json()["queues"] == config["queues"]
    shown = client.get("/api/devices", headers=alice).json()[1]
    assert (shown["status"], shown["running"], shown["slots"]) == ("online", 1, 4)
    assert shown["facts"] == FACTS and shown["executor"] == "process"

    assert client.delete("/api/devices/box", headers=alice).status_code == 204
    assert client.post("/api/agent/heartbeat", headers=device, json={}).status_code == 401
    assert client.delete("/api/devices/box", headers=alice).status_code == 404


def test_codes_are_refused_once_used(client, alice):
    added = client.post("/api/devices", json={"name": "box"}, headers=alice).json()
    assert client.post("/api/agent/enrol", json={"code": added["code"]}).status_code == 200
    again = client.post("/api/agent/enrol", json={"code": added["code"]})
    assert again.status_code == 403 and "used already" in again.json()["detail"]
    unknown = client.post("/api/agent/enrol", json={"code": "levc_x"})
    assert unknown.status_code == 403 and "unknown enrolment code" in unknown.json()["detail"]


def test_bad_devices_are_4xx(client, alice):
    client.post("/api/devices", json={"name": "box"}, headers=alice)
    assert client.post("/api/devices", json={"name": "box"}, headers=alice).status_code == 409
    bad = client.post("/api/devices", json={"name": "Box!"}, headers=alice)
    assert bad.status_code == 422 and "device name" in bad.text
    assert client.post("/api/devices", json={"pools": []}, headers=alice).status_code == 422
    beat = client.post("/api/agent/heartbeat",
                       headers=bearer(enrolled(client, alice, "b2")["token"]),
                       json={"running": -1})
    assert beat.status_code == 422 and "running" in beat.text


def test_a_device_token_opens_no_user_route(client, alice, store):
    device = bearer(enrolled(client, alice)["token"])
    public = {("/api/login", "post"), ("/health", "get"), ("/api/agent/enrol", "post")}
    checked = 0
    for path, operations in client.app.openapi()["paths"].items():
        for method in operations:
            if (path, method) in public or path.startswith("/api/agent/"):
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            answer = client.request(method, url, headers=device)
            assert answer.status_code in (401, 403), f"{method} {path}: {answer.status_code}"
            checked += 1
    assert checked > 20
    # Nor the openapi description and pages.
    assert client.get("/openapi.json", headers=device).status_code == 401
    assert client.get("/devices", headers=device).status_code == 303


def test_a_user_token_or_session_opens_no_agent_route(client, alice, store):
    from levrt.server import sessions

    agent_routes = [(path, method) for path, ops in client.app.openapi()["paths"].items()
                    if path.startswith("/api/agent/") and path != "/api/agent/enrol"
                    for method in ops]
    assert agent_routes
    secret = sessions.load_secret()
    for path, method in agent_routes:
        assert client.request(method, path, headers=alice, json={}).status_code == 401
        client.cookies.set(sessions.COOKIE,
                           sessions.encode(secret, sessions.new_session("alice")))
        assert client.request(method, path, json={}).status_code == 401
        client.cookies.clear()


def test_offline_after_silence():
    now = datetime.now(timezone.utc)
    device = {"enrolled": True, "last_seen": now - OFFLINE_AFTER + timedelta(seconds=1)}
    assert device_status(device, now) == "online"
    assert device_status({**device, "last_seen": now - OFFLINE_AFTER * 2}, now) == "offline"
    assert device_status({**device, "last_seen": None}, now) == "offline"
    assert OFFLINE_AFTER <= timedelta(seconds=30)


def csrf_of(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_the_devices_page_adds_shows_and_removes(client, store):
    page = client.get("/login")
    client.post("/login", data={"user": "alice", "password": PASSWORD,
                                "csrf_token": csrf_of(page)})
    page = client.get("/devices")
    assert page.status_code == 200 and "You have no devices yet" in page.text
    csrf = csrf_of(page)
    added = client.post("/devices", data={"csrf_token": csrf, "name": "box",
                                          "pools": "dmz, lab"})
    assert added.status_code == 200
    command = re.search(r'<code id="enrol-command">([^<]+)</code>', added.text).group(1)
    code = command.rsplit(" ", 1)[1]
    assert command.startswith("lev agent --server http://testserver --enrol levc_")
    shown = client.get("/devices")
    assert code not in shown.text and "not enrolled" in shown.text and "dmz, lab" in shown.text
    bad = client.post("/devices", data={"csrf_token": csrf, "name": "box"})
    assert bad.status_code == 409 and "remove it first" in bad.text
    assert client.post("/devices", data={"name": "x"}).status_code == 403  # no CSRF token
    device, token = store.enrol_device(code)
    store.device_seen(device["id"], running=0, slots=2, facts=FACTS)
    shown = client.get("/devices").text
    assert "online" in shown and "nmap" in shown and "2 cores" in shown
    removed = client.post("/devices/box/remove", data={"csrf_token": csrf})
    assert removed.status_code == 303 and store.list_devices("alice") == []
