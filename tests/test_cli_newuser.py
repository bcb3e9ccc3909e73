"""What a new user tripped on when following the docs, through the real ``lev`` command: a
task cancelled from the CLI, short task ids, ``--spread`` without a pool, where a dispatched
task was sent, ``lev schedule add --interval``, and row tables that keep every column on a
narrow terminal or in a pipe."""

import io
import json
import re
import sys
from datetime import datetime, timedelta, timezone

import pytest
import test_tasks
from helpers_hub import PASSWORD, TestClient, serve_in_thread
from rich.console import Console
from test_tasks import _csrf, lev

from levrt import rows
from levrt._cli_rows import print_diff, print_tables
from levrt.server import Settings, create_app

# The fixtures of test_tasks: alice's, bob's and root's tokens, and lev.alice.noop published.
tokens = test_tasks.tokens
noop = test_tasks.noop
hub = test_tasks.hub
web = test_tasks.web

PORT_OS = {"host": "127.0.0.1", "os": ["Linux 5.0 - 5.2", "Linux 3.1", "Linux 3.2"],
           "ports": [{"port": 22, "protocol": "tcp", "state": "open", "service": "ssh",
                      "product": "OpenSSH", "version": "9.2p1 Debian 2"},
                     {"port": 80, "protocol": "tcp", "state": "open", "service": "http",
                      "product": "SimpleHTTPServer", "version": "0.6"}]}
COLUMNS = ["host", "port", "protocol", "state", "service", "product", "version", "os"]


def _status(capsys, task_id):
    code, out, err = lev(capsys, "task", "show", task_id, "--json")
    assert code == 0, err
    return json.loads(out)["job"]["status"]


def test_a_hub_package_that_is_not_there_says_where_it_must_be(capsys):
    code, out, err = lev(capsys, "run", "lev.nobody.scan:ports", "--ip", "127.0.0.1")
    assert code == 2 and out == ""
    assert err == ("lev: error: cannot import 'lev.nobody.scan': No module named 'lev' (a hub "
                   "package: publish it to the server that runs the task, or lev install it "
                   "to run it here)\n")
    # A module it imports that is missing is the package's own error: no hint.
    code, out, err = lev(capsys, "run", "nosuch.mod:f")
    assert err == "lev: error: cannot import 'nosuch.mod': No module named 'nosuch'\n"


def test_lev_task_cancel_stops_a_running_task(capsys, hub, noop):
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:nap", "--param",
                         "marker=30")
    assert code == 0, err
    task_id = out.split()[1]
    test_tasks.wait_for(lambda: _status(capsys, task_id) == "running")
    code, out, err = lev(capsys, "task", "cancel", task_id)
    assert code == 0, err
    assert out in (f"task {task_id} cancelled\n",
                   f"task {task_id} is being cancelled (lev task show {task_id})\n")
    assert test_tasks.wait_for(lambda: _status(capsys, task_id) == "cancelled")
    code, out, err = lev(capsys, "task", "cancel", task_id)
    assert code == 1 and err == f"lev: error: task {task_id!r} has already ended (cancelled)\n"


def test_a_short_task_id_says_to_give_the_whole_id(capsys, hub, noop):
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:hello", "--follow")
    assert code == 0, err
    task_id = out.split()[1]
    for action in ("show", "logs", "cancel"):
        code, out, err = lev(capsys, "task", action, task_id[:4])
        assert code == 1 and out == ""
        assert err == (f"lev: error: no task {task_id[:4]!r}: give the task's whole id (12 "
                       "characters; lev task list shows them)\n")
    # A whole id the server does not know is the server's word alone.
    code, _, err = lev(capsys, "task", "show", "ffffffffffff")
    assert code == 1 and err == "lev: error: no task 'ffffffffffff'\n"


def test_spread_without_a_pool_says_to_give_one(capsys, hub, noop):
    code, out, err = lev(capsys, "task", "submit", "lev.alice.noop:hello", "--spread")
    assert code == 2 and out == ""
    assert err == ("lev: error: --spread needs --pool NAME: the pool whose agents run the "
                   "job's runs\n")


def test_lev_task_show_says_where_a_dispatched_task_was_sent(capsys, hub, store):
    sent = store.create_job("scan", target="lev.alice.noop:hello", owner="alice",
                            placement="pool:dmz", driver="scanner-host:4242:99")
    store.finish_job(sent, "done")
    code, out, err = lev(capsys, "task", "show", sent)
    assert code == 0, err
    assert "sent to pool dmz, ran on host scanner-host\n" in out
    here = store.create_job("scan", target="lev.alice.noop:hello", owner="alice")
    store.finish_job(here, "done")
    code, out, err = lev(capsys, "task", "show", here)
    assert code == 0 and "sent to" not in out


def test_the_task_page_says_where_a_dispatched_task_was_sent(store, web):
    sent = store.create_job("scan", target="lev.alice.noop:hello", owner="carol",
                            placement="device:scanner-1", executor="process")
    store.finish_job(sent, "done")
    page = web.get(f"/tasks/{sent}").text
    assert ('<dd id="executor-line">device <strong>scanner-1</strong>, tools as '
            '<span id="executor">process</span></dd>') in page
    here = store.create_job("scan", target="lev.alice.noop:hello", owner="carol")
    store.finish_job(here, "done")
    assert '<dd id="executor-line">this server\'s runner</dd>' in web.get(f"/tasks/{here}").text


@pytest.mark.parametrize("allowed", [False, True])
def test_the_devices_page_claims_no_executor_it_lacks(store, monkeypatch, allowed):
    # No engine answers: tools run as processes only when the server may run them so.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    store.create_user("dave", PASSWORD)
    settings = Settings(db_url=store.url, executor="auto", allow_host_execution=allowed)
    with TestClient(create_app(settings, store=store), follow_redirects=False) as client:
        answer = client.post("/login", data={"user": "dave", "password": PASSWORD,
                                             "csrf_token": _csrf(client.get("/login"))})
        assert answer.status_code == 303, answer.text
        page = client.get("/devices").text
    said = "No container engine: no images; tools run as processes." if allowed else \
        "No container engine: no images."
    assert f'<p class="meta" id="local-images">{said}</p>' in page


def test_schedule_add_takes_interval_and_checks_its_device(store, tokens, noop, capsys,
                                                           monkeypatch):
    with serve_in_thread(store) as url:
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        assert lev(capsys, "login", url, "--user", "alice", "--password-stdin")[0] == 0
        code, out, err = lev(capsys, "schedule", "add", "often", "lev.alice.noop:hello",
                             "--interval", "120")
        assert code == 0, err
        assert "schedule often added" in out and "every 120 s" in out
        code, out, err = lev(capsys, "schedule", "add", "far", "lev.alice.noop:hello",
                             "--interval", "120", "--device", "box")
        assert code != 0 and len(err.strip().splitlines()) == 1, err
        assert "you have no device 'box'" in err
        code, out, err = lev(capsys, "schedule", "add", "both", "lev.alice.noop:hello",
                             "--every", "120", "--cron", "0 3 * * *")
        assert code == 2 and "either --cron EXPR or --every SECONDS" in err


def test_device_list_shows_no_load_for_an_offline_agent(capsys, hub, store):
    import levrt.store._devices as devices

    here, _ = store.enrol_device(store.add_device("alice", "here", ["dmz"])["code"])
    store.device_seen(here["id"], running=1, slots=2)
    lost, _ = store.enrol_device(store.add_device("alice", "lost", ["dmz"])["code"])
    with pytest.MonkeyPatch.context() as patch:
        # Its last heartbeat a minute ago, with a run going then: offline now.
        patch.setattr(devices, "now",
                      lambda: datetime.now(timezone.utc) - timedelta(minutes=1))
        store.device_seen(lost["id"], running=1, slots=2)
    code, out, err = lev(capsys, "device", "list")
    assert code == 0, err
    found = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert found["here"][2] == "online" and "1/2" in found["here"]
    assert found["lost"][2] == "offline" and "1/2" not in found["lost"]


def test_lev_agent_without_its_extra_says_how_to_install_it(capsys, monkeypatch):
    # temporalio missing, as where levrt was installed without the agent extra.
    for name in [name for name in sys.modules if name.startswith("levrt.agent")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "temporalio", None)
    code, out, err = lev(capsys, "agent", "--server", "http://127.0.0.1:9")
    assert code == 1 and out == ""
    assert err == ("lev: error: lev agent needs levrt's agent extra (temporalio is missing): "
                   "pip install '.[agent]' in the clone levrt was installed from\n")


def _headers(text: str) -> list[str]:
    """The column heads of the first table in ``text``, without one the right edge cut."""
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    # The last piece is empty after the closing rule, or a head cut short: drop it either way.
    return [cell.strip() for cell in header[1:].split("┃")[:-1]]


@pytest.mark.parametrize("width", [60, 80])
def test_a_narrow_terminal_keeps_every_column_and_titles_whole(width):
    table = rows.tables([{"coll": "szczecin/nmap.port_os@1.0", "run_id": 1, "data": PORT_OS}],
                        {1: ["host", "port", "protocol"]})[0]
    alive = rows.tables([{"coll": "szczecin/nmap.alive@1.0", "run_id": 0,
                          "data": {"alive": ["127.0.0.1"]}}], {0: ["alive"]})[0]
    console = Console(width=width, record=True, color_system=None)
    print_tables(console, [alive, table])
    text = console.export_text()
    # A title is one line, even over a one-column table narrower than it.
    assert "szczecin/nmap.alive@1.0: 1 row; keys alive\n" in text
    assert "szczecin/nmap.port_os@1.0: 2 rows; keys host, port, protocol\n" in text
    # No column squeezed to nothing: each shows its name, or at least 4 letters of it and …;
    # what does not fit is cut at the right edge, never taken out of the middle.
    shown = _headers(text.split("szczecin/nmap.port_os@1.0")[1])
    assert len(shown) >= 5
    for column, cell in zip(COLUMNS, shown, strict=False):
        assert cell == column or (cell.endswith("…") and column.startswith(cell[:-1])
                                  and len(cell) >= 5), (column, cell)


def test_piped_show_table_and_diff_print_every_column_whole(capsys, store):
    jobs = []
    for ports in (PORT_OS["ports"][:1], PORT_OS["ports"]):
        job = store.create_job("server_port", owner=None)
        store.create_run(job, 1, name="port_os.entry", image=None, schema=None,
                         coll="nmap.port_os", spec={"keys": ["host", "port", "protocol"]})
        store.merge_document("nmap.port_os", job, 1, {**PORT_OS, "ports": ports})
        store.finish_job(job, "done")
        jobs.append(job)
    code, out, err = lev(capsys, "show", jobs[1], "--table")
    assert code == 0, err
    # capsys is no terminal: the table is as wide as it needs, nothing cut or cropped.
    assert _headers(out) == COLUMNS
    assert re.search(r"│ 127\.0\.0\.1 +│ 80 +│ tcp +│ open +│ http +│ SimpleHTTPServer +│ 0\.6 +│"
                     r" Linux 5\.0 - 5\.2, Linux … │", out), out
    code, out, err = lev(capsys, "show", jobs[1], "--csv", "--coll", "port_os")
    assert code == 1 and err == ("lev: error: --coll 'port_os': the job has no such collection "
                                 "(it has: nmap.port_os)\n")
    code, out, err = lev(capsys, "diff", jobs[0], jobs[1])
    assert code == 0, err
    assert "nmap.port_os: 1 new, 0 gone, 0 changed, 1 same\n" in out
    assert _headers(out) == COLUMNS
    assert "│ + 127.0.0.1 │ 80 " in out


def test_diff_titles_are_lines_of_their_own():
    # Over a table narrower than it, a rich title would wrap to the table's width.
    before = rows.tables([{"coll": "c", "run_id": 1, "data": {"a": 1}}])
    after = rows.tables([{"coll": "c", "run_id": 1, "data": {"a": 2}}])
    console = Console(width=40, record=True, color_system=None)
    print_diff(console, rows.diff(before, after))
    assert console.export_text().startswith("c: 1 new, 1 gone, 0 changed, 0 same\n")
