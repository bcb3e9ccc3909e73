"""``levrt.client``: the API client the CLI, agents and job drivers share. Its mapping of
answers to errors is tested on a mock transport; everything else against a real server on
127.0.0.1 (in a thread, and a ``lev serve`` process)."""

import json
import os
import stat
import subprocess
import sys
import time

import httpx
import pytest
from helpers_hub import (
    PASSWORD,
    free_port,
    make_manifest,
    make_wheel,
    serve_in_thread,
    wheel_filename,
)
from test_tasks import noop_package

from levrt.client import (
    ApiError,
    ApiUnreachable,
    Client,
    CredentialsError,
    LoginRequired,
    save_login,
)


@pytest.fixture
def hub(store):
    with serve_in_thread(store) as url:
        yield url


def answering(status, **kwargs):
    """A client whose every request gets ``httpx.Response(status, **kwargs)``."""
    transport = httpx.MockTransport(lambda request: httpx.Response(status, **kwargs))
    return Client("http://hub.test", "secret", transport=transport)


# -- errors ------------------------------------------------------------------------------


def test_a_422_names_each_field_on_one_line():
    detail = [{"loc": ["body", "params", "port"], "msg": "not an int", "type": "value_error"},
              {"loc": ["query", "limit"], "msg": "must be >= 1", "type": "value_error"},
              {"loc": ["body"], "msg": "missing", "type": "missing"}]
    with answering(422, json={"detail": detail}) as client, pytest.raises(ApiError) as caught:
        client.request("POST", "/api/tasks", json={})
    assert caught.value.status == 422 and caught.value.detail == detail
    assert str(caught.value) == "params.port: not an int; limit: must be >= 1; request: missing"


@pytest.mark.parametrize("kwargs, message", [
    ({"json": {"detail": "no task 'x'\nat all"}}, "no task 'x' at all"),
    ({"text": "<h1>Bad gateway</h1>\n"}, "<h1>Bad gateway</h1>"),
    ({}, "Bad Gateway"),
])
def test_an_error_without_json_detail_still_reads_as_one_line(kwargs, message):
    with answering(502, **kwargs) as client, pytest.raises(ApiError) as caught:
        client.request("GET", "/api/tasks/x")
    assert caught.value.status == 502 and str(caught.value) == message


def test_the_token_goes_as_a_bearer_header():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json=[])

    with Client("http://hub.test/", "secret", transport=httpx.MockTransport(handler)) as client:
        assert client.base_url == "http://hub.test"
        client.request("GET", "/api/tasks", params={"limit": 5})
    assert seen[0].headers["authorization"] == "Bearer secret"
    assert str(seen[0].url) == "http://hub.test/api/tasks?limit=5"


def test_event_streams_are_parsed_and_refused_like_any_answer():
    stream = (b"event: status\ndata: {\"status\": \"running\"}\n\n: keepalive\n\n"
              b"event: log\ndata: {\"seq\": 1,\ndata:  \"text\": \"hi\"}\n\n"
              b"event: end\ndata: {\"status\": \"done\", \"error\": null}\n\n")
    with answering(200, content=stream,
                   headers={"content-type": "text/event-stream"}) as client:
        assert list(client.task_events("abc")) == [
            ("status", {"status": "running"}), ("log", {"seq": 1, "text": "hi"}),
            ("end", {"status": "done", "error": None})]
    with answering(429, json={"detail": "you have 20 live task streams open"}) as client, \
            pytest.raises(ApiError) as caught:
        next(client.task_events("abc"))
    assert caught.value.status == 429 and str(caught.value) == "you have 20 live task streams open"


def test_no_answer_is_unreachable_with_status_0():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, timeout=5) as client, pytest.raises(ApiUnreachable) as caught:
        client.request("GET", "/health")
    assert caught.value.status == 0 and isinstance(caught.value, ApiError)
    assert str(caught.value).startswith(f"cannot reach {url}/health: ")


def test_patience_sends_again_only_what_the_server_did_not_act_on():
    answers = []

    def handler(request: httpx.Request) -> httpx.Response:
        answers.append(request.url.path)
        if request.url.path == "/busy" and len(answers) < 3:
            return httpx.Response(503, json={"detail": "store away"},
                                  headers={"Retry-After": "2"})
        if request.url.path == "/down":  # no Retry-After: not the store, not sent again
            return httpx.Response(503, json={"detail": "cannot reach Temporal"})
        return httpx.Response(200, json={"ok": True})

    transport = httpx.MockTransport(handler)
    with Client("http://lev.test", patience=10, transport=transport) as client:
        assert client.request("POST", "/busy").json() == {"ok": True}
        assert answers == ["/busy"] * 3
        with pytest.raises(ApiError) as caught:
            client.request("POST", "/down")
        assert caught.value.status == 503 and answers.count("/down") == 1
    answers.clear()
    with Client("http://lev.test", transport=transport) as client, \
            pytest.raises(ApiError, match="store away"):
        client.request("POST", "/busy")
    assert answers == ["/busy"]


def test_a_base_url_must_be_http():
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        Client("127.0.0.1:8765")


# -- a real server -----------------------------------------------------------------------


def test_requests_to_a_real_server(store, hub):
    store.create_user("alice", PASSWORD)
    with Client(hub) as anonymous:
        assert anonymous.request("GET", "/health").json()["status"] == "ok"
        with pytest.raises(ApiError) as caught:
            anonymous.request("GET", "/api/me")
        assert caught.value.status == 401
        with pytest.raises(ApiError) as caught:
            anonymous.request("POST", "/api/login", json={"user": "alice", "password": "no"})
        assert caught.value.status == 401 and str(caught.value) == "wrong user name or password"
    token = store.create_token("alice", "test")["token"]
    with Client(hub, token) as client:
        assert client.request("GET", "/api/me").json()["name"] == "alice"


# -- saved logins ------------------------------------------------------------------------


def test_from_config_reads_what_lev_login_saved(store, hub, lev_home):
    with pytest.raises(LoginRequired, match="no hub given") as caught:
        Client.from_config()
    assert caught.value.status == 401
    store.create_user("alice", PASSWORD)
    token = store.create_token("alice", "test")["token"]
    lev_home.mkdir(parents=True, exist_ok=True)
    path = lev_home / "credentials.json"
    path.write_text(json.dumps({"default": hub, "servers": {hub: {"user": "alice",
                                                                   "token": token}}}))
    with Client.from_config() as client:
        assert client.base_url == hub
        assert client.request("GET", "/api/me").json()["name"] == "alice"
    with Client.from_config(hub + "/") as client:
        assert client.token == token
    with pytest.raises(LoginRequired, match="not logged in to http://other.test"):
        Client.from_config("http://other.test")
    assert save_login("http://other.test/", "bob", "t0k") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Client.from_config() as client:
        assert (client.base_url, client.token) == ("http://other.test", "t0k")
    assert Client.from_config("http://other.test").token == "t0k"
    assert Client.from_config(hub).token == token
    path.write_text("{oops")
    with pytest.raises(CredentialsError, match="delete it and run lev login again"):
        Client.from_config()


# -- typed methods -----------------------------------------------------------------------


def test_tokens_packages_and_devices(store, hub, tmp_path):
    store.create_user("alice", PASSWORD)
    with Client(hub) as anonymous:
        login = anonymous.login("alice", PASSWORD, "client test")
    assert (login["user"], login["token_name"]) == ("alice", "client test")
    with Client(hub, login["token"]) as client:
        assert client.me()["name"] == "alice" and client.namespaces() == ["alice"]
        spare = client.create_token("spare")
        assert {t["name"] for t in client.list_tokens()} == {"client test", "spare"}
        client.revoke_token(spare["id"])
        with pytest.raises(ApiError) as caught:
            Client(hub, spare["token"]).me()
        assert caught.value.status == 401
        with pytest.raises(ApiError) as caught:
            client.revoke_token(999_999)
        assert caught.value.status == 404 and str(caught.value) == "you have no token 999999"

        wheel = tmp_path / wheel_filename("lev.alice.tool", "1.0.0")
        wheel.write_bytes(make_wheel())
        published = client.upload_package(wheel, make_manifest())
        assert published["url"] == f"{hub}/api/packages/lev.alice.tool/1.0.0"
        with pytest.raises(ApiError) as caught:
            client.upload_package(wheel, make_manifest())
        assert caught.value.status == 409 and "exists already" in str(caught.value)

        assert [p["name"] for p in client.list_packages("scanner")] == ["lev.alice.tool"]
        assert client.list_packages("nothing like it") == []
        assert [v["version"] for v in client.get_package("lev.alice.tool")["versions"]] == [
            "1.0.0"]
        assert client.get_version("lev.alice.tool")["manifest"] == make_manifest()
        paths = [f["path"] for f in client.list_package_files("lev.alice.tool", "1.0.0")]
        assert "lev/alice/tool/scanner.py" in paths
        assert client.read_package_file("lev.alice.tool", "1.0.0", "lev/alice/tool/flows.py") \
            == b"async def audit(ip): ...\n"
        with pytest.raises(ApiError, match="no package 'lev.alice.other'"):
            client.get_package("lev.alice.other")

        devices = client.list_devices()
        assert len(devices) == 1 and devices[0]["status"] == "online"


def lev(*argv, env, stdin=None):
    result = subprocess.run([sys.executable, "-m", "levrt", *map(str, argv)], env=env,
                            input=stdin, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def lev_serve(tmp_path):
    """A real ``lev serve`` process in its own LEV_HOME on a free port, with alice's no-op
    tools of tests/test_tasks.py published; yields its URL."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEV_")}
    env.update(LEV_HOME=str(tmp_path / "server-home"), LEV_SERVER_EXECUTOR="process")
    lev("user", "add", "alice", "--password-stdin", env=env, stdin=PASSWORD + "\n")
    lev("hub", "load", noop_package(tmp_path / "hub"), env=env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "levrt", "serve", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        with Client(url, timeout=5) as probe:
            while True:
                try:
                    probe.request("GET", "/health")
                    break
                except ApiUnreachable:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((tmp_path / "server.log").read_text()) from None
                    time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def test_tasks_through_a_real_lev_serve(lev_serve, tmp_path):
    with Client(lev_serve) as anonymous:
        token = anonymous.login("alice", PASSWORD)["token"]
    with Client(lev_serve, token) as client:
        with pytest.raises(ApiError) as caught:
            client.submit_task("lev.alice.noop:hello", {"word": 3, "nope": 1})
        assert caught.value.status == 422
        assert str(caught.value).startswith("params.word: expected a string, got 3; params.nope:")

        words = tmp_path / "words.txt"
        words.write_text("a\nb\nc\n")
        kept = client.upload_file(words)
        assert kept["name"] == "words.txt" and kept["digest"].startswith("sha256:")
        lines = client.submit_task("lev.alice.noop:lines", {"wordlist": kept["digest"]})

        task = client.submit_task("lev.alice.noop:hello", {"word": "ahoy"}, name="greeting")
        assert task["status"] == "queued"
        events = list(client.task_events(task["id"]))
        assert events[0][0] == "status" and events[-1] == ("end", {"status": "done",
                                                                   "error": None})
        assert "saying ahoy" in [data["text"] for kind, data in events if kind == "log"]

        bundle = client.get_task(task["id"])
        assert bundle["job"]["name"] == "greeting"
        assert [doc["data"] for doc in bundle["documents"]] == [{"word": "ahoy"}]
        rows = list(client.iter_task_logs(task["id"]))
        assert "saying ahoy" in [row["text"] for row in rows]
        assert client.task_logs(task["id"], after=rows[-1]["seq"]) == []
        assert [t["id"] for t in client.list_tasks(q="greet")] == [task["id"]]

        assert list(client.task_events(lines["id"]))[-1][1]["status"] == "done"
        assert client.get_task(lines["id"])["documents"][0]["data"] == {"lines": 3}

        nap = client.submit_task("lev.alice.noop:nap", {"marker": "60"})
        assert client.cancel_task(nap["id"])["id"] == nap["id"]
        assert list(client.task_events(nap["id"]))[-1][1]["status"] == "cancelled"
        assert [t["id"] for t in client.list_tasks(status="cancelled")] == [nap["id"]]
        with pytest.raises(ApiError) as caught:
            client.cancel_task(nap["id"])
        assert caught.value.status == 409 and "has already ended (cancelled)" in str(caught.value)
        with pytest.raises(ApiError) as caught:
            client.get_task("ffffffffffff")
        assert caught.value.status == 404 and str(caught.value) == "no task 'ffffffffffff'"
