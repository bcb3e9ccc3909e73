"""The devices page and the task list's device filter: what ``auto`` resolved to on the
server's runner (asking the real container engine, when one answers) and on each agent (from
the facts it reported), the images, the load, and the links to a device's tasks."""

import html
import re
import socket

import pytest
from helpers_hub import PASSWORD, TestClient

from levrt._driver import driver_id
from levrt.agent._facts import gather_facts
from levrt.executors.docker import engine_facts, engine_url
from levrt.server import Settings, create_app
from levrt.store import Store

HOST = socket.gethostname()
FACTS = {"executors": ["docker", "process"], "engine": "unix:///run/podman/podman.sock",
         "engine_version": "Podman Engine 5.4.2", "images": ["localhost/lev-nmap:1.0",
                                                             "<b>evil</b>:latest"],
         "tools": {"nmap": "/usr/bin/nmap"}, "cores": 4, "memory": 8 * 2**30,
         "version": "0.1.0", "hostname": "scanner-host"}


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'hub.db'}") as s:
        s.create_user("alice", PASSWORD)
        s.create_user("bob", PASSWORD)
        yield s


def app(store, **settings):
    return TestClient(create_app(Settings(db_url=store.url, **settings), store=store),
                      follow_redirects=False)


def login(client, name="alice"):
    client.cookies.clear()
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert client.post("/login", data={"user": name, "password": PASSWORD,
                                       "csrf_token": csrf}).status_code == 303


def enrolled(store, name, facts, running=1, slots=4):
    """alice's device ``name`` in pool dmz, enrolled and heard from with ``facts``."""
    code = store.add_device("alice", name, ["dmz"])["code"]
    device, _ = store.enrol_device(code)
    store.device_seen(device["id"], running=running, slots=slots, facts=facts)


def jobs_on_hosts(store):
    """alice's jobs: one driven by this process (this host), one sent to pool lab and driven
    on scanner-host, one queued, one finished here, one sent to device box and waiting for
    it; bob's, driven here."""
    here, queued, old = (store.create_job(name, owner="alice", queued=True)
                         for name in ("here", "queued", "old"))
    there = store.create_job("there", owner="alice", queued=True, placement="pool:lab")
    sent = store.create_job("sent", owner="alice", queued=True, placement="device:box")
    store.start_job(here, executor="process", driver=driver_id())
    store.start_job(there, executor="docker", driver="scanner-host:4242:1")
    store.start_job(old, executor="process", driver=f"{HOST}:1:1")
    store.finish_job(old, "done")
    bobs = store.create_job("bobs", owner="bob", queued=True)
    store.start_job(bobs, executor="process", driver=driver_id())
    return {"here": here, "there": there, "queued": queued, "old": old, "sent": sent}


def test_the_task_list_filters_by_device(store):
    enrolled(store, "box", FACTS)
    enrolled(store, "mute", None)
    token = {"Authorization": f"Bearer {store.create_token('alice', 't')['token']}"}
    with app(store) as client:
        ids = jobs_on_hosts(store)  # after the runner started: it takes up no queued job
        def names(query):
            answer = client.get(f"/api/tasks?{query}", headers=token)
            assert answer.status_code == 200, answer.text
            return sorted(task["name"] for task in answer.json())

        # The server's runner: what ran on this host, and what waits for its slots (not what
        # was sent to a device).
        assert names(f"device={HOST}") == ["here", "old", "queued"]
        assert names(f"device={HOST}&status=running") == ["here"]
        assert names(f"device={HOST}&status=queued") == ["queued"]
        # An agent: what was sent to it, and what of its pools ran on the host it reported.
        assert names("device=box") == ["sent", "there"]
        assert names("device=box&status=queued") == ["sent"]
        answer = client.get(f"/api/tasks?device={HOST}", headers=token)
        assert answer.headers["x-total-count"] == "3"
        for device, words in (("nope", "no device 'nope'"),
                              ("mute", "has not reported its host yet")):
            bad = client.get(f"/api/tasks?device={device}", headers=token)
            assert bad.status_code == 422
            detail = bad.json()["detail"][0]
            assert detail["loc"] == ["query", "device"] and words in detail["msg"]
        # The page: the same filter, kept by the form, with a way back to every device.
        login(client)
        page = client.get(f"/tasks?device={HOST}&status=running").text
        assert f"On device <strong>{HOST}</strong>" in page
        assert f'<input type="hidden" name="device" value="{HOST}">' in page
        assert re.findall(r'<tr class="job" data-href="/tasks/(\w+)"', page) == [ids["here"]]
        refused = client.get("/tasks?device=nope")
        assert refused.status_code == 422 and "no device &#39;nope&#39;" in refused.text
        # bob has no device box: the name is alice's.
        login(client, "bob")
        assert client.get("/tasks?device=box").status_code == 422


def test_the_devices_page_says_what_auto_resolved_to(store, monkeypatch):
    """With ``auto``, the runner's executor is docker through the engine that answers (its
    URL, version and images, asked of the real engine) or, without one, process."""
    monkeypatch.setenv("LEV_SERVER_EXECUTOR", "auto")
    with app(store, allow_host_execution=True) as client:
        login(client)
        page = client.get("/devices").text
        line = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "",
                      re.search(r'<p class="executor[^"]*" id="local-executor">(.*?)</p>',
                                page, re.S).group(1)))
        url = engine_url()
        if url is None:
            assert line == (f"Tools of tasks on {HOST}: process, auto: no Docker API answers, "
                            "so tools run as processes on this host "
                            "(LEV_SERVER_ALLOW_HOST_EXECUTION).")
            assert "No container engine: no images; tools run as processes." in page
        else:
            held = engine_facts(url)
            assert held["engine_version"]
            assert line == (f"Tools of tasks on {HOST}: docker, auto: a Docker API answers "
                            f"at {url} — {held['engine_version']}.")
            shown = re.findall(r"<li><code>([^<]*)</code></li>",
                               re.search(r'id="local-images">(.*?)</details>', page,
                                         re.S).group(1))
            assert [html.unescape(image) for image in shown] == held["images"]
        listed = client.get("/api/devices", headers={
            "Authorization": f"Bearer {store.create_token('alice', 't')['token']}"}).json()
        assert listed[0]["engine"] == url
        assert listed[0]["images"] == (held["images"] if url else [])


def test_the_devices_page_shows_load_images_and_links(store):
    enrolled(store, "box", FACTS, running=1, slots=4)
    enrolled(store, "plain", {**FACTS, "executors": ["process"], "engine": "",
                              "engine_version": "", "images": []}, running=0, slots=2)
    enrolled(store, "bare", {**FACTS, "executors": [], "engine": "", "images": []})
    with app(store) as client:
        jobs_on_hosts(store)
        login(client)
        page = client.get("/devices").text
        # The runner: its load, with links to its running and queued tasks.
        load = re.sub(r"\s+", " ", re.search(r'<p id="local-load">(.*?)</p>', page,
                                            re.S).group(1))
        assert load.startswith("Load: 0 running and 0 queued for 2 slots")
        links = re.findall(r'href="([^"]+)">([^<]+)</a>', load)
        assert links == [(f"/tasks?device={HOST}&amp;status=running", "running tasks"),
                         (f"/tasks?device={HOST}&amp;status=queued", "queued tasks"),
                         (f"/tasks?device={HOST}", "all its tasks")]
        assert client.get(html.unescape(links[0][0])).status_code == 200
        # Each agent: what auto resolved to there, and why; its load and links; its images.
        row = re.search(r'<tr id="device-box">(.*?)</tr>', page, re.S).group(1)
        assert ("<strong>docker</strong> <small>auto: a Docker API answers at "
                "unix:///run/podman/podman.sock (Podman Engine 5.4.2)</small>") in row
        assert "1 of 4 slots" in row
        assert re.findall(r'<a href="([^"]+)">(running|queued)</a>', row) == [
            ("/tasks?device=box&amp;status=running", "running"),
            ("/tasks?device=box&amp;status=queued", "queued")]
        assert "<summary>2 images</summary>" in row
        assert "<code>&lt;b&gt;evil&lt;/b&gt;:latest</code>" in row
        assert "on scanner-host" in row
        plain = re.search(r'<tr id="device-plain">(.*?)</tr>', page, re.S).group(1)
        assert "<strong>process</strong> <small>auto: no Docker API answers on its machine, " \
               "so tools run as processes in bubblewrap sandboxes</small>" in plain
        assert "no images" in plain
        bare = re.search(r'<tr id="device-bare">(.*?)</tr>', page, re.S).group(1)
        assert "<strong>none</strong> <small>no Docker API answers on its machine and it " \
               "has no bubblewrap" in bare
        answer = client.get("/tasks?device=box&status=running")
        assert re.findall(r"<tr class=\"job\"[^>]*>\s*<td><a[^>]*>(\w+)</a>", answer.text) == [
            "there"]


def test_an_agent_reports_its_engine():
    """gather_facts names the engine that answered and its version, as the page shows them."""
    facts = gather_facts()
    url = engine_url()
    assert facts["engine"] == (url or "")
    if url:
        assert facts["engine_version"] and facts == {**facts, **engine_facts(url)}
    else:
        assert (facts["engine_version"], facts["images"]) == ("", [])
