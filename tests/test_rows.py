"""Results as rows (levrt.rows): flattening, keys declared by tools, diff and assets; their
API routes, pages and commands, on the nmap example run for real against services of the
quick start's demo (examples/demo.py) on 127.0.0.1; and the demo itself."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers_hub import PASSWORD, TestClient
from test_examples import _purge_lev_modules, nmap_installed, nmap_test  # noqa: F401

import levrt
from levrt import Cr, annot, ctx, remote, rows
from levrt._cli import cli_main
from levrt.server import Settings, create_app

ROOT = Path(__file__).resolve().parent.parent
NMAP_PACKAGE = ROOT / "examples" / "lev-hub" / "szczecin.nmap_python"
PORT_OS = "szczecin/nmap.port_os@1.0"

HOST = {"host": "127.0.0.1", "os": ["Linux 5.x", "Linux 4.x"], "ports": [
    {"port": 22, "protocol": "tcp", "state": "open", "service": "ssh", "product": "OpenSSH",
     "version": "9.2"},
    {"port": 80, "protocol": "tcp", "state": "open", "service": "http", "product": "",
     "version": ""}]}


def load_demo():
    spec = importlib.util.spec_from_file_location("levrt_demo", ROOT / "examples" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- flattening ------------------------------------------------------------------------


def test_a_host_with_its_ports_is_a_row_per_port_with_the_hosts_fields():
    assert rows.flatten(HOST) == [
        {"host": "127.0.0.1", "os": ["Linux 5.x", "Linux 4.x"], "port": 22, "protocol": "tcp",
         "state": "open", "service": "ssh", "product": "OpenSSH", "version": "9.2"},
        {"host": "127.0.0.1", "os": ["Linux 5.x", "Linux 4.x"], "port": 80, "protocol": "tcp",
         "state": "open", "service": "http", "product": "", "version": ""}]
    # No port: the host is still a row.
    assert rows.flatten({"host": "h", "ports": [], "os": []}) == [{"host": "h"}]


def test_flattening_rules_lists_objects_and_clashing_names():
    # A record that is only a list of values: a row per value.
    assert rows.flatten({"alive": ["a", "b"]}) == [{"alive": "a"}, {"alive": "b"}]
    # Objects are part of their record, with dotted names; lists of records go deeper.
    assert rows.flatten({"a": {"b": 1, "c": [{"d": 2}, {"d": 3}]}}) == [
        {"a.b": 1, "d": 2}, {"a.b": 1, "d": 3}]
    # A name an outer record has already is prefixed with its list's name, then the path.
    assert rows.flatten({"host": "h", "svc": [{"host": "x", "items": [{"host": "y"}]}]}) == [
        {"host": "h", "svc.host": "x", "items.host": "y"}]
    # Two lists of records: the rows of each, one after the other, never their product.
    assert rows.flatten({"n": 1, "a": [{"x": 1}], "b": [{"y": 2}, {"y": 3}]}) == [
        {"n": 1, "x": 1}, {"n": 1, "y": 2}, {"n": 1, "y": 3}]
    # A key holding a dot is a name like any other.
    assert rows.flatten({"a.b": ["v"], "c": [{"d": 1}]}) == [{"a.b": ["v"], "d": 1}]
    assert rows.flatten(["not", "a", "dict"]) == [{"value": ["not", "a", "dict"]}]


def test_tables_take_their_runs_keys_and_put_lists_last():
    documents = [{"coll": "nmap.port_os", "run_id": 1, "data": HOST},
                 {"coll": "_", "run_id": None, "data": {"hosts": ["127.0.0.1"], "n": 2}}]
    job, ports = rows.tables(documents, {1: ["host", "port"]})
    assert (job.coll, job.keys, job.rows) == ("_", [], [{"hosts": "127.0.0.1", "n": 2}])
    assert ports.keys == ["host", "port"]
    assert ports.columns == ["host", "port", "protocol", "state", "service", "product",
                             "version", "os"]


def test_csv_of_one_table_and_of_several():
    table = rows.tables([{"coll": "c", "run_id": 1, "data": HOST}])[0]
    parsed = list(csv.reader(io.StringIO(rows.to_csv([table]))))
    assert parsed[0] == table.columns
    assert parsed[1] == ["127.0.0.1", "22", "tcp", "open", "ssh", "OpenSSH", "9.2",
                         "Linux 5.x, Linux 4.x"]
    several = rows.tables([{"coll": "c", "run_id": 1, "data": HOST},
                           {"coll": "d", "run_id": 2, "data": {"alive": ["a"]}}])
    parsed = list(csv.reader(io.StringIO(rows.to_csv(several))))
    assert parsed[0][0] == "collection" and parsed[-1][0] == "d" and "alive" in parsed[0]
    assert rows.cell_text({"a": b"\x00"}) == '{"a": {"$bytes": "AA=="}}'
    assert (rows.cell_text(None), rows.cell_text(True), rows.cell_text([1, "a"])) == (
        "", "true", "1, a")


def test_diff_by_keys_new_gone_changed_and_same():
    before = rows.tables([{"coll": "c", "run_id": 1, "data": HOST}], {1: ["host", "port"]})
    later = json.loads(json.dumps(HOST))
    later["ports"][1]["product"] = "nginx"      # changed
    del later["ports"][0]                       # gone: 22
    later["ports"].append({"port": 443, "protocol": "tcp", "state": "open",  # new
                           "service": "https", "product": "", "version": ""})
    after = rows.tables([{"coll": "c", "run_id": 7, "data": later}], {7: ["host", "port"]})
    (found,) = rows.diff(before, after)
    assert [row["port"] for row in found.new] == [443]
    assert [row["port"] for row in found.gone] == [22]
    assert [(c.key, c.fields) for c in found.changed] == [
        ({"host": "127.0.0.1", "port": 80}, {"product": ["", "nginx"]})]
    assert found.same == 0
    assert rows.diff(after, after)[0].to_json()["same"] == 2
    # A list in a cell is the same in another order (nmap's OS guesses of equal accuracy).
    shuffled = json.loads(json.dumps(HOST))
    shuffled["os"].reverse()
    assert rows.diff(before, rows.tables([{"coll": "c", "run_id": 1, "data": shuffled}],
                                         {1: ["host", "port"]}))[0].same == 2
    # Without keys a row is its whole self: a changed value is one gone and one new.
    (whole,) = rows.diff(rows.tables([{"coll": "c", "run_id": 1, "data": HOST}]),
                         rows.tables([{"coll": "c", "run_id": 1, "data": later}]))
    assert (len(whole.new), len(whole.gone), whole.changed) == (2, 2, [])


def test_assets_keep_the_latest_row_with_first_and_last_seen():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = rows.tables([{"coll": "c", "run_id": 1, "data": HOST}], {1: ["host", "port"]})
    later = json.loads(json.dumps(HOST))
    later["ports"][0]["version"] = "9.3"
    del later["ports"][1]
    second = rows.tables([{"coll": "c", "run_id": 1, "data": later}], {1: ["host", "port"]})
    found = rows.assets([("b", t0 + timedelta(days=1), second), ("a", t0, first)])
    by_port = {asset.row["port"]: asset for asset in found}
    assert by_port[22].row["version"] == "9.3" and by_port[22].jobs == 2
    assert (by_port[22].first_seen, by_port[22].last_seen) == (t0, t0 + timedelta(days=1))
    assert (by_port[22].first_job, by_port[22].last_job) == ("a", "b")
    assert (by_port[80].last_job, by_port[80].jobs) == ("a", 1)
    assert found[0].row["port"] == 22  # newest seen first
    # In any order of jobs, the row of the job that ended last wins.
    assert rows.assets([("a", t0, first), ("b", t0 + timedelta(days=1), second)])[0].row[
        "version"] == "9.3"


# -- keys declared by tools ------------------------------------------------------------


@annot.meta(desc="a keyed tool", keys=["host", "port"])
def keyed(host: str) -> Cr:
    @remote
    def entry():
        ctx.set(host=host, ports=[{"port": 1, "state": "open"}, {"port": 2, "state": "open"}])
    return Cr("localhost/test:latest", "test/keyed@1.0", entry=entry())


def test_keys_of_annot_meta_or_cr_are_stored_with_the_run(store):
    assert keyed("h").keys == ["host", "port"]
    assert Cr("localhost/test:latest", keys=["a"]).keys == ["a"]
    assert Cr("localhost/test:latest").keys == []
    assert annot.manifest_entry(keyed)["keys"] == ["host", "port"]
    with pytest.raises(TypeError, match="keys must be a list"):
        annot.meta(keys="host")
    with pytest.raises(ValueError, match="name a column twice"):
        Cr("localhost/test:latest", keys=["a", "a"])
    with pytest.raises(TypeError, match="not with an export list"):
        annot.meta([keyed], keys=["host"])

    async def flow():
        await (await keyed("10.0.0.1")).get()
        await (await keyed("10.0.0.2")).get()

    levrt.run(flow())
    (job,) = store.list_jobs()
    assert [run["spec"]["keys"] for run in store.list_runs(job["id"])] == [["host", "port"]] * 2
    (table,) = rows.job_tables(store, job["id"])
    assert table.keys == ["host", "port"] and len(table.rows) == 4
    owned = store.owned_results(None)
    assert [job_id for job_id, _ in owned["jobs"]] == [job["id"]]
    assert len(owned["documents"]) == 2 and store.owned_results("nobody")["jobs"] == []
    assert len(rows.asset_rows(store, None)) == 4

    # The server's index reads only what ended since: a third job adds its rows.
    index = rows.AssetIndex(None)
    assert len(index.update(store)) == 4

    async def again():
        await (await keyed("10.0.0.3")).get()

    levrt.run(again())
    found = index.update(store)
    assert len(found) == 6 and {a.row["host"] for a in found[:2]} == {"10.0.0.3"}
    assert index.update(store) == found and found[0].jobs == 1


# -- the nmap example, for real, through the API, the pages and the CLI -----------------


@pytest.fixture
def nmap_package(monkeypatch):
    monkeypatch.setenv("LEV_EXECUTOR", "process")
    _purge_lev_modules()
    sys.path.insert(0, str(NMAP_PACKAGE))
    try:
        yield
    finally:
        sys.path.remove(str(NMAP_PACKAGE))
        _purge_lev_modules()


def login(client, name):
    client.cookies.clear()
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = client.post("/login", data={"user": name, "password": PASSWORD,
                                         "csrf_token": csrf})
    assert answer.status_code == 303, answer.text


@nmap_test
def test_rows_csv_diff_and_assets_of_the_nmap_example(store, nmap_package, capsys):
    from lev.szczecin.nmap_python import server_port

    demo = load_demo()
    with demo.services() as (ports, third):
        levrt.run(server_port("127.0.0.1", ports))
        added = demo.Banner(third, demo.SMTP_BANNER)
        try:
            levrt.run(server_port("127.0.0.1", ports))
        finally:
            added.close()
    second, first = (job["id"] for job in store.list_jobs())
    base = int(ports.split("-")[0])

    store.create_user("root", PASSWORD, is_admin=True)
    store.create_user("eve", PASSWORD)
    token = store.create_token("root", "test")["token"]
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(Settings(db_url=store.url), store=store),
                    follow_redirects=False) as client:
        answer = client.get(f"/api/tasks/{second}/rows", headers=auth)
        assert answer.status_code == 200, answer.text
        tables = {table["coll"]: table for table in answer.json()["tables"]}
        ports_table = tables[PORT_OS]
        assert ports_table["keys"] == ["host", "port", "protocol"]
        assert ports_table["label"] == "nmap · port_os"
        assert ports_table["columns"][:7] == ["host", "port", "protocol", "state", "service",
                                              "product", "version"]
        found = {row["port"]: row for row in ports_table["rows"]}
        assert set(found) == {base, base + 1, base + 2}
        assert (found[base + 1]["service"], found[base + 1]["product"]) == ("ssh", "OpenSSH")
        assert found[base]["service"] == "http" and found[base + 2]["service"] == "smtp"
        assert tables["szczecin/nmap.alive@1.0"]["rows"] == [{"alive": "127.0.0.1"}]

        answer = client.get(f"/api/tasks/{second}/rows", headers=auth,
                            params={"format": "csv", "coll": PORT_OS})
        assert answer.headers["content-type"].startswith("text/csv")
        parsed = list(csv.DictReader(io.StringIO(answer.text)))
        assert {(r["host"], r["port"], r["service"]) for r in parsed} == {
            ("127.0.0.1", str(base), "http"), ("127.0.0.1", str(base + 1), "ssh"),
            ("127.0.0.1", str(base + 2), "smtp")}

        # The previous run of the same workflow (levrt.run jobs have no target: by its name)
        # and parameters is the default to compare with.
        answer = client.get(f"/api/tasks/{second}/diff", headers=auth)
        assert answer.status_code == 200, answer.text
        assert answer.json() == client.get(f"/api/tasks/{second}/diff", headers=auth,
                                           params={"with": first}).json()
        changes = {table["coll"]: table for table in answer.json()["tables"]}
        port_changes = changes[PORT_OS]
        assert [(r["port"], r["service"]) for r in port_changes["new"]] == [(base + 2, "smtp")]
        # nmap's OS guesses may differ from one scan to the next: only they may change.
        assert port_changes["gone"] == []
        assert port_changes["same"] + len(port_changes["changed"]) == 2
        assert all(set(c["fields"]) == {"os"} for c in port_changes["changed"])
        assert [r["port"] for r in changes["_"]["new"]] == [base + 2]
        assert client.get(f"/api/tasks/{second}/diff", headers=auth,
                          params={"with": "zzzzzzzz"}).status_code == 404

        answer = client.get("/api/assets", headers=auth, params={"coll": PORT_OS})
        assets = {a["row"]["port"]: a for a in answer.json()}
        assert set(assets) == {base, base + 1, base + 2}
        assert (assets[base]["first_job"], assets[base]["last_job"], assets[base]["jobs"]) == (
            first, second, 2)
        assert (assets[base + 2]["first_job"], assets[base + 2]["jobs"]) == (second, 1)
        smtp = client.get("/api/assets", headers=auth, params={"q": "SMTP"}).json()
        assert {a["row"]["port"] for a in smtp} == {base + 2}

        # The pages: the task page loads the rows fragment; compare; assets.
        assert client.get(f"/api/tasks/{second}/rows").status_code == 401
        login(client, "root")
        page = client.get(f"/tasks/{second}")
        assert f'data-src="/tasks/{second}/rows"' in page.text
        fragment = client.get(f"/tasks/{second}/rows").text
        assert "keys host, port, protocol" in fragment and f"<td data-sort=\"{base + 2}\">" \
            in fragment
        assert f"/api/tasks/{second}/rows?format=csv&amp;coll=" in fragment
        # Cookies do for the export links.
        assert client.get(f"/api/tasks/{second}/rows").status_code == 200
        diff_page = client.get(f"/tasks/{second}/diff", params={"with": first}).text
        assert "1 new" in diff_page and f'data-sort="{base + 2}"' in diff_page
        typed = client.get(f"/tasks/{second}/diff", params={"with": second, "other": first[:8]})
        assert "1 new" in typed.text and f'<option value="{first}" selected>' in typed.text
        assets_page = client.get("/assets", params={"q": "ssh"}).text
        assert "OpenSSH" in assets_page and "SimpleHTTPServer" not in assets_page
        # Another user sees none of it.
        login(client, "eve")
        assert client.get(f"/tasks/{second}/rows").status_code == 404
        assert client.get(f"/tasks/{second}/diff", params={"with": first}).status_code == 404
        assert "No assets yet" in client.get("/assets").text

    capsys.readouterr()
    assert cli_main(["show", second, "--csv", "--coll", PORT_OS]) == 0
    shown = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {row["port"] for row in shown} == {str(base), str(base + 1), str(base + 2)}
    assert cli_main(["show", second, "--table"]) == 0
    assert "keys host, port, protocol" in capsys.readouterr().out
    assert cli_main(["diff", first, second, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["with"], answer["task"]) == (first, second)
    new = next(t for t in answer["tables"] if t["coll"] == PORT_OS)["new"]
    assert [row["port"] for row in new] == [base + 2]
    assert cli_main(["diff", first, second]) == 0
    assert f"{PORT_OS}: 1 new, 0 gone, " in capsys.readouterr().out
    assert cli_main(["show", second, "--csv", "--coll", "nope"]) == 1
    assert "no such collection" in capsys.readouterr().err


@nmap_test
def test_the_quick_start_demo_finds_services_and_the_new_one(tmp_path):
    env = {**os.environ, "LEV_HOME": str(tmp_path / "home"),
           "COLUMNS": "200"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr  # lev run's live display is on stderr
    assert re.search(r":\d+/tcp open ssh OpenSSH 9\.2p1", out), out
    assert re.search(r":\d+/tcp open http ", out), out
    assert "lev show" in out and "3 rows; keys host, port, protocol" in out
    assert f"{PORT_OS}: 1 new, 0 gone, " in out and "job document (_): 1 new, 0 gone, " in out
    assert "smtp" in out.split("what changed")[1]
