"""``levrt.client``: the API client the CLI, agents and job drivers share. Its mapping of
answers to errors is tested on a mock transport; everything else against a real server on
127.0.0.1 (in a thread, and a ``lev serve`` process)."""

import json

import httpx
import pytest
from helpers_hub import PASSWORD, free_port, serve_in_thread

from levrt.client import ApiError, ApiUnreachable, Client, CredentialsError, LoginRequired


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


def test_no_answer_is_unreachable_with_status_0():
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, timeout=5) as client, pytest.raises(ApiUnreachable) as caught:
        client.request("GET", "/health")
    assert caught.value.status == 0 and isinstance(caught.value, ApiError)
    assert str(caught.value).startswith(f"cannot reach {url}/health: ")


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
    path.write_text("{oops")
    with pytest.raises(CredentialsError, match="delete it and run lev login again"):
        Client.from_config()
