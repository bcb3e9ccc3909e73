"""The routes added after issue 11 attacked as a hostile user, device or job would: agents
(``/api/agent/``), drivers (``/api/driver/``), schedules and their hooks, rows, diffs, assets,
timelines and devices. Every refusal is a 4xx naming what was wrong, never a 5xx, and nothing
is stored; another user's objects answer as on the task routes (404, naming only what was
asked). Schemathesis fuzzes the agent and driver routes with their own kinds of token."""

import csv
import io
import re
import uuid

import pytest
import schemathesis
import test_tasks
from helpers_hub import PASSWORD, TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance
from test_agent_api import enrolled
from test_fuzz_api import _openapi

from levrt import rows
from levrt.server import Settings, create_app
from levrt.server.auth import make_job_token, server_secret

tokens = test_tasks.tokens
noop = test_tasks.noop
HELLO = "lev.alice.noop:hello"
HUGE = 2**70
PAST_INT32 = 2**31


@pytest.fixture
def client(store, tokens):
    app = create_app(Settings(db_url=store.url), store=store)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as c:
        yield c


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def post_raw(client, path, body, headers):
    return client.post(path, content=body, headers={**headers, "Content-Type":
                                                    "application/json"})


def locs(answer):
    return [error["loc"] for error in answer.json()["detail"]]


@pytest.fixture
def device(client, tokens):
    """alice's device ``box`` in pool ``dmz``, enrolled: its token's headers."""
    return bearer(enrolled(client, tokens["alice"], "box", ["dmz"])["token"])


def running_job(store, client, owner="alice", **placed):
    """A running job of ``owner``'s and its driver's headers (its job token)."""
    job_id = store.create_job("attacked", owner=owner, target="a:b", **placed)
    return job_id, bearer(make_job_token(server_secret(client.app.state), job_id))


def done_job(store, owner, data, coll="hosts"):
    job_id = store.create_job("scan", owner=owner, target="lev.x.scan:scan")
    store.merge_document(coll, job_id, None, data)
    store.finish_job(job_id, "done")
    return job_id


# -- agents ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body, loc", [
    ({"running": HUGE}, ["body", "running"]),
    ({"slots": PAST_INT32}, ["body", "slots"]),
    ({"facts": {"cores": HUGE}}, ["body", "facts", "cores"]),
    ({"facts": {"tools": {f"t{i}": "/bin/t" for i in range(10_001)}}},
     ["body", "facts", "tools"]),
    ({"facts": {"images": ["x" * 2000]}}, ["body", "facts", "images", 0]),
])
def test_a_heartbeat_past_the_stores_numbers_or_sizes_is_refused(client, device, body, loc):
    answer = client.post("/api/agent/heartbeat", headers=device, json=body)
    assert answer.status_code == 422, answer.text
    assert loc in locs(answer)


def test_a_heartbeats_facts_are_unicode_or_refused(client, device, tokens):
    # A lone surrogate in a key of the facts was stored, then every listing of the
    # owner's devices (API and page) was a 500.
    answer = post_raw(client, "/api/agent/heartbeat",
                      '{"facts": {"tools": {"\\ud800": "/bin/x"}}}', device)
    assert answer.status_code == 422
    assert [loc[:3] for loc in locs(answer)] == [["body", "facts", "tools"]]
    listed = client.get("/api/devices", headers=tokens["alice"])
    assert listed.status_code == 200 and listed.json()[1]["facts"] is None


def test_agents_reach_only_their_own_jobs_and_files(client, store, device, tokens):
    bobs = enrolled(client, tokens["bob"], "box", ["dmz"])
    bob_device = bearer(bobs["token"])
    mine = store.create_job("j", owner="alice", target="a:b", queued=True,
                            placement="device:box")
    for path in ("claim", "run-token"):
        # bob's device of the same name and pool, a device token on a job it was not sent
        # to, and a job that does not exist answer alike.
        for job_id in (mine, "000000000000"):
            answer = client.post(f"/api/agent/jobs/{job_id}/{path}", headers=bob_device)
            assert answer.status_code == 403, answer.text
    for name in ("..%2F..%2Fetc%2Fpasswd", "%2E%2E", "..", "x.whl%00.whl"):
        answer = client.get(f"/api/agent/jobs/{mine}/wheels/{name}", headers=device)
        assert answer.status_code == 404, name
    # A user's token, a job's token, garbled and missing tokens open no agent route.
    _, job = running_job(store, client)
    for headers in (tokens["alice"], job, bearer("levd_nonsense"), bearer(""), {}):
        assert client.post(f"/api/agent/jobs/{mine}/claim", headers=headers).status_code == 401
    assert store.get_job(mine)["status"] == "queued"


# -- drivers --------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, body, loc", [
    ("POST", "/runs", {"runs": [{"run_id": PAST_INT32, "name": "n", "coll": "c"}]},
     ["body", "runs", 0, "run_id"]),
    ("POST", "/documents", {"coll": "c", "run_id": HUGE, "data": {"a": 1}}, ["body", "run_id"]),
    ("POST", "/logs", {"batches": [{"run_id": HUGE, "entries": [["stdout", "x"]]}]},
     ["body", "batches", 0, "run_id"]),
    ("POST", f"/runs/{HUGE}/finish", {"status": "done"}, ["path", "run_id"]),
    ("POST", "/runs/1/finish", {"status": "done", "exit_code": HUGE}, ["body", "exit_code"]),
    ("DELETE", f"/runs/{HUGE}", None, ["path", "run_id"]),
    ("GET", f"/runs/{HUGE}/log-tail", None, ["path", "run_id"]),
    ("GET", f"/logs?after={HUGE}", None, ["query", "after"]),
])
def test_driver_numbers_past_the_store_are_refused(client, store, method, path, body, loc):
    job_id, job = running_job(store, client)
    answer = client.request(method, f"/api/driver/jobs/{job_id}{path}", headers=job, json=body)
    assert answer.status_code == 422, answer.text
    assert loc in locs(answer)
    assert store.list_runs(job_id) == [] and store.list_documents(job_id) == []


@pytest.mark.parametrize("value", [
    {"$bytes": "!!!x"}, {"$bytes": 5}, {"$float": "nope"}, {"$float": []}, {"$tuple": 5},
    {"$dict": [1]}, {"$dict": [[{"k": 1}, 2]]}, {"$dict": 7},
])
def test_malformed_tagged_values_are_refused_naming_the_field(client, store, value):
    job_id, job = running_job(store, client)
    base = f"/api/driver/jobs/{job_id}"
    answer = client.post(f"{base}/documents", headers=job,
                         json={"coll": "c", "data": {"a": value}})
    assert answer.status_code == 422 and locs(answer) == [["body", "data"]], answer.text
    assert client.post(f"{base}/runs", headers=job,
                       json={"runs": [{"run_id": 1, "name": "n", "coll": "c"}]}
                       ).status_code == 204
    answer = client.post(f"{base}/runs/1/finish", headers=job,
                         json={"status": "done", "coll": "c", "data": {"a": value}})
    assert answer.status_code == 422 and locs(answer) == [["body", "data"]], answer.text
    answer = client.post(f"{base}/finish", headers=job, json={"status": "done", "result": value})
    assert answer.status_code == 422 and locs(answer) == [["body", "result"]], answer.text
    assert store.list_documents(job_id) == []
    assert store.list_runs(job_id)[0]["status"] == "running"
    assert store.get_job(job_id)["status"] == "running"


def test_job_tokens_reach_their_own_unended_job_only(client, store, tokens, device):
    job_id, job = running_job(store, client)
    other, _ = running_job(store, client, owner="bob")
    assert client.get(f"/api/driver/jobs/{other}", headers=job).status_code == 403
    for headers in (tokens["alice"], device, bearer("levjob.garbled"), bearer("levjob."), {}):
        assert client.get(f"/api/driver/jobs/{job_id}", headers=headers).status_code == 401
    assert client.get("/api/tasks", headers=job).status_code == 401
    assert client.get("/api/schedules", headers=job).status_code == 401
    assert client.post(f"/api/driver/jobs/{job_id}/finish", headers=job,
                       json={"status": "done"}).status_code == 204
    for path in ("", "/documents", "/runs"):
        assert client.get(f"/api/driver/jobs/{job_id}{path}", headers=job).status_code == 401


# -- schedules and hooks --------------------------------------------------------------------


@pytest.fixture
def schedule(client, tokens, noop):
    answer = client.post("/api/schedules", headers=tokens["alice"],
                         json={"name": "nightly", "target": HELLO, "cron": "0 3 * * *"})
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.mark.parametrize("kind, url", [
    ("webhook", "http://[::1"), ("apprise", "json://[::1"), ("webhook", "http://127.0.0.1:99999/"),
    ("webhook", "https://127.0.0.1:0/"),
    ("webhook", "http://a\x00b/"), ("webhook", "http://a b/"), ("webhook", "file:///etc/passwd"),
    ("webhook", "http+unix://%2Frun%2Fpodman.sock/x"), ("webhook", "unix:///run/podman.sock"),
    ("webhook", "gopher://127.0.0.1:25/"), ("apprise", "file:///etc/passwd"),
    ("apprise", "syslog://local5"), ("apprise", "SYSLOG://user"),
])
def test_hook_urls_that_cannot_be_sent_to_are_refused(client, store, tokens, schedule, kind,
                                                      url):
    alice = tokens["alice"]
    answer = client.post("/api/schedules/nightly/hooks", headers=alice,
                         json={"kind": kind, "url": url})
    assert answer.status_code == 422 and locs(answer) == [["body", "url"]], answer.text
    login(client, "alice")
    csrf = csrf_of(client.get("/schedules"))
    answer = client.post("/schedules/nightly/hooks",
                         data={"csrf_token": csrf, "kind": kind, "url": url, "events": "done"})
    assert answer.status_code == 400 and "url: " in answer.text
    assert store.list_hooks("alice") == []


def test_a_loopback_webhook_is_taken(client, tokens, schedule):
    answer = client.post("/api/schedules/nightly/hooks", headers=tokens["alice"],
                         json={"kind": "webhook", "url": "http://127.0.0.1:8080/hook"})
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("hook_id", [str(HUGE), str(PAST_INT32), "-1", "0"])
def test_hook_ids_past_the_store_are_not_found(client, tokens, hook_id):
    answer = client.delete(f"/api/hooks/{hook_id}", headers=tokens["alice"])
    assert answer.status_code in (404, 422), answer.text


def test_a_schedules_parameters_are_bounded_as_a_tasks(client, store, tokens, noop):
    answer = client.post("/api/schedules", headers=tokens["alice"], json={
        "name": "big", "target": HELLO, "cron": "0 3 * * *", "params": {"word": "x" * 2**21}})
    assert answer.status_code == 413, answer.text[:300]
    assert locs(answer) == [["body", "params", "word"]]
    assert store.list_schedules("alice") == []


def test_schedules_and_hooks_are_their_owners(client, store, tokens, schedule):
    alice, bob = tokens["alice"], tokens["bob"]
    hook = client.post("/api/schedules/nightly/hooks", headers=alice,
                       json={"kind": "webhook", "url": "http://127.0.0.1:9/"}).json()
    for method, path in (("GET", "/api/schedules/nightly"), ("DELETE", "/api/schedules/nightly"),
                         ("POST", "/api/schedules/nightly/pause"),
                         ("POST", "/api/schedules/nightly/resume"),
                         ("DELETE", f"/api/hooks/{hook['id']}")):
        answer = client.request(method, path, headers=bob)
        assert answer.status_code == 404, (method, path, answer.text)
    answer = client.post("/api/schedules/nightly/hooks", headers=bob,
                         json={"kind": "webhook", "url": "http://127.0.0.1:9/"})
    assert answer.status_code == 404
    alices_task = done_job(store, "alice", {"host": "a"})
    answer = client.post(f"/api/tasks/{alices_task}/hooks", headers=bob,
                         json={"kind": "webhook", "url": "http://127.0.0.1:9/"})
    assert answer.status_code == 404 and answer.json()["detail"] == f"no task {alices_task!r}"
    assert client.get("/api/schedules", headers=bob).json() == []
    assert client.get("/api/hooks", headers=bob).json() == []
    assert store.get_schedule("alice", "nightly")["paused"] is False
    assert len(store.list_hooks("alice")) == 1


# -- rows, diffs, assets, timelines ---------------------------------------------------------


def login(client, name):
    page = client.get("/login")
    answer = client.post("/login", data={"user": name, "password": PASSWORD,
                                         "csrf_token": csrf_of(page)})
    assert answer.status_code == 303, answer.text
    return answer


def csrf_of(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


@pytest.fixture
def chosen_ids(monkeypatch):
    """Job ids of the test's choosing, in order: ``ids.extend([...])``."""
    ids: list[str] = []
    real = uuid.uuid4
    monkeypatch.setattr(uuid, "uuid4",
                        lambda: uuid.UUID(ids.pop(0).ljust(32, "0")) if ids else real())
    return ids


def test_a_diff_finds_the_earlier_task_among_the_callers_only(client, store, tokens,
                                                              chosen_ids):
    # Resolved among every user's jobs, a prefix told the full id of another user's job,
    # or listed them when it matched several.
    chosen_ids.extend(["abcd00000001", "abcd00000002", "abce10000000", "abce20000000",
                       "beef00000001"])
    before = done_job(store, "alice", {"host": "a"})
    bobs = [done_job(store, "bob", {"host": "secret"}) for _ in range(3)]
    later = done_job(store, "alice", {"host": "b"})
    alice = tokens["alice"]
    answer = client.get(f"/api/tasks/{later}/diff", headers=alice, params={"with": "abcd"})
    assert answer.status_code == 200 and answer.json()["with"] == before, answer.text
    for prefix in ("abce", "abce1", "abcd00000002"):
        answer = client.get(f"/api/tasks/{later}/diff", headers=alice, params={"with": prefix})
        assert answer.status_code == 404, answer.text
        assert not [job for job in bobs if job in answer.text and job != prefix], answer.text
    login(client, "alice")
    page = client.get(f"/tasks/{later}/diff", params={"other": "abce1"})
    assert page.status_code == 404 and bobs[1] not in page.text


def test_rows_diffs_timelines_and_assets_are_their_owners(client, store, tokens):
    alice = tokens["alice"]
    mine = done_job(store, "alice", {"host": "a"})
    bobs = done_job(store, "bob", {"host": "secret-bob"})
    for path in (f"/api/tasks/{bobs}/rows", f"/api/tasks/{bobs}/rows?format=csv",
                 f"/api/tasks/{bobs}/diff", f"/api/tasks/{bobs}/diff?with={mine}",
                 f"/api/tasks/{mine}/diff?with={bobs}"):
        answer = client.get(path, headers=alice)
        assert answer.status_code == 404, (path, answer.text)
    assert "secret-bob" not in client.get("/api/assets", headers=alice).text
    login(client, "alice")
    for path in (f"/tasks/{bobs}/rows", f"/tasks/{bobs}/diff", f"/tasks/{bobs}/timeline.svg",
                 f"/tasks/{mine}/diff?with={bobs}"):
        answer = client.get(path)
        assert answer.status_code == 404 and "secret-bob" not in answer.text, path
    assert "secret-bob" not in client.get("/assets").text


FORMULAS = {"host": "=cmd|' /C calc'!A0", "plus": "+1+1", "minus": "-2+3", "at": "@SUM(A1)",
            "tab": "\t=1", "cr": "\r=1", "fine": "a=b", "number": -2, "float": -0.5}


def test_csv_neutralises_cells_a_spreadsheet_would_run(client, store, tokens):
    job_id = done_job(store, "alice", FORMULAS)
    answer = client.get(f"/api/tasks/{job_id}/rows", headers=tokens["alice"],
                        params={"format": "csv"})
    assert answer.status_code == 200
    [header, row] = list(csv.reader(io.StringIO(answer.text)))
    cells = dict(zip(header, row, strict=True))
    assert cells == {"host": "'=cmd|' /C calc'!A0", "plus": "'+1+1", "minus": "'-2+3",
                     "at": "'@SUM(A1)", "tab": "'\t=1", "cr": "'\r=1", "fine": "a=b",
                     "number": "-2", "float": "-0.5"}
    # Several tables: the collection column and the column names are neutralised too.
    both = rows.to_csv([rows.Table("=evil", columns=["-h"], rows=[{"-h": "@x"}]),
                        rows.Table("ok", columns=["-h"], rows=[{"-h": 1}])])
    assert list(csv.reader(io.StringIO(both))) == [["collection", "'-h"], ["'=evil", "'@x"],
                                                   ["ok", "1"]]


@pytest.mark.parametrize("query", ["sort=nope&limit=99999999999999999999&offset=-5",
                                   "coll=%ED%A0%80", "coll=%00", "format=CSV"])
def test_rows_queries_that_make_no_sense_are_ignored_or_refused(client, store, tokens, query):
    job_id = done_job(store, "alice", {"host": "a"})
    answer = client.get(f"/api/tasks/{job_id}/rows?{query}", headers=tokens["alice"])
    assert answer.status_code in (200, 422), answer.text
    answer = client.get(f"/api/assets?{query}", headers=tokens["alice"])
    assert answer.status_code in (200, 422), answer.text


# -- every new JSON body: deep nesting and lone surrogates ----------------------------------


def _bodies(job_id):
    driver = f"/api/driver/jobs/{job_id}"
    return [
        ("/api/devices", '{"name": %s}'),
        ("/api/agent/enrol", '{"code": %s}'),
        ("/api/agent/heartbeat", '{"facts": {"hostname": %s}}'),
        ("/api/agent/heartbeat", '{"facts": {"tools": {"nmap": %s}}}'),
        (f"/api/agent/jobs/{job_id}/end", '{"status": "failed", "error": %s}'),
        (f"{driver}/start", '{"executor": %s}'),
        (f"{driver}/runs", '{"runs": [{"run_id": 1, "name": %s, "coll": "c"}]}'),
        (f"{driver}/runs", '{"runs": [{"run_id": 1, "name": "n", "coll": "c", '
                          '"namespace": [%s]}]}'),
        (f"{driver}/documents", '{"coll": %s, "data": {}}'),
        (f"{driver}/logs", '{"batches": [{"entries": [["stdout", %s]]}]}'),
        (f"{driver}/progress", '{"value": %s}'),
        ("/api/schedules", '{"name": "s", "target": "a:b", "interval": 60, "timezone": %s}'),
        ("/api/schedules/none/hooks", '{"kind": "webhook", "url": %s}'),
        (f"/api/tasks/{job_id}/hooks", '{"kind": "webhook", "url": "http://127.0.0.1/", '
                                       '"events": [%s]}'),
    ]


@pytest.mark.parametrize("value", ["[" * 600 + "]" * 600, "[" * 5000 + "]" * 5000,
                                   '"\\ud800"', '"\\udfff x"', '{"\\ud800": 1}', '"a\\u0000b"',
                                   "-1", str(HUGE), "true", "null",
                                   '"' + "x" * 3_000_000 + '"'])
def test_every_new_body_takes_hostile_values_without_a_server_error(client, store, tokens,
                                                                    value):
    job_id, job = running_job(store, client, placement="device:box")
    device = bearer(enrolled(client, tokens["alice"], "box")["token"])
    for path, body in _bodies(job_id):
        headers = (job if path.startswith("/api/driver/") else
                   device if path.startswith("/api/agent/") else tokens["alice"])
        answer = post_raw(client, path, body % value, headers)
        assert answer.status_code < 500, (path, answer.status_code, answer.text[:300])
    assert store.list_runs(job_id) == [] and store.list_documents(job_id) == []
    assert store.list_schedules("alice") == [] and store.list_hooks("alice") == []


# -- schemathesis over the agent and driver routes, with their own tokens -------------------

schema = schemathesis.openapi.from_dict(_openapi()).include(
    path_regex=r"^/api/(agent|driver)/")


@schema.parametrize()
@settings(max_examples=30, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_agent_and_driver_routes_answer_no_server_error(case, client, store, tokens):
    # A new running job for each case, sent to alice's device and reached with its own
    # token, so a case that ends one leaves the next something to attack.
    app = client.app
    if store.get_device("alice", "box") is None:
        app.state.fuzz_device = enrolled(client, tokens["alice"], "box", ["dmz"])["token"]
    job_id, job = running_job(store, client, placement="device:box")
    if "job_id" in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, "job_id": job_id}
    token = app.state.fuzz_device if case.path.startswith("/api/agent/") else \
        job["Authorization"].split()[1]
    case.call_and_validate(app=app, headers=bearer(token),
                           checks=[not_a_server_error, status_code_conformance])


@pytest.mark.parametrize("extra, loc", [
    ({"device": "a\x00b"}, ["body", "device"]), ({"device": "../box"}, ["body", "device"]),
    ({"pool": "dmz"}, ["body", "pool"]), ({"spread": True}, ["body", "spread"]),
    ({"device": "box", "pool": "dmz"}, ["body", "pool"]),
])
def test_a_schedules_device_is_a_device_or_pool_name(client, store, tokens, noop, extra, loc):
    # Kept whatever it held once (device), or taken and silently dropped (pool, spread):
    # now placed as a task is, on a device or pool of the owner's.
    answer = client.post("/api/schedules", headers=tokens["alice"], json={
        "name": "s", "target": HELLO, "cron": "0 3 * * *", **extra})
    assert answer.status_code == 422 and locs(answer) == [loc], answer.text
    assert store.list_schedules("alice") == []


def test_the_schedule_form_checks_the_device_too(client, store, tokens, noop):
    job_id = done_job(store, "alice", {"host": "a"})
    login(client, "alice")
    csrf = csrf_of(client.get(f"/tasks/{job_id}/schedule"))
    for where, said in (("device:a\x01b", "you have no device"),
                        ("../box", "run on &#39;device:NAME&#39; or &#39;pool:NAME&#39;")):
        answer = client.post(f"/tasks/{job_id}/schedule", data={
            "csrf_token": csrf, "name": "s", "cron": "0 3 * * *", "timezone": "UTC",
            "where": where})
        assert answer.status_code == 400 and said in answer.text, answer.text
    assert store.list_schedules("alice") == []


def test_assets_come_in_pages_of_a_bounded_size(client, store, tokens):
    # Every asset of every task in one answer (an administrator's: everyone's).
    for host in ("a", "b", "c"):
        done_job(store, "alice", {"host": host})
    alice = tokens["alice"]
    first = client.get("/api/assets", headers=alice, params={"limit": 2})
    assert first.status_code == 200 and len(first.json()) == 2
    assert first.headers["X-Total-Count"] == "3" and 'rel="next"' in first.headers["Link"]
    rest = client.get("/api/assets", headers=alice, params={"limit": 2, "page": 2}).json()
    assert [a["row"]["host"] for a in first.json() + rest] == ["c", "b", "a"]
    for query in ({"limit": 10**6}, {"limit": 0}, {"page": 0}, {"page": 10**12}):
        answer = client.get("/api/assets", headers=alice, params=query)
        assert answer.status_code == 422 and locs(answer)[0][0] == "query", query


def test_schedule_timings_that_never_fire_or_read_files_are_refused(client, store, tokens, noop):
    for timing, field in (
            ({"cron": "0 0 31 2 *"}, "cron"), ({"cron": "*/0 * * * *"}, "cron"),
            ({"cron": "0-99999999 * * * *"}, "cron"), ({"cron": "0 3 * * *\x00"}, "cron"),
            ({"cron": "0 3 * * *", "timezone": "../../../etc/passwd"}, "timezone"),
            ({"cron": "0 3 * * *", "timezone": "/etc/localtime"}, "timezone"),
            ({"cron": "0 3 * * *", "timezone": "UTC\x00"}, "timezone"),
            ({"interval": HUGE}, "interval"), ({"interval": -60}, "interval"),
            ({"interval": 0}, "interval"), ({"interval": 60.5}, "interval")):
        answer = client.post("/api/schedules", headers=tokens["alice"],
                             json={"name": "s", "target": HELLO, **timing})
        assert answer.status_code == 422, (timing, answer.text)
        assert locs(answer) == [["body", field]], timing
    assert store.list_schedules("alice") == []


BAD_KEYS = [5, "host", [{"a": 1}], [["x"]], {"a": 1}, [None], [1]]


@pytest.mark.parametrize("keys", BAD_KEYS)
def test_a_driver_declares_keys_as_a_list_of_column_names_or_is_refused(client, store, keys):
    job_id, job = running_job(store, client)
    answer = client.post(f"/api/driver/jobs/{job_id}/runs", headers=job, json={"runs": [
        {"run_id": 0, "name": "n", "coll": "c", "spec": {"keys": keys}}]})
    assert answer.status_code == 422 and locs(answer) == [["body", "runs", 0, "spec"]], \
        answer.text
    assert store.list_runs(job_id) == []


def test_keys_of_the_wrong_shape_stored_break_no_rows_diff_or_assets(client, store, tokens):
    # One job's keys of the wrong shape made its rows, its diff and the assets of its owner
    # (of everyone, for an administrator) a 500 for good.
    alice, root = tokens["alice"], tokens["root"]
    for keys in BAD_KEYS:
        job_id = store.create_job("scan", owner="alice", target="lev.x.scan:scan")
        store.create_run(job_id, 0, name="n", image=None, schema=None, coll="c",
                         spec={"keys": keys})
        store.finish_run(job_id, 0, status="done", exit_code=0, coll="c",
                         data={"host": "a", "port": 1})
        store.finish_job(job_id, "done")
        for path in (f"/api/tasks/{job_id}/rows", f"/api/tasks/{job_id}/rows?format=csv",
                     f"/api/tasks/{job_id}/diff"):
            assert client.get(path, headers=alice).status_code in (200, 404), (keys, path)
        for headers in (alice, root):
            answer = client.get("/api/assets", headers=headers)
            assert answer.status_code == 200, keys
    assert [asset["keys"] for asset in answer.json()] == [[]]


def test_a_json_body_past_the_cap_is_refused_before_it_is_read(store, tokens):
    """A body the server would hold whole: a log-in or an enrolment without credentials
    may send 64 KiB, anyone else ``max_json_bytes``; declared or chunked, the same 413."""
    settings = Settings(db_url=store.url, max_json_bytes=1024 * 1024)
    with TestClient(create_app(settings, store=store)) as client:
        padded = b'{"code": "' + b"x" * 70_000 + b'"}'
        for path in ("/api/agent/enrol", "/api/login"):
            answer = post_raw(client, path, padded, {})
            assert answer.status_code == 413 and "65536 bytes" in answer.text, answer.text

        def chunks():
            yield b'{"name": "d", "pools": ["'
            for _ in range(40):
                yield b"x" * 32_768
            yield b'"]}'

        answer = client.post("/api/devices", headers={**tokens["alice"],
                                                       "Content-Type": "application/json"},
                             content=chunks())
        assert answer.status_code == 413 and "1048576 bytes" in answer.text
        assert store.list_devices("alice") == []
        # Under the cap, the route answers as ever.
        answer = client.post("/api/devices", headers=tokens["alice"],
                             json={"name": "d", "pools": ["x" * 100]})
        assert answer.status_code in (201, 422), answer.text


# -- how many one user may have -------------------------------------------------------------


def test_a_user_has_at_most_max_per_user_devices_schedules_and_hooks(store, tokens, noop):
    """A user scripting thousands of devices, schedules or hooks is stopped at
    ``max_per_user`` of each, with a 409 saying so; others are not affected."""
    app = create_app(Settings(db_url=store.url, max_per_user=2), store=store)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        alice, bob = tokens["alice"], tokens["bob"]
        hook = {"kind": "webhook", "url": "http://127.0.0.1:8080/hook"}
        made = {"devices": [], "schedules": [], "hooks": []}
        for n in range(3):
            made["devices"].append(client.post("/api/devices", headers=alice,
                                               json={"name": f"box{n}"}))
            made["schedules"].append(client.post("/api/schedules", headers=alice, json={
                "name": f"s{n}", "target": HELLO, "cron": "0 3 * * *"}))
            made["hooks"].append(client.post("/api/schedules/s0/hooks", headers=alice,
                                             json=hook))
        for what, answers in made.items():
            assert [a.status_code for a in answers] == [201, 201, 409], (what, answers[2].text)
            assert f"you have 2 {what.replace('hooks', 'notification hooks')}" in \
                answers[2].json()["detail"] and "max_per_user = 2" in answers[2].text
        assert len(store.list_devices("alice")) == len(store.list_schedules("alice")) == 2
        assert len(store.list_hooks("alice")) == 2
        # Another user is not affected.
        assert client.post("/api/devices", headers=bob, json={"name": "box0"}).status_code == 201
        # The pages say it too.
        login(client, "alice")
        csrf = csrf_of(client.get("/devices"))
        page = client.post("/devices", data={"csrf_token": csrf, "name": "box9"})
        assert page.status_code == 409 and "max_per_user = 2" in page.text
        job_id = store.create_job("scan", owner="alice", target=HELLO)
        csrf = csrf_of(client.get(f"/tasks/{job_id}"))
        page = client.post(f"/tasks/{job_id}/hooks",
                           data={"csrf_token": csrf, **hook, "events": "done"})
        assert page.status_code == 409 and "max_per_user = 2" in page.text
    assert len(store.list_devices("alice")) == 2 and len(store.list_hooks("alice")) == 2
