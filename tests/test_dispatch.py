"""Tasks sent to a device or a pool: where a task may be sent (API), what an agent may claim,
and for real — a Temporal dev server, ``lev serve`` and ``lev agent`` processes — a task run
on a device, one cancelled there, and one whose agent was killed with -9 finished by another
agent of its pool."""

import asyncio
import os
import subprocess
import sys
import time
import uuid

import helpers_netns
import httpx
import pytest
from helpers_agent import AgentProcess, LevServer, wait_for
from helpers_hub import PASSWORD, TestClient
from helpers_pg import Databases, PgCluster
from helpers_temporal import TemporalServer, free_port
from test_agent_api import bearer, enrolled
from test_agent_netns import lab  # noqa: F401 - a fixture
from test_tasks import noop_package
from test_web import csrf_of, login

from levrt._cli import cli_main
from levrt.client._credentials import save_login
from levrt.server import Settings, create_app
from levrt.store import Store

HELLO = "lev.alice.noop:hello"
NAP = "lev.alice.noop:nap"
STEPS = "lev.alice.steps:steps"

STEPS_CODE = '''"""A workflow of three runs: a quick one, a nap, a quick one."""
from levrt import Concurrent, Cr, annot, ctx, remote


def step(word: str) -> Cr:
    @remote
    def entry():
        print(f"step {word}", flush=True)
        ctx.set(word=word)
    return Cr("localhost/test:latest", "test/step@1.0", entry=entry())


def nap(marker: str) -> Cr:
    @remote
    def entry():
        import subprocess
        subprocess.run(["sleep", marker])
    return Cr("localhost/test:latest", entry=entry())


def probe(port: str, wait: str = "0") -> Cr:
    @remote
    def entry():
        import socket
        import time
        time.sleep(float(wait))
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=3) as conn:
                ctx.set(banner=conn.recv(100).decode().strip())
        except OSError as exc:
            ctx.set(banner=None, error=str(exc))
    return Cr("localhost/test:latest", "test/probe@1.0", entry=entry())


async def fan(port: str, runs: int = 6):
    """``runs`` probes at once: each says whose service it reached."""
    async with Concurrent() as c:
        started = [c.start(probe(port, "2")) for _ in range(runs)]
    return [(await (await task).get())["banner"] for task in started]


async def lone_nap(marker: str):
    await nap(marker)


async def steps(marker: str):
    await step("first")
    await nap(marker)
    await step("last")


async def naps(marker: str, runs: int):
    async with Concurrent() as c:
        for _ in range(runs):
            c.start(nap(marker))


__lev__ = annot.meta([step, nap, probe, fan, lone_nap, steps, naps])
'''


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'hub.db'}") as s:
        s.create_user("alice", PASSWORD)
        s.create_user("bob", PASSWORD)
        yield s


def _app(store, temporal):
    return TestClient(create_app(Settings(db_url=store.url, temporal=temporal), store=store),
                      follow_redirects=False)


def _published(store, tmp_path):
    """Publishes lev.alice.noop and lev.alice.steps as alice's."""
    hub = noop_package(tmp_path / "hub")
    folder = hub / "alice.steps"
    (folder / "lev" / "alice" / "steps").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        (hub / "alice.noop" / "pyproject.toml").read_text().replace("noop", "steps"))
    (folder / "lev" / "alice" / "steps" / "__init__.py").write_text(STEPS_CODE)
    env = {**os.environ, "LEV_DB_URL": store.url}
    done = subprocess.run([sys.executable, "-m", "levrt", "hub", "load", str(hub)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr


def test_where_a_task_may_be_sent(store, tmp_path):
    _published(store, tmp_path)
    alice = bearer(store.create_token("alice", "t")["token"])
    with _app(store, "127.0.0.1:1") as client:
        enrolled(client, alice, "box", ["lab"])

        def refused(**where):
            answer = client.post("/api/tasks", json={"target": HELLO, **where}, headers=alice)
            assert answer.status_code == 422, answer.text
            [error] = answer.json()["detail"]
            return error["loc"], error["msg"]

        assert refused(device="nope") == (["body", "device"],
                                          "you have no device 'nope' (lev device list)")
        assert refused(pool="nope")[0] == ["body", "pool"]
        assert refused(device="box", pool="lab")[1] == "give a device or a pool, not both"
    # Bob cannot send a task to alice's device.
    bob = bearer(store.create_token("bob", "t")["token"])
    with _app(store, "127.0.0.1:1") as client:
        answer = client.post("/api/tasks", json={"target": HELLO, "device": "box"}, headers=bob)
        assert answer.status_code == 422 and "no device 'box'" in answer.text


def test_the_run_form_offers_the_users_devices(store, tmp_path):
    _published(store, tmp_path)
    alice = bearer(store.create_token("alice", "t")["token"])
    with _app(store, "127.0.0.1:1") as client:
        enrolled(client, alice, "box", ["lab"])
        login(client, "alice")
        form = client.get("/packages/lev.alice.noop/run/lev.alice.noop:hello")
        assert '<option value="device:box">device box</option>' in form.text
        assert '<option value="pool:lab">any device of pool lab</option>' in form.text

        def sent(where):
            return client.post("/packages/lev.alice.noop/run/lev.alice.noop:hello",
                               data={"csrf_token": csrf_of(form), "version": "1.0",
                                     "p_word": "x", "where": where})

        refused = sent("device:nope")
        assert refused.status_code == 400 and "you have no device &#39;nope&#39;" in refused.text
        unreachable = sent("pool:lab")  # Temporal does not answer at 127.0.0.1:1
        assert unreachable.status_code == 503 and "cannot reach Temporal" in unreachable.text
        assert 'value="pool:lab" selected' in unreachable.text
    assert store.list_jobs() == []


def test_a_server_without_temporal_sends_nothing(store, tmp_path):
    _published(store, tmp_path)
    alice = bearer(store.create_token("alice", "t")["token"])
    with _app(store, None) as client:
        assert client.post("/api/devices", json={"name": "box"}, headers=alice).status_code == 201
        answer = client.post("/api/tasks", json={"target": HELLO, "device": "box"},
                             headers=alice)
        assert answer.status_code == 503 and "lev serve --temporal" in answer.text
    assert store.list_jobs() == []
    with _app(store, "127.0.0.1:1") as client:  # told, but nothing answers there
        answer = client.post("/api/tasks", json={"target": HELLO, "device": "box"},
                             headers=alice)
        assert answer.status_code == 503 and "cannot reach Temporal at 127.0.0.1:1" in answer.text
    assert store.list_jobs() == []


def test_what_an_agent_may_claim(store, tmp_path):
    _published(store, tmp_path)
    alice = bearer(store.create_token("alice", "t")["token"])
    bob = bearer(store.create_token("bob", "t")["token"])
    with _app(store, "127.0.0.1:1") as client:
        box = bearer(enrolled(client, alice, "box", ["lab"])["token"])
        other = bearer(enrolled(client, alice, "other")["token"])
        bobs = bearer(enrolled(client, bob, "box", ["lab"])["token"])
        version = store.get_version("lev.alice.noop", "1.0")
        job = store.create_job("hello", target=HELLO, owner="alice", queued=True,
                               package="lev.alice.noop==1.0", placement="pool:lab")
        path = f"/api/agent/jobs/{job}"
        # Not its pool, another owner's device of the same names, a user's token.
        for refused in (other, bobs):
            answer = client.post(f"{path}/claim", headers=refused)
            assert answer.status_code == 403 and "was not sent to device" in answer.text
        assert client.post(f"{path}/claim", headers=alice).status_code == 401
        assert client.post("/api/agent/jobs/nosuchjob/claim", headers=box).status_code == 403
        claimed = client.post(f"{path}/claim", headers=box)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["target"] == HELLO
        assert claimed.json()["wheels"] == [{"filename": version["filename"],
                                             "sha256": version["sha256"]}]
        assert claimed.json()["token"].startswith("levjob.")
        wheel = client.get(f"{path}/wheels/{version['filename']}", headers=box)
        assert wheel.status_code == 200 and wheel.content[:2] == b"PK"
        assert client.get(f"{path}/wheels/other.whl", headers=box).status_code == 404
        assert client.get(f"{path}/wheels/{version['filename']}",
                          headers=other).status_code == 403
        # The job's token opens no agent route, and the agent's no driver route of another.
        job_token = bearer(claimed.json()["token"])
        assert client.post(f"{path}/claim", headers=job_token).status_code == 401
        ended = client.post(f"{path}/end", json={"status": "failed", "error": "no python"},
                            headers=box)
        assert ended.status_code == 204
        assert store.get_job(job)["status"] == "failed"
        assert store.get_job(job)["error"] == "no python"
        answer = client.post(f"{path}/claim", headers=box)
        assert answer.status_code == 409 and "has ended (failed)" in answer.text


# -- for real ----------------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path, temporal_server):
    server = LevServer.start(tmp_path / "server", temporal_server.address)
    agents: dict[str, AgentProcess] = {}
    try:
        with Store(f"sqlite:///{tmp_path / 'server' / 'levrt.db'}") as store:
            _published(store, tmp_path)
        yield server, agents
    finally:
        for agent in agents.values():
            agent.stop()
        server.stop()


def _agent(server, agents, tmp_path, name, pools=()):
    agents[name] = AgentProcess.start(tmp_path / name, server.url,
                                      code=server.add_device(name, list(pools)),
                                      extra=("--executor", "process"))
    wait_for(lambda: server.status(name) == "online", 60, f"{name} online")


def _submit(server, target, params, **where):
    answer = server.api("POST", "/api/tasks", json={"target": target, "params": params,
                                                     **where})
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def _task(server, job_id):
    """The task's bundle: ``job``, ``runs``, ``documents``, ``log``..."""
    return server.api("GET", f"/api/tasks/{job_id}").json()


def _status(server, job_id):
    return _task(server, job_id)["job"]["status"]


def _ended(server, job_id, timeout=120):
    return wait_for(lambda: (task := _task(server, job_id))["job"]["status"] in
                    ("done", "failed", "cancelled") and task, timeout, f"task {job_id} ended")


def _left(marker):
    return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout


def test_a_task_runs_on_the_device_it_was_sent_to(cluster, tmp_path, capsys, temporal_server):
    server, agents = cluster
    _agent(server, agents, tmp_path, "box", ["lab"])
    # From the command line, followed to its end.
    save_login(server.url, "alice", server.token)
    assert cli_main(["task", "submit", HELLO, "--param", "word=cli", "--pool", "lab",
                     "--follow"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "saying cli" in out and out.rstrip().endswith("done"), out
    assert cli_main(["task", "submit", HELLO, "--device", "box", "--pool", "lab"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    for where in ({"device": "box"}, {"pool": "lab"}):
        job_id = _submit(server, HELLO, {"word": "far"}, **where)
        task = _ended(server, job_id)
        assert task["job"]["status"] == "done", task
        assert task["job"]["placement"] == ":".join(*where.items())
        [document] = [d for d in task["documents"] if d["coll"] == "test/noop@1.0"]
        assert document["data"] == {"word": "far"}
        assert any("saying far" in line["text"] for line in task["log"])
        # lev run ended well: it reads nothing after its job's end (the token died with it).
        assert asyncio.run(_workflow_result(temporal_server.address, job_id)) == "done"
    # From the run form too.
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        login(browser, "alice")
        form = browser.get(f"/packages/lev.alice.noop/run/{HELLO}")
        answer = browser.post(f"/packages/lev.alice.noop/run/{HELLO}", data={
            "csrf_token": csrf_of(form), "version": "1.0", "p_word": "web",
            "where": "device:box"})
        assert answer.status_code == 303, answer.text
        job_id = answer.headers["location"].rpartition("/")[2]
        task = _ended(server, job_id)
        assert task["job"]["status"] == "done" and task["job"]["placement"] == "device:box"
        # "Run again" runs it where it ran.
        page = browser.get(f"/tasks/{job_id}")
        again = browser.post(f"/tasks/{job_id}/rerun", data={"csrf_token": csrf_of(page)})
        assert again.status_code == 303, again.text
        rerun = again.headers["location"].rpartition("/")[2]
    task = _ended(server, rerun)
    assert task["job"]["status"] == "done" and task["job"]["placement"] == "device:box"
    # A schedule's tasks run where it places them.
    answer = server.api("POST", "/api/schedules", json={
        "name": "far", "target": HELLO, "params": {"word": "scheduled"}, "interval": 60,
        "pool": "lab"})
    assert answer.status_code == 201 and answer.json()["placement"] == "pool:lab", answer.text
    made = answer.json()
    # The server was given Temporal: a Temporal Schedule fires its first slot, a minute on.
    with Store(f"sqlite:///{tmp_path / 'server' / 'levrt.db'}") as store:
        fired = wait_for(lambda: [f for f in store.list_fires(made["id"]) if f["job_id"]], 100,
                         "the schedule fired")
    task = _ended(server, fired[0]["job_id"])
    assert task["job"]["status"] == "done" and task["job"]["placement"] == "pool:lab", task
    # The agent unpacked the wheel once, under its own LEV_HOME.
    assert len(list((tmp_path / "box" / "wheels").iterdir())) == 1


async def _workflow_result(address, job_id):
    from temporalio.client import Client

    client = await Client.connect(address)
    return await client.get_workflow_handle(f"lev-job-{job_id}").result()


async def _heartbeat(address, job_id):
    """The details of the job's activity's latest heartbeat, None before the first."""
    from temporalio.client import Client

    client = await Client.connect(address)
    described = await client.get_workflow_handle(f"lev-job-{job_id}").describe()
    for pending in described.raw_description.pending_activities:
        if pending.heartbeat_details.payloads:
            [details] = await client.data_converter.decode(pending.heartbeat_details.payloads)
            return details
    return None


@pytest.mark.parametrize("origin", ["api", "page"])
def test_cancel_reaches_the_agent(cluster, tmp_path, origin, temporal_server):
    server, agents = cluster
    _agent(server, agents, tmp_path, "box")
    marker = str(600 + uuid.uuid4().int % 1000)
    job_id = _submit(server, NAP, {"marker": marker}, device="box")
    wait_for(lambda: _status(server, job_id) == "running" and _left(f"sleep {marker}"),
             60, "the nap running")
    # Its heartbeats carry how far it is.
    beat = wait_for(lambda: (beat := asyncio.run(_heartbeat(
        temporal_server.address, job_id))) and beat["runs"] and beat, 20, "a heartbeat of a run")
    assert beat == {"status": "running", "progress": 0.0, "runs": 1, "finished": 0}, beat
    started = time.monotonic()
    if origin == "api":
        answer = server.api("POST", f"/api/tasks/{job_id}/cancel")
        assert answer.status_code == 202, answer.text
    else:
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            login(browser, "alice")
            page = browser.get(f"/tasks/{job_id}")
            answer = browser.post(f"/tasks/{job_id}/cancel",
                                  data={"csrf_token": csrf_of(page)})
            assert answer.status_code == 303, answer.text
    task = _ended(server, job_id, 60)
    assert task["job"]["status"] == "cancelled", task
    assert time.monotonic() - started < 20
    wait_for(lambda: _left(f"sleep {marker}") == "", 10, "no sleep left")


def test_cancel_reaches_the_runs_spread_over_a_pool(cluster, tmp_path):
    server, agents = cluster
    for name in ("a", "b"):  # five slots for four runs: the driver takes one
        agents[name] = AgentProcess.start(tmp_path / name, server.url,
                                          code=server.add_device(name, ["lab"]),
                                          extra=("--executor", "process", "--slots", "3"))
    for name in agents:
        wait_for(lambda name=name: server.status(name) == "online", 60, f"{name} online")
    marker = str(600 + uuid.uuid4().int % 1000)
    job_id = _submit(server, "lev.alice.steps:naps", {"marker": marker, "runs": 4},
                     pool="lab", spread=True)
    wait_for(lambda: len(_left(f"sleep {marker}").split()) == 4, 60, "the four naps running")
    answer = server.api("POST", f"/api/tasks/{job_id}/cancel")
    assert answer.status_code == 202, answer.text
    task = _ended(server, job_id, 60)
    assert task["job"]["status"] == "cancelled", task
    assert [run["status"] for run in task["runs"]] == ["cancelled"] * 4, task["runs"]
    wait_for(lambda: _left(f"sleep {marker}") == "", 15, "no nap left on either agent")


def _parent(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def _runs_of(task):
    return [(run["run_id"], run["name"], run["status"]) for run in task["runs"]]


def test_a_job_whose_agent_was_killed_goes_on_on_another(cluster, tmp_path):
    server, agents = cluster
    _agent(server, agents, tmp_path, "one", ["lab"])
    _agent(server, agents, tmp_path, "two", ["lab"])
    marker = f"8.{uuid.uuid4().int % 1000}"
    job_id = _submit(server, STEPS, {"marker": marker}, pool="lab")
    wait_for(lambda: _left(f"sleep {marker}"), 60, "the nap running")
    before = _task(server, job_id)
    first_started = before["runs"][0]["started_at"]
    # Which agent runs it: the parent of its lev run.
    parent = _parent(int(before["job"]["driver"].split(":")[1]))
    [lost] = [name for name, agent in agents.items() if agent.process.pid == parent]
    agents[lost].kill()
    # Its lev run and its runs die with it; another agent takes the job after the
    # heartbeat timeout and finishes it, without running the first step again.
    wait_for(lambda: _left(f"sleep {marker}") == "", 10, "the lost agent's runs gone")
    task = _ended(server, job_id, 240)
    assert task["job"]["status"] == "done", task
    assert _runs_of(task) == [(0, "step.entry", "done"), (1, "nap.entry", "done"),
                              (2, "step.entry", "done")]
    assert task["runs"][0]["started_at"] == first_started
    words = sorted(d["data"]["word"] for d in task["documents"] if d["coll"] == "test/step@1.0")
    assert words == ["first", "last"]
    texts = [line["text"] for line in task["log"]]
    assert texts.count("step first") == 1, texts
    assert any("finished in an earlier attempt" in text for text in texts), texts


def _ancestors(pid):
    while pid > 1:
        yield pid
        pid = _parent(pid)


def test_a_spread_run_whose_agent_was_killed_runs_on_another(cluster, tmp_path):
    server, agents = cluster
    for name in ("a", "b", "c"):  # one slot each: the driver's agent takes no run
        agents[name] = AgentProcess.start(tmp_path / name, server.url,
                                          code=server.add_device(name, ["lab"]),
                                          extra=("--executor", "process", "--slots", "1"))
    for name in agents:
        wait_for(lambda name=name: server.status(name) == "online", 60, f"{name} online")
    marker = f"8.{uuid.uuid4().int % 1000}"
    job_id = _submit(server, "lev.alice.steps:lone_nap", {"marker": marker}, pool="lab",
                     spread=True)
    sleeping = wait_for(lambda: _left(f"sleep {marker}").split(), 60, "the nap running")
    running = {agent.process.pid: name for name, agent in agents.items()}
    [lost] = [running[pid] for pid in _ancestors(int(sleeping[0])) if pid in running]
    agents[lost].kill()
    wait_for(lambda: _left(f"sleep {marker}") == "", 10, "the lost agent's run gone")
    task = _ended(server, job_id, 180)
    assert task["job"]["status"] == "done", task
    assert _runs_of(task) == [(0, "nap.entry", "done")]


def _outlives(server, agents, tmp_path, restart):
    """A job of three runs goes on to its end, none run twice, across ``restart(down)``
    called while its nap runs, ``down`` while the thing restarted is down."""
    _agent(server, agents, tmp_path, "box")
    marker = f"6.{uuid.uuid4().int % 1000}"
    job_id = _submit(server, STEPS, {"marker": marker}, device="box")
    wait_for(lambda: _left(f"sleep {marker}"), 60, "the nap running")

    def while_down():
        # The nap ends and the driver's next writes find no answer, or a 503: it waits.
        wait_for(lambda: _left(f"sleep {marker}") == "", 30, "the nap ended")
        time.sleep(3)

    restart(while_down)
    task = _ended(server, job_id, 120)
    assert task["job"]["status"] == "done", (task["job"]["error"], [
        line["text"] for line in task["log"]])
    assert [run["status"] for run in task["runs"]] == ["done"] * 3
    words = sorted(d["data"]["word"] for d in task["documents"] if d["coll"] == "test/step@1.0")
    assert words == ["first", "last"]
    texts = [line["text"] for line in task["log"]]
    assert texts.count("step first") == 1 and texts.count("step last") == 1, texts


def test_a_dispatched_job_outlives_a_restart_of_the_server(cluster, tmp_path):
    server, agents = cluster
    _outlives(server, agents, tmp_path, server.restart)


def test_a_dispatched_job_outlives_a_restart_of_postgresql(tmp_path, temporal_server,
                                                           pg_databases):
    """The server's store on a PostgreSQL cluster of the test's own, stopped mid-job and
    started again: the server answers 503 meanwhile, and the driver sends again."""
    pg = PgCluster.start(pg_databases.cluster.bindir)
    server = None
    agents: dict[str, AgentProcess] = {}
    try:
        databases = Databases(pg)
        url = pg.url(databases.create(migrated=True))
        databases.close()
        server = LevServer.start(tmp_path / "server", temporal_server.address, db_url=url)
        with Store(url) as store:
            _published(store, tmp_path)
        _outlives(server, agents, tmp_path, pg.restart)
        assert "503" in server.log.read_text(errors="replace")
    finally:
        for agent in agents.values():
            agent.stop()
        if server is not None:
            server.stop()
        pg.stop()


async def _workflow_status(address, job_id):
    from temporalio.client import Client

    client = await Client.connect(address)
    for _ in range(50):  # the workflow completes just after its activity
        described = await client.get_workflow_handle(f"lev-job-{job_id}").describe()
        if described.status.name != "RUNNING":
            break
        await asyncio.sleep(0.2)
    return described.status.name


def test_a_dispatched_job_outlives_a_restart_of_temporal(tmp_path):
    """Its own Temporal dev server, stopped for a while mid-job and started again on the
    same state: the agent reconnects, and the job and its workflow end as they would."""
    temporal = TemporalServer.start()
    server = agent = None
    try:
        server = LevServer.start(tmp_path / "server", temporal.address)
        with Store(f"sqlite:///{tmp_path / 'server' / 'levrt.db'}") as store:
            _published(store, tmp_path)
        agent = AgentProcess.start(tmp_path / "box", server.url, code=server.add_device("box"),
                                   extra=("--executor", "process"))
        wait_for(lambda: server.status("box") == "online", 60, "box online")
        marker = f"6.{uuid.uuid4().int % 1000}"
        job_id = _submit(server, STEPS, {"marker": marker}, device="box")
        wait_for(lambda: _left(f"sleep {marker}"), 60, "the nap running")
        temporal.restart(down=10)
        task = _ended(server, job_id, 120)
        assert task["job"]["status"] == "done", task
        assert [run["status"] for run in task["runs"]] == ["done"] * 3
        # The workflow saw its activity through too.
        assert asyncio.run(_workflow_status(temporal.address, job_id)) == "COMPLETED"
    finally:
        for each in (agent, server):
            if each is not None:
                each.stop()
        temporal.stop()


def test_a_requeued_job_reuses_its_finished_runs(store, tmp_path):
    """The same without Temporal: a lev run --job killed mid-job, the job queued again, and
    a second lev run --job that redoes only what had not finished."""
    _published(store, tmp_path)
    marker = f"5.{uuid.uuid4().int % 1000}"
    job_id = store.create_job("steps", target="lev.alice.steps:steps", owner="alice",
                              params={"marker": marker}, queued=True)
    home = tmp_path / "driver"
    env = {**os.environ, "LEV_DB_URL": store.url, "LEV_HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "hub" / "alice.steps"),
                                         env.get("PYTHONPATH", "")])
    argv = [sys.executable, "-m", "levrt", "run", "--job", job_id, "--executor", "process",
            "--quiet", "lev.alice.steps:steps"]
    first = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, start_new_session=True)
    wait_for(lambda: _left(f"sleep {marker}"), 60, "the nap running")
    os.killpg(first.pid, 9)
    first.wait()
    wait_for(lambda: _left(f"sleep {marker}") == "", 10, "the first attempt's runs gone")
    assert store.requeue_job(job_id, "its driver was lost")
    assert [run["status"] for run in store.list_runs(job_id)] == ["done", "failed"]
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    runs = store.list_runs(job_id)
    assert [(r["run_id"], r["status"]) for r in runs] == [(0, "done"), (1, "done"), (2, "done")]
    texts = [row["text"] for row in store.get_logs(job_id)]
    assert texts.count("step first") == 1 and texts.count("step last") == 1


def test_where_the_code_came_from_is_not_what_a_run_does():
    from levrt.executors import RunSpec

    def spec(path):
        payload = {"v": 1, "entry": {"name": "entry", "source": "def entry(): pass\n",
                                     "file": path}, "modules": {}, "args": [],
                   "kwargs": {"file": path}}
        return RunSpec(job_id="j", run_id=0, name="entry", image="i", payload=payload)

    # Unpacked on two agents: the same run. A value the run is given is what it does.
    one, two = spec("/a/lev/x.py"), spec("/b/lev/x.py")
    one.payload["kwargs"] = two.payload["kwargs"] = {"file": "same"}
    assert one.fingerprint() == two.fingerprint()
    two.payload["kwargs"] = {"file": "other"}
    assert one.fingerprint() != two.fingerprint()


BANNER = ("import socket, sys\n"
          "server = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
          "while True:\n"
          "    conn, _ = server.accept()\n"
          "    conn.sendall(f'SSH-2.0-{sys.argv[2]}\\r\\n'.encode())\n"
          "    conn.close()\n")


def test_each_task_runs_where_it_was_sent(lab, tmp_path, temporal_server):  # noqa: F811
    """Two agents, each in a network namespace of its own with a service on its own
    127.0.0.1 that only it reaches: a probe sent to each device finds that device's, and a
    fan-out of probes spread over their pool finds both."""
    one, two = lab.add(), lab.add()
    temporal = helpers_netns.Relay(lab.hub, temporal_server.address)
    server = None
    agents: dict[str, AgentProcess] = {}
    services = []
    try:
        server = LevServer.start(tmp_path / "server", temporal.address, ip=lab.hub)
        with Store(f"sqlite:///{tmp_path / 'server' / 'levrt.db'}") as store:
            _published(store, tmp_path)
        port = free_port()  # any port: each namespace's 127.0.0.1 is its own and bare
        for name, netns in (("one", one), ("two", two)):
            services.append(subprocess.Popen(netns.argv(sys.executable, "-c", BANNER,
                                                        str(port), name)))
            agents[name] = AgentProcess.start(tmp_path / name, server.url,
                                              code=server.add_device(name, ["lab"]),
                                              netns=netns.name,
                                              extra=("--executor", "process"))
        for name in agents:
            wait_for(lambda name=name: server.status(name) == "online", 60, f"{name} online")
        for name in agents:
            job_id = _submit(server, "lev.alice.steps:probe", {"port": str(port)}, device=name)
            task = _ended(server, job_id)
            assert task["job"]["status"] == "done", task
            [found] = [d["data"] for d in task["documents"] if d["coll"] == "test/probe@1.0"]
            assert found == {"banner": f"SSH-2.0-{name}"}, found
        # Spread: the job's driver on one agent of the pool, its six runs on both.
        job_id = _submit(server, "lev.alice.steps:fan", {"port": str(port)}, pool="lab",
                         spread=True)
        task = _ended(server, job_id, 180)
        assert task["job"]["status"] == "done", task
        banners = task["job"]["result"]
        assert len(banners) == 6 and set(banners) == {"SSH-2.0-one", "SSH-2.0-two"}, banners
        assert "temporal" in task["log"][0]["text"]
        assert [run["status"] for run in task["runs"]] == ["done"] * 6
    finally:
        for agent in agents.values():
            agent.stop()
        for service in services:
            service.kill()
            service.wait()
        if server is not None:
            server.stop()
        temporal.close()
