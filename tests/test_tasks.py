"""Tasks launched through the server (``/api/tasks``, the runner, ``lev task``), with a no-op
hub package written into tmp_path and published to the store (``lev hub load``); one test
publishes the examples and runs ``server_port`` and lan_audit's ``quick_check`` on 127.0.0.1
when nmap is installed."""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import helpers_tools as tools
import pytest
from helpers_hub import PASSWORD, TestClient, serve_in_thread

from levrt._cli import cli_main
from levrt.executors.docker import engine_url
from levrt.server import Settings, create_app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "lev-hub"

NOOP = '''"""Tools that only print and remember a word (two modeless tools)."""
import os
import time

from levrt import Cr, File, annot, ctx, remote


def hello(word: str = "hi") -> Cr:
    @remote
    def entry():
        print(f"saying {word}")
        ctx.set(word=word)
    return Cr("localhost/test:latest", "test/noop@1.0", entry=entry())


def nap(marker: str) -> Cr:
    """Sleeps ``marker`` seconds in a ``sleep`` process: a duration a test finds it by."""
    @remote
    def entry():
        import subprocess
        print("napping", flush=True)
        subprocess.run(["sleep", marker])
    return Cr("localhost/test:latest", entry=entry())



def lines(wordlist: File) -> Cr:
    @remote
    def entry():
        with open("/in/list") as file:
            ctx.set(lines=len(file.read().splitlines()))
    return Cr("localhost/test:latest", files={"/in/list": wordlist}, entry=entry())


__lev__ = annot.meta([hello, nap, lines])
'''


def noop_package(hub: Path) -> Path:
    """Writes the package folder ``HUB/alice.noop`` (lev.alice.noop 1.0 with :data:`NOOP`);
    returns ``hub``, the folder ``lev hub load`` takes."""
    folder = hub / "alice.noop"
    (folder / "lev" / "alice" / "noop").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "lev.alice.noop"\nversion = "1.0"\ndependencies = ["levrt"]\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["lev"]\n')
    (folder / "lev" / "alice" / "noop" / "__init__.py").write_text(NOOP)
    return hub


@pytest.fixture
def noop(tmp_path, tokens, capsys):
    """A hub package folder ``alice.noop`` whose tools only print and ``ctx.set``, published
    as alice's ``lev.alice.noop`` 1.0."""
    hub = noop_package(tmp_path / "hub")
    code = cli_main(["hub", "load", str(hub)])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()  # what it printed is no test's output
    return hub / "alice.noop"


@pytest.fixture
def tokens(store):
    """API tokens of alice and bob (users) and root (an administrator)."""
    found = {}
    for name in ("alice", "bob", "root"):
        store.create_user(name, PASSWORD, is_admin=name == "root")
        found[name] = {"Authorization": f"Bearer {store.create_token(name, 'test')['token']}"}
    return found


@pytest.fixture
def client(store):
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as c:
        yield c


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def ended(client, headers, task_id, timeout=30.0):
    def check():
        job = client.get(f"/api/tasks/{task_id}", headers=headers).json()["job"]
        return job if job["status"] not in ("queued", "running") else None
    return wait_for(check, timeout)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def submit(client, headers, target, params=None, **extra):
    answer = client.post("/api/tasks", headers=headers,
                         json={"target": target, "params": params or {}, **extra})
    assert answer.status_code == 202, answer.text
    return answer.json()


def test_submit_runs_the_task_and_keeps_its_results(client, tokens, noop):
    alice = tokens["alice"]
    # Published, not installed: the task runs the store's files of lev.alice.noop 1.0.
    answer = submit(client, alice, "lev.alice.noop:hello", {"word": "ahoy"}, name="greeting")
    assert answer["status"] == "queued" and len(answer["id"]) == 12
    job = ended(client, alice, answer["id"])
    assert job["status"] == "done", job
    assert (job["name"], job["owner"], job["params"]) == ("greeting", "alice", {"word": "ahoy"})
    assert (job["target"], job["package"]) == ("lev.alice.noop:hello", "lev.alice.noop==1.0")
    assert job["started_at"] >= job["created_at"]
    bundle = client.get(f"/api/tasks/{answer['id']}", headers=alice).json()
    assert set(bundle) == {"job", "runs", "documents", "log", "log_more", "result"}
    assert [doc["data"] for doc in bundle["documents"]] == [{"word": "ahoy"}]
    listed = client.get("/api/tasks", headers=alice).json()
    assert [(t["id"], t["status"], t["owner"]) for t in listed] == [
        (answer["id"], "done", "alice")]
    assert client.get("/api/tasks?status=failed", headers=alice).json() == []
    # q finds text in names and targets, in any case.
    for q, found in (("GREET", [answer["id"]]), ("noop:hel", [answer["id"]]), ("zz", [])):
        assert [t["id"] for t in client.get("/api/tasks", params={"q": q},
                                            headers=alice).json()] == found, q

    rows = client.get(f"/api/tasks/{answer['id']}/logs", headers=alice).json()
    assert "saying ahoy" in [row["text"] for row in rows]
    last = rows[-1]["seq"]
    assert client.get(f"/api/tasks/{answer['id']}/logs?after={last}", headers=alice).json() == []

    with client.stream("GET", f"/api/tasks/{answer['id']}/events", headers=alice) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    kinds = [lines[0].removeprefix("event: ") for lines in events]
    assert kinds[0] == "status" and kinds[-1] == "end" and "log" in kinds and "runs" in kinds
    assert json.loads(events[-1][1].removeprefix("data: ")) == {"status": "done", "error": None}
    logged = [json.loads(lines[1][6:])["text"] for lines in events if lines[0] == "event: log"]
    assert "saying ahoy" in logged


def test_text_that_is_not_unicode_is_stored_with_replacement_characters(client, tokens, noop):
    alice = tokens["alice"]
    json_body = {**alice, "Content-Type": "application/json"}
    # A lone surrogate, as JSON can carry it: a parameter's is stored as U+FFFD.
    body = '{"target": "lev.alice.noop:hello", "params": {"word": "\\ud800x"}}'
    answer = client.post("/api/tasks", headers=json_body, content=body)
    assert answer.status_code == 202, answer.text
    job = ended(client, alice, answer.json()["id"])
    assert job["status"] == "done" and job["params"] == {"word": "\ufffdx"}
    bundle = client.get(f"/api/tasks/{job['id']}", headers=alice)
    assert bundle.status_code == 200
    assert bundle.json()["documents"][0]["data"] == {"word": "\ufffdx"}
    # A typed text field refuses it, naming the field (the 422 itself must encode).
    body = '{"target": "lev.alice.noop:hello", "name": "odd \\udcff"}'
    answer = client.post("/api/tasks", headers=json_body, content=body)
    assert answer.status_code == 422
    assert [item["loc"] for item in answer.json()["detail"]] == [["body", "name"]]


def refused(client, headers, body):
    """The 422 answer's ``{loc: msg}``."""
    answer = client.post("/api/tasks", headers=headers, json=body)
    assert answer.status_code == 422, answer.text
    return {tuple(item["loc"]): item["msg"] for item in answer.json()["detail"]}


def test_params_are_checked_against_the_manifest(client, tokens, noop, store):
    alice = tokens["alice"]
    errors = refused(client, alice, {"target": "lev.alice.noop:hello",
                                     "params": {"word": 3, "nope": 1}})
    assert errors == {
        ("body", "params", "word"): "expected a string, got 3",
        ("body", "params", "nope"): "unknown parameter; hello takes word",
    }
    errors = refused(client, alice, {"target": "lev.alice.noop:nap", "params": {}})
    assert errors == {("body", "params", "marker"): "required"}
    errors = refused(client, alice, {"target": "lev.alice.noop:nothing"})
    assert "has no tool mode or workflow 'lev.alice.noop:nothing'" in errors[("body", "target")]
    errors = refused(client, alice, {"target": "lev.alice.noop:hello", "version": "9"})
    assert errors == {("body", "target"): "lev.alice.noop has no version '9'"}
    assert refused(client, alice, {"target": "--help"})
    assert store.list_jobs() == []  # nothing refused was recorded


def test_a_file_parameter_takes_an_uploaded_file(client, tokens, noop, store, monkeypatch):
    alice = tokens["alice"]
    answer = client.post("/api/tasks/files", headers=alice,
                         files={"file": ("list.txt", b"a\nb\nc\n", "text/plain")})
    assert answer.status_code == 201, answer.text
    uploaded = answer.json()
    assert uploaded["name"] == "list.txt" and uploaded["size"] == 6
    assert uploaded["digest"].startswith("sha256:")
    job = ended(client, alice, submit(client, alice, "lev.alice.noop:lines",
                                      {"wordlist": uploaded["digest"]})["id"])
    assert job["status"] == "done", job
    bundle = client.get(f"/api/tasks/{job['id']}", headers=alice).json()
    assert [doc["data"] for doc in bundle["documents"]] == [{"lines": 3}]
    # A path is not a file of the hub's: the server never reads its own files for a task.
    errors = refused(client, alice, {"target": "lev.alice.noop:lines",
                                     "params": {"wordlist": "/etc/passwd"}})
    assert "expected the digest" in errors[("body", "params", "wordlist")]
    # No file part; a file over the limit (refused while it streams in).
    answer = client.post("/api/tasks/files", headers=alice, data={"other": "x"})
    assert answer.status_code == 422 and "'file'" in answer.text
    client.app.state.settings = client.app.state.settings.model_copy(
        update={"max_upload_bytes": 100})
    answer = client.post("/api/tasks/files", headers=alice,
                         files={"file": ("big", b"x" * 1000, "text/plain")})
    assert answer.status_code == 413 and "at most 100 bytes" in answer.json()["detail"]


def test_an_uploaded_file_is_its_uploaders(client, tokens, noop, store):
    alice, bob = tokens["alice"], tokens["bob"]

    def upload_list(headers):
        answer = client.post("/api/tasks/files", headers=headers,
                             files={"file": ("list.txt", b"x\ny\n", "text/plain")})
        assert answer.status_code == 201, answer.text
        return answer.json()["digest"]

    digest = upload_list(alice)
    # Bob knows the digest (it is only a hash of the content) but did not upload the file.
    errors = refused(client, bob, {"target": "lev.alice.noop:lines",
                                   "params": {"wordlist": digest}})
    assert digest[:20] in errors[("body", "params", "wordlist")]
    assert store.owns_file("alice", digest) and not store.owns_file("bob", digest)
    # Once he uploads the same bytes, the one stored file is his too.
    assert upload_list(bob) == digest
    assert store.owns_file("bob", digest)
    task = submit(client, bob, "lev.alice.noop:lines", {"wordlist": digest})
    assert ended(client, bob, task["id"])["status"] == "done"


def test_only_an_administrator_runs_what_is_not_published(client, tokens, noop):
    alice, root = tokens["alice"], tokens["root"]
    for target in (f"{noop}:hello", "os:system", "lev.nobody.thing:run"):
        errors = refused(client, alice, {"target": target, "params": {"word": "x"}})
        assert "only an administrator may run other targets" in errors[("body", "target")]
    # An administrator's folder target runs unchecked: lev run's own error ends the task.
    job = ended(client, root, submit(client, root, f"{noop}:nothing")["id"])
    assert job["status"] == "failed" and "has no 'nothing'" in job["error"]
    assert "\n" not in job["error"] and job["owner"] == "root" and job["package"] is None
    job = ended(client, root, submit(client, root, f"{noop}:hello", {"nope": 1})["id"])
    assert job["status"] == "failed" and "nope" in job["error"], job


def test_cancel_stops_the_task_and_its_processes(client, tokens, noop, tmp_path):
    alice = tokens["alice"]
    marker = f"120.{os.getpid()}"
    task_id = submit(client, alice, "lev.alice.noop:nap", {"marker": marker})["id"]
    pids = wait_for(lambda: tools.processes("sleep", marker))
    assert all(alive(pid) for pid in pids)
    answer = client.post(f"/api/tasks/{task_id}/cancel", headers=alice)
    assert answer.status_code == 202, answer.text
    job = ended(client, alice, task_id)
    assert job["status"] == "cancelled", job
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=15)
    again = client.post(f"/api/tasks/{task_id}/cancel", headers=alice)
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_cancel_reaches_a_task_of_a_server_that_ignores_sigint(client, tokens, noop):
    # A server started in the background of a shell (`lev serve &`) has SIGINT ignored, and
    # its drivers inherit that: lev run must still take the runner's SIGINT as a cancel.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        alice = tokens["alice"]
        marker = f"120.{os.getpid()}"
        task_id = submit(client, alice, "lev.alice.noop:nap", {"marker": marker})["id"]
        pids = wait_for(lambda: tools.processes("sleep", marker))
    finally:
        signal.signal(signal.SIGINT, previous)
    client.post(f"/api/tasks/{task_id}/cancel", headers=alice)
    job = ended(client, alice, task_id)
    # "cancelled" alone is lev run's own record: the runner's, after cancel_grace, says more.
    assert (job["status"], job["error"]) == ("cancelled", "cancelled"), job
    log = client.get(f"/api/tasks/{task_id}", headers=alice).json()["log"]
    assert [row["text"] for row in log if row["stream"] == "job"][-1] == "job cancelled"
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=15)


def test_a_driver_that_outstays_cancel_grace_is_recorded_cancelled_with_its_runs(
        store, tokens, noop):
    alice = tokens["alice"]
    settings = Settings(db_url=store.url, cancel_grace=0.01)
    with TestClient(create_app(settings, store=store)) as client:
        marker = f"120.{os.getpid()}"
        task_id = submit(client, alice, "lev.alice.noop:nap", {"marker": marker})["id"]
        pids = wait_for(lambda: tools.processes("sleep", marker))
        client.post(f"/api/tasks/{task_id}/cancel", headers=alice)

        def ended_bundle():
            # Read as often as it can be: a reading between the kill and the runner's
            # record took the task for one whose driver is gone, and recorded it failed.
            bundle = client.get(f"/api/tasks/{task_id}", headers=alice).json()
            return bundle if bundle["job"]["status"] != "running" else None

        bundle = wait_for(ended_bundle)
    job = bundle["job"]
    assert job["status"] == "cancelled", job
    # Killed by the runner (or, if it was that quick, stopped by itself within 10 ms).
    assert job["error"] in ("cancelled", "cancelled: lev run did not stop within 0.01 s of "
                            "SIGINT (cancel_grace), and was killed"), job
    assert [run["status"] for run in bundle["runs"]] == ["cancelled"], bundle["runs"]
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=15)


def test_queued_task_waits_for_a_slot_and_can_be_cancelled(store, tokens, noop, tmp_path,
                                                           monkeypatch):
    monkeypatch.setenv("LEV_SERVER_MAX_RUNNING_TASKS", "1")
    alice = tokens["alice"]
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as client:
        marker = f"120.{os.getpid()}"
        first = submit(client, alice, "lev.alice.noop:nap", {"marker": marker})
        wait_for(lambda: tools.processes("sleep", marker))
        second = submit(client, alice, "lev.alice.noop:hello")
        assert second["status"] == "queued"
        listed = client.get("/api/tasks?status=queued", headers=alice).json()
        assert [t["id"] for t in listed] == [second["id"]]
        assert client.get(f"/api/tasks/{second['id']}", headers=tokens["bob"]).status_code == 404
        assert client.post(f"/api/tasks/{second['id']}/cancel", headers=alice).json()[
            "status"] == "cancelled"
        job = client.get(f"/api/tasks/{second['id']}", headers=alice).json()["job"]
        assert (job["status"], job["error"]) == ("cancelled", "cancelled before it started")
        assert job["started_at"] is None
        client.post(f"/api/tasks/{first['id']}/cancel", headers=alice)
        assert ended(client, alice, first["id"])["status"] == "cancelled"


def test_queued_tasks_survive_a_restart(store, tokens, noop, tmp_path, monkeypatch):
    monkeypatch.setenv("LEV_SERVER_MAX_RUNNING_TASKS", "1")
    alice = tokens["alice"]
    marker = f"120.{os.getpid()}"
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as client:
        first = submit(client, alice, "lev.alice.noop:nap", {"marker": marker})
        wait_for(lambda: tools.processes("sleep", marker))
        second = submit(client, alice, "lev.alice.noop:hello", {"word": "later"})
    # The server stopped: its running task was cancelled, the queued one waits in the store.
    assert store.get_job(first["id"])["status"] == "cancelled"
    assert store.get_job(second["id"])["status"] == "queued"
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as client:
        job = ended(client, alice, second["id"])
        assert job["status"] == "done", job["error"]
        bundle = client.get(f"/api/tasks/{second['id']}", headers=alice).json()
        assert [doc["data"] for doc in bundle["documents"]] == [{"word": "later"}]


def test_devices_api_lists_the_local_runner(client, tokens):
    (device,) = client.get("/api/devices", headers=tokens["bob"]).json()
    # What its engine holds (engine, engine_version, images) depends on the machine.
    engine = {key: device.pop(key) for key in ("engine", "engine_version", "images")}
    assert device == {"name": socket.gethostname(), "kind": "local runner", "status": "online",
                      "executor": "process", "running": 0, "queued": 0,
                      "executor_reason": "chosen by the setting LEV_SERVER_EXECUTOR=process",
                      "max_running_tasks": 2}
    assert isinstance(engine["images"], list)


@pytest.mark.parametrize("allowed", [False, True])
def test_auto_runs_no_package_code_on_the_host_unless_told(store, tokens, noop, monkeypatch,
                                                           tmp_path, allowed):
    monkeypatch.setenv("LEV_SERVER_EXECUTOR", "auto")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    settings = Settings(db_url=store.url, allow_host_execution=allowed)
    with TestClient(create_app(settings, store=store)) as client:
        (device,) = client.get("/api/devices", headers=tokens["bob"]).json()
        task = submit(client, tokens["bob"], "lev.alice.noop:hello", {"word": "hi"})
        job = ended(client, tokens["bob"], task["id"])
    if allowed:
        assert device["executor"] == "process"
        assert "no Docker API answers, so tools run as processes on this host" in \
            device["executor_reason"]
        assert job["status"] == "done", job
    else:
        assert device["executor"] == "none"
        assert job["status"] == "failed"
        assert job["error"].startswith("no executor may run it: auto: no Docker API answers")
        assert "LEV_SERVER_ALLOW_HOST_EXECUTION=true" in job["error"]
        assert store.list_runs(job["id"]) == []  # nothing of the package ran


def test_a_start_settles_jobs_whose_process_is_gone(store, tokens):
    ended_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                               capture_output=True, text=True, check=True).stdout.strip()
    here = socket.gethostname()
    orphan = store.create_job("orphan", owner="alice", driver=f"{here}:{ended_pid}")
    alive = store.create_job("alive", owner="alice", driver=f"{here}:{os.getpid()}")
    elsewhere = store.create_job("elsewhere", owner="alice", driver=f"not-{here}:1")
    unknown = store.create_job("unknown", owner="alice")
    with TestClient(create_app(Settings(db_url=store.url), store=store)):
        pass
    job = store.get_job(orphan)
    assert job["status"] == "failed" and f"its process ({here}:{ended_pid}) ended" in job["error"]
    # Nothing here can tell about the others: they stay as they were.
    assert [store.get_job(i)["status"] for i in (alive, elsewhere, unknown)] == ["running"] * 3


def test_tasks_are_their_owners(client, tokens, noop):
    alice, bob, root = tokens["alice"], tokens["bob"], tokens["root"]
    task_id = submit(client, alice, "lev.alice.noop:hello")["id"]
    ended(client, alice, task_id)
    for path in ("", "/logs", "/events"):
        answer = client.get(f"/api/tasks/{task_id}{path}", headers=bob)
        assert answer.status_code == 404 and task_id in answer.json()["detail"]
    assert client.post(f"/api/tasks/{task_id}/cancel", headers=bob).status_code == 404
    assert client.get("/api/tasks", headers=bob).json() == []
    assert [t["id"] for t in client.get("/api/tasks", headers=root).json()] == [task_id]
    assert client.get(f"/api/tasks/{task_id}", headers=root).status_code == 200


@pytest.mark.parametrize("headers, word", [
    ({}, "missing API token"),
    ({"Authorization": "Bearer lev_nonsense"}, "invalid API token"),
])
def test_a_token_is_required(client, headers, word):
    for method, path in (("GET", "/api/tasks"), ("POST", "/api/tasks"),
                         ("GET", "/api/tasks/abcd"), ("GET", "/api/tasks/abcd/logs"),
                         ("GET", "/api/tasks/abcd/events"), ("POST", "/api/tasks/abcd/cancel")):
        answer = client.request(method, path, headers=headers,
                                json={"target": "a:b"} if method == "POST" else None)
        assert answer.status_code == 401 and word in answer.json()["detail"], (method, path)


# -- the lev task commands, against a real server ----------------------------------------


def lev(capsys, *argv):
    code = cli_main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def hub(store, tokens, capsys, monkeypatch):
    """A server on 127.0.0.1 with alice logged in through lev login."""
    import io
    import sys

    with serve_in_thread(store) as url:
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        code, _, err = lev(capsys, "login", url, "--user", "alice", "--password-stdin")
        assert code == 0, err
        yield url


def test_cli_submit_follow_list_show_logs(capsys, hub, noop):
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:hello", "--param", "word=yo",
                         "--follow")
    assert code == 0, err
    assert "saying yo" in out and "done" in out
    task_id = out.split()[1]  # "task ID submitted ..."
    code, out, err = lev(capsys, "task", "list")
    assert code == 0 and task_id in out and "done" in out
    code, out, err = lev(capsys, "task", "list", "--search", "HELLO", "--status", "done")
    assert code == 0 and task_id in out
    code, out, err = lev(capsys, "task", "list", "--search", "nothing-like-it")
    assert code == 0 and "no tasks" in out
    code, out, err = lev(capsys, "task", "show", task_id, "--json")
    assert code == 0 and json.loads(out)["documents"][0]["data"] == {"word": "yo"}
    code, out, err = lev(capsys, "task", "show", task_id)
    assert code == 0 and "done" in out and '"word": "yo"' in out
    code, out, err = lev(capsys, "task", "logs", task_id)
    assert code == 0 and "saying yo" in out
    code, out, err = lev(capsys, "task", "logs", task_id, "--follow")
    assert code == 0 and "saying yo" in out


def test_cli_uploads_file_parameters(capsys, hub, noop, tmp_path):
    listing = tmp_path / "hosts.txt"
    listing.write_text("127.0.0.1\n127.0.0.2\n")
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:lines", "--file",
                         f"wordlist={listing}", "--version", "1.0", "--follow")
    assert code == 0, err
    task_id = out.split()[1]
    code, out, err = lev(capsys, "task", "show", task_id, "--json")
    assert json.loads(out)["documents"][0]["data"] == {"lines": 2}
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:lines", "--file",
                         f"wordlist={tmp_path / 'missing'}")
    assert code != 0 and err.startswith("lev: error: --file: cannot read ") and out == ""
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:lines", "--file", "x")
    assert code != 0 and "expected NAME=PATH" in err


def test_cli_errors_are_one_line(capsys, hub, noop):
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:nap", "--follow")
    assert code == 1 and err.startswith("lev: error: ") and "marker: required" in err, err
    assert len(err.splitlines()) == 1
    code, out, err = lev(capsys, "task", "show", "ffffffffffff")
    assert code == 1 and err == "lev: error: no task 'ffffffffffff'\n"
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:hello", "--param", "word")
    assert code == 2 and "--param" in err and len(err.splitlines()) == 1
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:hello", "--params", "[1]")
    assert code == 2 and "--params" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_the_published_examples_on_loopback(store, tokens, capsys):
    """On the server's default executor, auto: in containers where an engine answers (as in
    CI, with the images of images/), else as processes."""
    assert cli_main(["hub", "load", str(EXAMPLES)]) == 0, capsys.readouterr().err
    alice = tokens["alice"]
    settings = Settings(db_url=store.url, executor="auto", allow_host_execution=True)
    with TestClient(create_app(settings, store=store)) as client:
        check_examples(client, alice, "docker" if engine_url() else "process")


def check_examples(client, alice, executor):
    task_id = submit(client, alice, "lev.szczecin.nmap_python:server_port",
                     {"ip": "127.0.0.1", "ports": "1-100"})["id"]
    job = ended(client, alice, task_id, timeout=120)
    assert job["status"] == "done", (job["error"], job)
    assert job["executor"] == executor
    assert job["target"] == "lev.szczecin.nmap_python.asset:server_port"
    bundle = client.get(f"/api/tasks/{task_id}", headers=alice).json()
    assert [doc["coll"] for doc in bundle["documents"]] and bundle["job"]["owner"] == "alice"
    # lan_audit imports nmap_python: the task gets both packages' published files.
    task_id = submit(client, alice, "lev.szczecin.lan_audit:quick_check",
                     {"ip": "127.0.0.1", "ports": "1-10"})["id"]
    job = ended(client, alice, task_id, timeout=120)
    assert job["status"] == "done", job
    assert job["package"].startswith("lev.szczecin.lan_audit==")


# -- parameters reach the task as the server converted them (issue 11) ----------------------

PEEK = '''"""A tool that takes a file or a text: a path given as text must stay text."""
from levrt import Cr, File, annot, ctx, remote


def peek(f: File | str = "none") -> Cr:
    files = {"/in/f": f} if isinstance(f, File) else {}
    text = None if isinstance(f, File) else f

    @remote
    def entry():
        if text is None:
            with open("/in/f") as file:
                ctx.set(content=file.read())
        else:
            print("got text", text)
            ctx.set(text=text)
    return Cr("localhost/test:latest", files=files, entry=entry())


def size(blob: str = "", data: bytes = b"") -> Cr:
    @remote
    def entry():
        ctx.set(blob=len(blob), size=len(data), head=data[:4])
    return Cr("localhost/test:latest", entry=entry())


__lev__ = annot.meta([peek, size])
'''


@pytest.fixture
def peek(tmp_path, tokens, capsys):
    """alice's ``lev.alice.peek`` 1.0 and a secret file of the server's machine."""
    folder = tmp_path / "hub" / "alice.peek"
    (folder / "lev" / "alice" / "peek").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "lev.alice.peek"\nversion = "1.0"\ndependencies = ["levrt"]\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["lev"]\n')
    (folder / "lev" / "alice" / "peek" / "__init__.py").write_text(PEEK)
    assert cli_main(["hub", "load", str(folder.parent)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    secret = tmp_path / "server-secret.txt"
    secret.write_text(f"TOPSECRET-{os.getpid()}-{time.time_ns()}\n")
    return folder, secret


def assert_nowhere(client, headers, store, task_id, secret):
    """The secret file's content is in no answer about the task, nor in the store's files."""
    content = secret.read_text().strip()
    for path in (f"/api/tasks/{task_id}", f"/api/tasks/{task_id}/logs", "/api/tasks"):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200 and content not in answer.text, path
    for document in store.list_documents(task_id):
        assert content not in json.dumps(document["data"])
    digest = "sha256:" + hashlib.sha256(secret.read_bytes()).hexdigest()
    assert not store.has_file(digest)


def test_a_path_for_a_file_or_text_parameter_never_reads_a_server_file(client, tokens, peek,
                                                                       store):
    folder, secret = peek
    alice, root = tokens["alice"], tokens["root"]
    job = ended(client, alice, submit(client, alice, "lev.alice.peek:peek",
                                      {"f": str(secret)})["id"])
    assert job["status"] == "done", job
    assert [doc["data"] for doc in store.list_documents(job["id"])] == [{"text": str(secret)}]
    assert_nowhere(client, alice, store, job["id"], secret)
    # An administrator's target is converted by the job, by the server's rules all the same.
    job = ended(client, root, submit(client, root, f"{folder}:peek", {"f": str(secret)})["id"])
    assert job["status"] == "done", job
    assert [doc["data"] for doc in store.list_documents(job["id"])] == [{"text": str(secret)}]
    assert_nowhere(client, root, store, job["id"], secret)
    # An uploaded file is a file; its digest given as text by the API is the file too.
    uploaded = client.post("/api/tasks/files", headers=alice,
                           files={"file": ("mine.txt", b"my own words", "text/plain")}).json()
    job = ended(client, alice, submit(client, alice, "lev.alice.peek:peek",
                                      {"f": uploaded["digest"]})["id"])
    assert job["status"] == "done", job
    assert store.get_job(job["id"])["params"] == {"f": {"$file": uploaded["digest"]}}
    assert [doc["data"] for doc in store.list_documents(job["id"])] == [
        {"content": "my own words"}]


def _csrf(page):
    return page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def _web_task(web, store, run, files=None, **fields):
    """Submit the Quick form ``run`` (logged in) with ``fields``; the task's job once ended."""
    answer = web.post(run, data={"csrf_token": _csrf(web.get(run)), **fields}, files=files)
    assert answer.status_code == 303, answer.text
    task_id = answer.headers["location"].removeprefix("/tasks/")
    return wait_for(lambda: (lambda job: job if job["status"] not in ("queued", "running")
                             else None)(store.get_job(task_id)))


@pytest.fixture
def web(store):
    """A browser-like client, logged in as carol."""
    store.create_user("carol", PASSWORD)
    with TestClient(create_app(Settings(db_url=store.url), store=store),
                    follow_redirects=False) as client:
        answer = client.post("/login", data={"user": "carol", "password": PASSWORD,
                                             "csrf_token": _csrf(client.get("/login"))})
        assert answer.status_code == 303, answer.text
        yield client


def test_a_bytes_parameter_is_an_upload_field(store, tokens, peek, web):
    run = "/packages/lev.alice.peek/run/lev.alice.peek:size"
    assert '<input type="file" id="p_data" name="p_data">' in web.get(run).text
    job = _web_task(web, store, run, files={"p_data": ("b.bin", b"\x00\x01\x02", "x/y")},
                    p_blob="abc")
    assert job["status"] == "done", job["error"]
    assert [doc["data"] for doc in store.list_documents(job["id"])] == [
        {"blob": 3, "size": 3, "head": b"\x00\x01\x02"}]
    assert job["params"] == {"blob": "abc", "data": b"\x00\x01\x02"}
    assert '"$bytes": "AAEC"' in web.get(f"/tasks/{job['id']}").text.replace("&#34;", '"')


def test_a_path_typed_into_the_web_form_stays_text(store, tokens, peek, web):
    _, secret = peek
    run = "/packages/lev.alice.peek/run/lev.alice.peek:peek"
    job = _web_task(web, store, run, p_f=str(secret))
    task_id = job["id"]
    assert job["status"] == "done", job["error"]
    assert [doc["data"] for doc in store.list_documents(task_id)] == [{"text": str(secret)}]
    content = secret.read_text().strip()
    assert content not in web.get(f"/tasks/{task_id}").text
    headers = {"Authorization": f"Bearer {store.create_token('carol', 't')['token']}"}
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as api:
        assert_nowhere(api, headers, store, task_id, secret)


def test_large_parameters_travel_outside_argv_up_to_the_limit(store, tokens, peek):
    alice = tokens["alice"]
    blob = "x" * (300 * 1024)  # over the ~128 KiB one argument may have
    data = {"$bytes": base64.b64encode(b"\x00\x01" * 100_000).decode()}
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as client:
        job = ended(client, alice, submit(client, alice, "lev.alice.peek:size",
                                          {"blob": blob, "data": data})["id"], timeout=60)
        assert job["status"] == "done", job["error"]
        assert [doc["data"] for doc in store.list_documents(job["id"])] == [
            {"blob": len(blob), "size": 200_000, "head": b"\x00\x01\x00\x01"}]
    with TestClient(create_app(Settings(db_url=store.url, max_params_bytes=100_000),
                               store=store)) as client:
        answer = client.post("/api/tasks", headers=alice, json={
            "target": "lev.alice.peek:size", "params": {"blob": blob, "data": "ok"}})
        assert answer.status_code == 413, answer.text
        (item,) = answer.json()["detail"]
        assert item["loc"] == ["body", "params", "blob"]
        assert "at most 100000 bytes" in item["msg"]
    assert len(store.list_jobs()) == 1  # the refused task was never recorded
