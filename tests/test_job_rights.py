"""A job's driver has job-only rights (docs/tasks.md#what-a-job-can-reach): a published
workflow run by the server's runner tries to read the server's database, LEV_HOME, secret
and settings and to call other routes with its token, and is refused; job tokens over a real
HTTP server reach their own job only, and die with it; :class:`levrt.client.JobStore`
records a job through them."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from helpers_hub import PASSWORD, serve_in_thread

from levrt._cli import cli_main
from levrt.agent._driver import Drivers
from levrt.client import ApiError, JobStore
from levrt.executors.docker import engine_url
from levrt.server.auth import make_job_token
from levrt.server.sessions import load_secret
from levrt.store import Store, default_url

SNOOP = '''"""A workflow that looks for what a job must not reach."""
import os
import stat

from levrt import annot, lev
from levrt._job import current_job


def _try(action):
    try:
        return action()
    except Exception as exc:
        return getattr(exc, "status", None) or type(exc).__name__


def _read(path):
    with open(path, "rb") as file:
        return file.read(8).decode("latin-1")


async def snoop(home: str, other: str) -> dict:
    """Reports what it could reach."""
    client = current_job().store._client  # the job token is gone from the environment
    found = {
        "home": _try(lambda: sorted(os.listdir(home))),
        "db": _try(lambda: _read(os.path.join(home, "levrt.db"))),
        "secret": _try(lambda: _read(os.path.join(home, "web-secret"))),
        "engine": _try(lambda: stat.S_ISSOCK(os.stat("/run/podman.sock").st_mode)),
        "env": sorted(name for name in os.environ if name.startswith("LEV_")),
        "my_home": os.environ.get("LEV_HOME"),
        "user_route": _try(lambda: client.request("GET", "/api/tasks").status_code),
        "other_job": _try(lambda: client.request("GET", f"/api/driver/jobs/{other}")
                          .status_code),
    }
    print("snooped")
    await lev.doc.set(snooped=True)
    return found


__lev__ = annot.meta([snoop])
'''


def _snoop_package(hub: Path) -> Path:
    folder = hub / "alice.snoop"
    (folder / "lev" / "alice" / "snoop").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "lev.alice.snoop"\nversion = "1.0"\ndependencies = ["levrt"]\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["lev"]\n')
    (folder / "lev" / "alice" / "snoop" / "__init__.py").write_text(SNOOP)
    return hub


@pytest.fixture
def server_home(lev_home, monkeypatch):
    """A LEV_HOME outside /tmp, which drivers' sandboxes replace anyway: what hides it from a
    driver here is the runner's own doing."""
    home = Path(tempfile.mkdtemp(prefix="lev-rights-", dir="/var/tmp"))
    monkeypatch.setenv("LEV_HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def rights_store(server_home):
    with Store(default_url()) as opened:
        yield opened


@pytest.fixture
def alice(rights_store):
    rights_store.create_user("alice", PASSWORD)
    token = rights_store.create_token("alice", "test")["token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server(rights_store):
    with serve_in_thread(rights_store) as url:
        yield url


def _ended(http, headers, task_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bundle = http.get(f"/api/tasks/{task_id}", headers=headers).json()
        if bundle["job"]["status"] not in ("queued", "running"):
            return bundle
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not end")


def test_a_published_workflow_reaches_its_own_job_only(server, server_home, rights_store,
                                                       alice, tmp_path, capsys):
    assert cli_main(["hub", "load", str(_snoop_package(tmp_path / "hub"))]) == 0, \
        capsys.readouterr().err
    other = rights_store.create_job("someone else's", owner="alice", queued=True)
    with httpx.Client(base_url=server, timeout=30) as http:
        answer = http.post("/api/tasks", headers=alice, json={
            "target": "lev.alice.snoop:snoop",
            "params": {"home": str(server_home), "other": other}})
        assert answer.status_code == 202, answer.text
        bundle = _ended(http, alice, answer.json()["id"])
    assert bundle["job"]["status"] == "done", bundle["job"]
    found = bundle["job"]["result"]
    # The server's LEV_HOME (its database, its secret) is empty to the driver but for the
    # package's own files.
    assert (server_home / "levrt.db").exists() and (server_home / "web-secret").exists()
    assert found["home"] == ["unpacked"] and found["db"] == found["secret"] == "FileNotFoundError"
    # The process executor's driver reaches no container engine.
    assert found["engine"] in (False, "FileNotFoundError")
    # Nothing of the server's settings, database or token in the environment.
    assert found["env"] == ["LEV_API_SOCKET", "LEV_DRIVER_ID", "LEV_HOME"], found["env"]
    assert found["my_home"] != str(server_home)
    # The runner's socket serves the driver routes alone; another job's are refused.
    assert found["user_route"] == 404 and found["other_job"] == 403
    # What it may do, it did: its log and its document are in the store.
    assert "snooped" in [row["text"] for row in bundle["log"]]
    assert [doc["data"] for doc in bundle["documents"]] == [{"snooped": True}]


def test_a_job_token_reaches_its_job_until_it_ends(server, rights_store, alice):
    job = rights_store.create_job("mine", owner="alice", queued=True)
    other = rights_store.create_job("another", owner="alice", queued=True)
    token = {"Authorization": f"Bearer {make_job_token(load_secret(), job)}"}
    with httpx.Client(base_url=server, timeout=30) as http:
        assert http.get(f"/api/driver/jobs/{job}", headers=token).json()["id"] == job
        refused = http.get(f"/api/driver/jobs/{other}", headers=token)
        assert refused.status_code == 403 and f"for job {job}, not {other}" in refused.text
        for path in ("/api/tasks", "/api/me", f"/api/tasks/{job}"):
            refused = http.get(path, headers=token)
            assert refused.status_code == 401 and "job token" in refused.text, path
        # A user's token opens no driver route.
        refused = http.get(f"/api/driver/jobs/{job}", headers=alice)
        assert refused.status_code == 401 and "not a job token" in refused.text
        forged = {"Authorization": f"Bearer {make_job_token(b'x' * 64, job)}"}
        assert http.get(f"/api/driver/jobs/{job}", headers=forged).status_code == 401
        rights_store.end_unfinished_job(job, "cancelled", error="test")
        dead = http.get(f"/api/driver/jobs/{job}", headers=token)
        assert dead.status_code == 401 and "died with it" in dead.text


def test_job_store_records_a_job_through_the_api(server, rights_store, alice):
    job = rights_store.create_job("api", owner="alice", queued=True, params={"n": 1})
    digest = rights_store.keep_user_file(b"wordlist", name="w.txt", user="alice")
    store = JobStore(job, make_job_token(load_secret(), job), base_url=server)
    with store:
        store.start_job(job, executor="process", driver="elsewhere:1")
        assert store.get_job(job)["params"] == {"n": 1}
        assert rights_store.get_job(job)["status"] == "running"
        store.create_runs(job, [{"run_id": 0, "name": "t", "image": "i", "schema": "s/x@1",
                                 "coll": "s.x", "spec": {"a": 1}}])
        # Refused as the store refuses: a ValueError, one run at a time then tells which.
        with pytest.raises(ValueError, match="already exists"):
            store.create_runs(job, [{"run_id": 0, "name": "t", "image": None, "schema": None,
                                     "coll": "c"}])
        with pytest.raises(ValueError, match="name"):
            store.create_runs(job, [{"run_id": 1, "name": "t" * 1001, "image": None,
                                     "schema": None, "coll": "c"}])
        log = store.run_log(job, 0, 0)
        log.append([("stdout", f"line {i}") for i in range(50)])
        log.append([("stderr", "oops")])
        store.run_log(job, None, 0).append([("job", "the job's own")])
        store.merge_document("s.x", job, 0, {"blob": b"\x00\xff", "k": 1})
        store.finish_run(job, 0, status="done", exit_code=0, coll="s.x", data={"k": 2})
        assert store.log_tail(job, 0, 2) == ["line 49", "oops"]
        assert [d["data"] for d in store.find_documents(coll="s.x", run_id=0)] == [
            {"blob": b"\x00\xff", "k": 2}]
        assert store.has_file(digest) and store.get_file(digest) == b"wordlist"
        assert not store.has_file("sha256:" + "0" * 64)
        store.set_job_progress(job, 0.5)
        store.finish_job(job, "done", result={"ok": b"\x01"})
        with pytest.raises(ApiError) as refused:
            store.merge_document("s.x", job, 0, {"late": True})
        assert refused.value.status == 401
    record = rights_store.get_job(job)
    assert (record["status"], record["result"], record["progress"]) == ("done", {"ok": b"\x01"},
                                                                         0.5)
    rows = rights_store.get_logs(job)
    assert len(rows) == 52 and rows[-1]["text"] == "the job's own"
    # 52 lines in few requests: the store holds them and sends them together.
    assert [r["run_id"] for r in rows].count(0) == 51


DOCK = '''"""A tool the docker executor runs."""
import sys

from levrt import Cr, annot, ctx, remote


def probe() -> Cr:
    @remote
    def entry():
        ctx.set(py=list(sys.version_info[:2]))
    return Cr("localhost/lev-py39:bullseye", entry=entry())


__lev__ = annot.meta([probe])
'''


def test_the_docker_executor_works_from_the_sandbox(server_home, rights_store, alice,
                                                      tmp_path, capsys, monkeypatch):
    url = engine_url()
    if url is None:
        pytest.skip("no container engine answers")
    monkeypatch.setenv("LEV_SERVER_EXECUTOR", "docker")
    monkeypatch.setenv("DOCKER_HOST", url)
    folder = tmp_path / "hub" / "alice.dock"
    (folder / "lev" / "alice" / "dock").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "lev.alice.dock"\nversion = "1.0"\ndependencies = ["levrt"]\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["lev"]\n')
    (folder / "lev" / "alice" / "dock" / "__init__.py").write_text(DOCK)
    assert cli_main(["hub", "load", str(tmp_path / "hub")]) == 0, capsys.readouterr().err
    with serve_in_thread(rights_store) as server, httpx.Client(base_url=server,
                                                                timeout=30) as http:
        answer = http.post("/api/tasks", headers=alice,
                           json={"target": "lev.alice.dock:probe", "params": {}})
        assert answer.status_code == 202, answer.text
        bundle = _ended(http, alice, answer.json()["id"], timeout=120)
    assert bundle["job"]["status"] == "done", (bundle["job"]["error"], bundle["log"])
    assert bundle["job"]["executor"] == "docker"
    assert [doc["data"] for doc in bundle["documents"]] == [{"py": [3, 9]}]


def test_a_chatty_run_costs_few_requests(server, rights_store, alice):
    job = rights_store.create_job("chatty", owner="alice", queued=True)
    store = JobStore(job, make_job_token(load_secret(), job), base_url=server)
    sent: list[str] = []
    request = store._client.request

    def counted(method, path, **kwargs):
        sent.append(path.rsplit("/", 1)[-1])
        return request(method, path, **kwargs)

    store._client.request = counted
    with store:
        store.start_job(job, executor="process")
        log = store.run_log(job, None, 0)
        for i in range(10_000):  # one line a write, as a tool printing line by line
            log.append([("job", f"line {i}")])
        store.finish_job(job, "done")
    assert len(rights_store.get_logs(job, limit=20_000)) == 10_000
    # At most one request a LOG_FLUSH_LINES lines, or a quarter of a second, whichever first.
    assert 5 <= sent.count("logs") <= 5 + 8, sent.count("logs")


REMEMBER = '''"""A workflow that reads what its previous run left."""
from levrt import annot, ctx


async def remember(target: str):
    before = await ctx.previous()
    hosts = [] if before is None else before["documents"][0]["data"]["hosts"]
    await ctx.doc.set(hosts=[*hosts, f"{target}-{len(hosts)}"])
    return None if before is None else before["job_id"]


__lev__ = annot.meta([remember])
'''


def test_a_server_task_reads_its_previous_run_through_the_api(server, rights_store, alice,
                                                              tmp_path, capsys):
    """``ctx.previous()`` in a driver holding a job token: the one read beyond its job."""
    hub = _snoop_package(tmp_path / "hub")
    (hub / "alice.snoop" / "lev" / "alice" / "snoop" / "__init__.py").write_text(REMEMBER)
    assert cli_main(["hub", "load", str(hub)]) == 0, capsys.readouterr().err
    results, ids = [], []
    with httpx.Client(base_url=server, timeout=30) as http:
        for _ in range(2):
            answer = http.post("/api/tasks", headers=alice, json={
                "target": "lev.alice.snoop:remember", "params": {"target": "a"}})
            assert answer.status_code == 202, answer.text
            bundle = _ended(http, alice, answer.json()["id"])
            assert bundle["job"]["status"] == "done", bundle["job"]
            results.append(bundle["job"]["result"])
            ids.append(bundle["job"]["id"])
            hosts = [d["data"] for d in bundle["documents"]]
    assert results == [None, ids[0]]
    assert hosts == [{"hosts": ["a-0", "a-1"]}]


PROBE = '''"""What a job's driver has loaded, and one tool run."""
import os
import sys

from levrt import Cr


async def probe(n: int):
    document = await Cr("localhost/test:latest", cmd=["true"])
    await document.get()
    return {"n": n, "store_modules": sorted(name for name in ("sqlalchemy", "alembic")
                                            if name in sys.modules),
            "job_token": "LEV_JOB_TOKEN" in os.environ, "home": "LEV_HOME" in os.environ}
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("warm", [True, False], ids=["started-ahead", "cold"])
async def test_an_agents_driver_runs_its_job_through_the_api_only(server, rights_store, tmp_path,
                                                                  monkeypatch, warm):
    """An agent's job drivers (:class:`levrt.agent._driver.Drivers`), started ahead of their
    job or when it comes, run it with its token alone: no LEV_HOME, no SQLAlchemy. One
    started ahead that died is replaced; closing leaves no process behind."""
    (tmp_path / "probe.py").write_text(PROBE)
    monkeypatch.setenv("LEV_SANDBOX", "1")
    drivers = Drivers(warm=warm)
    await drivers.prepare()
    ahead = drivers._spare
    assert (ahead is not None) == warm
    results = []
    for n in range(2):
        job = rights_store.create_job("probe", owner="alice", queued=True, target="probe:probe",
                                      params={"n": n})
        process = await drivers.start(job, "probe:probe", [str(tmp_path)], server,
                                      make_job_token(load_secret(), job), "process")
        if ahead is not None and n == 0:
            assert process is ahead  # the one started ahead took the job
        _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        record = rights_store.get_job(job)
        assert record["status"] == "done", record
        results.append(record["result"])
        if warm and n == 0:  # the next one, started ahead, dies before its job comes
            await drivers._later
            assert drivers._spare is not None
            drivers._spare.kill()
            await drivers._spare.wait()
    # The token is the driver's, not left in the environment its tools inherit.
    assert results == [{"n": n, "store_modules": [], "job_token": False, "home": False}
                       for n in range(2)]
    if warm:
        await drivers._later
        waiting = drivers._spare
        assert waiting is not None and _alive(waiting.pid)
    await drivers.aclose()
    assert drivers._spare is None
    if warm:
        assert not _alive(waiting.pid)
