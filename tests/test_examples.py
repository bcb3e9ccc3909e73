"""The example hub packages under examples/lev-hub, run for real with the process executor.

Every scan here targets 127.0.0.1 or ::1 and nothing else. A listener started by the tests on a
port of nmap's default top-1000 list gives the scans something to find; one on ::1 (any free
port, scanned by number) the IPv6 scans.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import levrt
from levrt.store import Store

HUB = Path(__file__).resolve().parent.parent / "examples" / "lev-hub"
PACKAGES = ("szczecin.nmap_python", "szczecin.lan_audit", "szczecin.alive")
TARGET = "127.0.0.1"
TARGET6 = "::1"
# A name under the reserved .invalid domain (RFC 6761): it never resolves.
UNRESOLVABLE = "no-such-host.invalid"

# Ports of nmap's default top-1000 list, so that a scan with default arguments finds the listener.
CANDIDATE_PORTS = (8080, 8888, 8000, 9090, 8443, 3000, 5000, 8081)
# A banner nmap's version probes hard-match: -sV stops at its first probe (a scan takes about a
# second instead of several) and reports a product and version, so their parsing is tested too.
BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"

SCHEMA_RAW = "szczecin/nmap.raw@1.0"
SCHEMA_ALIVE = "szczecin/nmap.alive@1.0"
SCHEMA_PORT_OS = "szczecin/nmap.port_os@1.0"

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

# Without nmap these tests are skipped on a developer's machine; under CI the skip is lifted so
# that the `nmap_installed` fixture fails them: a runner without nmap must not pass silently.
needs_nmap = pytest.mark.skipif(
    shutil.which("nmap") is None and not IN_CI,
    reason="nmap is not installed (apt-get install nmap)",
)


def nmap_test(fn):
    return pytest.mark.nmap(needs_nmap(pytest.mark.usefixtures("nmap_installed")(fn)))


@pytest.fixture
def nmap_installed():
    if shutil.which("nmap") is None:
        pytest.fail("CI is set but nmap is not on PATH: install it (apt-get install nmap)")


def _purge_lev_modules():
    for name in list(sys.modules):
        if name == "lev" or name.startswith("lev."):
            del sys.modules[name]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The three example packages importable as `lev.szczecin.*`, and a store of this test's own."""
    monkeypatch.setenv("LEV_HOME", str(tmp_path / "levhome"))
    monkeypatch.setenv("LEV_EXECUTOR", "process")
    monkeypatch.delenv("LEV_DB_URL", raising=False)
    _purge_lev_modules()
    paths = [str(HUB / package) for package in PACKAGES]
    sys.path[:0] = paths
    try:
        yield
    finally:
        for path in paths:
            sys.path.remove(path)
        # Later tests must not see these packages through modules cached here.
        _purge_lev_modules()


class BannerListener:
    """A TCP server on a loopback address that greets every connection with BANNER."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.port = sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue  # wake up now and then to notice close()
            except OSError:
                return
            threading.Thread(target=self._greet, args=(conn,), daemon=True).start()

    @staticmethod
    def _greet(conn: socket.socket):
        with conn:
            try:
                conn.settimeout(2)
                conn.sendall(BANNER)
                conn.recv(1024)  # wait for the client to speak or hang up before closing
            except OSError:
                pass  # scanners reset connections; nothing to do about it

    def close(self):
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)


def banner_listener(family: socket.AddressFamily, address: str,
                    ports: tuple[int, ...]) -> BannerListener | None:
    """A BannerListener on the first of ``ports`` free on ``address``, or None."""
    for port in ports:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        sock.listen(32)
        sock.settimeout(0.2)
        return BannerListener(sock)
    return None


@pytest.fixture(scope="module")
def listener():
    server = banner_listener(socket.AF_INET, TARGET, CANDIDATE_PORTS)
    if server is None:
        pytest.skip(f"none of the ports {CANDIDATE_PORTS} is free on {TARGET}")
    yield server
    server.close()


@pytest.fixture(scope="module")
def listener6():
    """A BannerListener on ::1, on a port the kernel picks (IPv6 scans name their ports)."""
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    try:
        server = banner_listener(socket.AF_INET6, TARGET6, (0,))
    except OSError as exc:  # the address family itself is missing
        pytest.skip(f"no IPv6 socket: {exc}")
    if server is None:
        pytest.skip(f"{TARGET6} is not configured on this machine")
    yield server
    server.close()


def free_port() -> int:
    """A port nothing listens on right now (nmap reports it closed)."""
    with socket.socket() as sock:
        sock.bind((TARGET, 0))
        return sock.getsockname()[1]


def run_doc(cr) -> dict:
    """Run one Cr as a job and return what its entry stored."""

    async def one_run():
        doc = await cr
        return await doc.get()

    return levrt.run(one_run())


def only_job(store: Store) -> dict:
    (job,) = store.list_jobs()
    return job


def docs_by_coll(store: Store, job_id: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for doc in store.list_documents(job_id):
        found.setdefault(doc["coll"], []).append(doc)
    return found


def port_entry(ports: list[dict], number: int) -> dict:
    matches = [p for p in ports if p["port"] == number]
    assert len(matches) == 1, ports
    return matches[0]


def assert_listener_port(entry: dict, listener: BannerListener):
    assert entry["port"] == listener.port
    assert entry["protocol"] == "tcp"
    assert entry["state"] == "open"
    assert entry["service"] == "ssh"
    assert entry["product"] == "OpenSSH"
    assert entry["version"].startswith("9.2p1")


# -- the nmap_python package: workflows end to end -------------------------------------------


@nmap_test
def test_server_port_end_to_end_with_default_ports(hub, listener):
    from lev.szczecin.nmap_python import server_port

    hosts = levrt.run(server_port(TARGET))

    assert [host["host"] for host in hosts] == [TARGET]
    assert_listener_port(port_entry(hosts[0]["ports"], listener.port), listener)
    assert all(isinstance(name, str) for name in hosts[0]["os"])

    with Store.open() as store:
        job = only_job(store)
        assert (job["name"], job["status"], job["error"]) == ("server_port", "done", None)
        runs = store.list_runs(job["id"])
        assert [(r["schema"], r["status"], r["exit_code"]) for r in runs] == [
            (SCHEMA_ALIVE, "done", 0),
            (SCHEMA_PORT_OS, "done", 0),
        ]
        assert [r["image"] for r in runs] == ["localhost/lev-nmap:latest"] * 2
        docs = docs_by_coll(store, job["id"])
        (alive_doc,) = docs[SCHEMA_ALIVE]
        assert TARGET in alive_doc["data"]["alive"]
        (port_os_doc,) = docs[SCHEMA_PORT_OS]
        assert port_os_doc["data"]["host"] == TARGET
        assert_listener_port(port_entry(port_os_doc["data"]["ports"], listener.port), listener)
        # The job's own document: the summary the workflow set with lev.doc.set(...).
        (summary,) = docs["_"]
        assert summary["run_id"] is None
        assert summary["data"]["hosts"] == [TARGET]
        opened = [p for p in summary["data"]["open_ports"] if p["port"] == listener.port]
        assert opened == [{"host": TARGET, **port_entry(hosts[0]["ports"], listener.port)}]
        # What the workflow printed is the job's log.
        log = [row["text"] for row in store.get_logs(job["id"], run_id=None)]
        assert f"{TARGET}:{listener.port}/tcp open ssh OpenSSH" in "\n".join(log)


@nmap_test
def test_server_port_with_explicit_ports(hub, listener):
    from lev.szczecin.nmap_python import server_port

    hosts = levrt.run(server_port(TARGET, ports=str(listener.port)))

    assert len(hosts) == 1
    assert [p["port"] for p in hosts[0]["ports"]] == [listener.port]


@nmap_test
def test_alive_and_port_os_workflows(hub, listener):
    from lev.szczecin.nmap_python import alive_nmap_python, port_os_nmap_python

    assert levrt.run(alive_nmap_python(TARGET)) == [TARGET]
    ports = levrt.run(port_os_nmap_python(TARGET, str(listener.port)))
    assert len(ports) == 1
    assert_listener_port(ports[0], listener)
    with Store.open() as store:
        names = sorted(job["name"] for job in store.list_jobs())
    assert names == ["alive_nmap_python", "port_os_nmap_python"]


# -- the nmap_python package: each mode directly ---------------------------------------------


@nmap_test
def test_raw_mode(hub):
    from lev.szczecin.nmap_python import nmap_python

    data = run_doc(nmap_python.raw(["-sn", TARGET]))

    assert data["returncode"] == 0
    assert "Host is up" in data["stdout"]
    with Store.open() as store:
        job = only_job(store)
        (run,) = store.list_runs(job["id"])
        assert (run["schema"], run["coll"], run["status"]) == (SCHEMA_RAW, SCHEMA_RAW, "done")
        # nmap's output is also in the run's log, where a user watching the task sees it.
        log = [row["text"] for row in store.get_logs(job["id"], run_id=run["run_id"])]
        assert any("Host is up" in line for line in log)


@nmap_test
def test_raw_mode_fails_when_nmap_does(hub):
    from lev.szczecin.nmap_python import nmap_python

    with pytest.raises(levrt.TaskFailed) as failed:
        run_doc(nmap_python.raw(["--no-such-nmap-option"]))

    assert failed.value.exit_code == 255
    assert any("unrecognized option" in line for line in failed.value.log_tail)
    with Store.open() as store:
        job = only_job(store)
        assert job["status"] == "failed"
        (run,) = store.list_runs(job["id"])
        assert (run["status"], run["exit_code"]) == ("failed", 255)
        # What the entry stored before exiting stays: the failure can be inspected.
        (doc,) = store.find_documents(coll=SCHEMA_RAW, job_id=job["id"])
        assert doc["data"]["returncode"] == 255


def test_raw_mode_wants_an_argv_list(hub):
    from lev.szczecin.nmap_python import nmap_python

    with pytest.raises(TypeError, match="argv must be a list of str"):
        nmap_python.raw(f"-sn {TARGET}")


@nmap_test
def test_alive_mode(hub):
    from lev.szczecin.nmap_python import nmap_python

    assert run_doc(nmap_python.alive(TARGET)) == {"alive": [TARGET]}


@nmap_test
def test_port_os_mode(hub, listener):
    from lev.szczecin.nmap_python import nmap_python

    data = run_doc(nmap_python.port_os(TARGET, str(listener.port)))

    assert set(data) == {"host", "ports", "os"}
    assert data["host"] == TARGET
    assert len(data["ports"]) == 1
    assert_listener_port(data["ports"][0], listener)
    assert set(data["ports"][0]) == {"port", "protocol", "state", "service", "product", "version"}
    assert isinstance(data["os"], list)
    assert all(isinstance(name, str) and name for name in data["os"])


# -- IPv6 targets, and targets nmap cannot scan ---------------------------------------------


@nmap_test
def test_alive_mode_ipv6(hub):
    from lev.szczecin.nmap_python import nmap_python

    assert run_doc(nmap_python.alive(TARGET6)) == {"alive": [TARGET6]}


@nmap_test
def test_alive_mode_mixed_families(hub):
    from lev.szczecin.nmap_python import nmap_python

    # One run, two nmap calls (IPv4 first, then -6), one list.
    assert run_doc(nmap_python.alive(f"{TARGET6} {TARGET}")) == {"alive": [TARGET, TARGET6]}
    with Store.open() as store:
        job = only_job(store)
        (run,) = store.list_runs(job["id"])
        assert run["status"] == "done"
        log = [row["text"] for row in store.get_logs(job["id"], run_id=run["run_id"])]
        assert f"2 host(s) up: {TARGET} {TARGET6}" in log


@nmap_test
def test_port_os_mode_ipv6(hub, listener6):
    from lev.szczecin.nmap_python import nmap_python

    data = run_doc(nmap_python.port_os(TARGET6, str(listener6.port)))

    assert data["host"] == TARGET6
    (port,) = data["ports"]
    assert_listener_port(port, listener6)


@nmap_test
def test_server_port_ipv6_and_ipv4(hub, listener, listener6):
    from lev.szczecin.nmap_python import server_port

    ports = f"{listener.port},{listener6.port}"
    hosts = levrt.run(server_port(f"{TARGET} {TARGET6}", ports=ports))

    assert [host["host"] for host in hosts] == [TARGET, TARGET6]
    assert_listener_port(port_entry(hosts[0]["ports"], listener.port), listener)
    assert_listener_port(port_entry(hosts[1]["ports"], listener6.port), listener6)
    with Store.open() as store:
        job = only_job(store)
        assert job["status"] == "done"
        assert [r["status"] for r in store.list_runs(job["id"])] == ["done"] * 3


@nmap_test
def test_lan_audit_ipv6(hub, listener6):
    from lev.szczecin.lan_audit import open_services, quick_check

    port = str(listener6.port)
    assert levrt.run(open_services(TARGET6, port)) == [f"[{TARGET6}]:{port}/ssh"]
    assert levrt.run(quick_check(TARGET6, port)) == {f"{port}/tcp": "open"}


@nmap_test
def test_modeless_alive_tool_ipv6_and_ipv4(hub):
    from lev.szczecin.alive import alive

    assert run_doc(alive(f"{TARGET} {TARGET6}")) == {"alive": [TARGET, TARGET6]}


def assert_nothing_scanned(failed: levrt.TaskFailed, nmap_says: str):
    """The run failed with nmap's own message, and the job with it: no empty success."""
    assert failed.exit_code == 1
    assert failed.error.startswith("RuntimeError: nmap scanned no target: ")
    assert nmap_says in failed.error
    assert "0 hosts scanned" in failed.error
    with Store.open() as store:
        job = only_job(store)
        assert job["status"] == "failed"
        (run,) = store.list_runs(job["id"])
        assert (run["status"], run["exit_code"]) == ("failed", 1)
        assert store.list_documents(job["id"]) == []  # no empty `alive` stored
        log = "\n".join(row["text"] for row in store.get_logs(job["id"], run_id=run["run_id"]))
        assert nmap_says in log  # nmap's stderr stays in the run's log


@nmap_test
def test_alive_mode_fails_when_the_name_does_not_resolve(hub):
    from lev.szczecin.nmap_python import nmap_python

    with pytest.raises(levrt.TaskFailed) as failed:
        run_doc(nmap_python.alive(UNRESOLVABLE))
    assert_nothing_scanned(failed.value, f'Failed to resolve "{UNRESOLVABLE}"')


@nmap_test
def test_server_port_fails_when_the_name_does_not_resolve(hub):
    from lev.szczecin.nmap_python import server_port

    with pytest.raises(levrt.TaskFailed) as failed:
        levrt.run(server_port(UNRESOLVABLE))
    assert_nothing_scanned(failed.value, f'Failed to resolve "{UNRESOLVABLE}"')


@nmap_test
def test_raw_mode_fails_when_nmap_scanned_nothing(hub):
    from lev.szczecin.nmap_python import nmap_python

    # Raw is raw: an IPv6 target without -6 is nmap's own error, and the run fails with it.
    with pytest.raises(levrt.TaskFailed) as failed:
        run_doc(nmap_python.raw(["-sn", TARGET6]))
    assert_nothing_scanned(failed.value, "you have to use the -6 option")
    assert run_doc(nmap_python.raw(["-6", "-sn", TARGET6]))["returncode"] == 0


@nmap_test
def test_modeless_alive_tool_fails_when_the_name_does_not_resolve(hub):
    from lev.szczecin.alive import alive

    with pytest.raises(levrt.TaskFailed) as failed:
        run_doc(alive(UNRESOLVABLE))
    assert_nothing_scanned(failed.value, f'Failed to resolve "{UNRESOLVABLE}"')


def test_empty_targets_are_refused_before_any_run(hub):
    from lev.szczecin.alive import alive
    from lev.szczecin.nmap_python import nmap_python, server_port

    for make in (nmap_python.alive, alive):
        with pytest.raises(ValueError, match="no target given"):
            make("  ")
    with pytest.raises(ValueError, match="give one host to scan"):
        nmap_python.port_os(f"{TARGET} {TARGET6}")
    with pytest.raises(ValueError, match="no target given"):
        levrt.run(server_port(""))
    with Store.open() as store:
        job = only_job(store)
        assert (job["status"], store.list_runs(job["id"])) == ("failed", [])


# -- the nmap_python package: what travels into the sandbox, and the helpers ------------------


def test_port_os_argv_depends_on_root(hub):
    from lev.szczecin.nmap_python import nmap_python

    as_root = nmap_python.port_os_argv(TARGET, "22,80", root=True)
    assert as_root[:1] == ["-sV"]
    assert "-O" in as_root and "-sT" not in as_root
    assert as_root[-4:] == ["-p", "22,80", "--", TARGET]

    as_user = nmap_python.port_os_argv(TARGET, None, root=False)
    assert "-sT" in as_user and "-O" not in as_user
    assert "-p" not in as_user  # nmap's default top-1000 ports
    assert as_user[-2:] == ["--", TARGET]

    assert nmap_python.port_os_argv(TARGET6, "22")[-5:] == ["-p", "22", "-6", "--", TARGET6]


def test_targets_are_grouped_by_address_family(hub):
    from lev.szczecin.nmap_python import nmap_python

    groups = nmap_python.target_groups(f" {TARGET}  fe80::/64\t127.0.0.2-3 localhost {TARGET6}\n")
    assert groups == [["--", TARGET, "127.0.0.2-3", "localhost"],
                      ["-6", "--", "fe80::/64", TARGET6]]
    assert nmap_python.target_groups(TARGET6) == [["-6", "--", TARGET6]]
    assert nmap_python.one_target("10.0.0.0/24") == ["--", "10.0.0.0/24"]
    for nothing in ("", " \n"):
        with pytest.raises(ValueError, match="no target given"):
            nmap_python.target_groups(nothing)
    with pytest.raises(ValueError, match="give one host to scan"):
        nmap_python.one_target(f"{TARGET} {TARGET6}")


def test_entries_carry_their_helpers_and_constants(hub):
    from lev.szczecin.nmap_python import nmap_python

    cr = nmap_python.port_os(TARGET, "8080")

    payload = cr.payload
    assert payload["entry"]["closure"] == {"ip": TARGET, "ports": "8080"}
    module = payload["modules"]["lev.szczecin.nmap_python.nmap_python"]
    shipped = {fn["source"].split("(")[0].removeprefix("def ") for fn in module["functions"]}
    assert {"scan_xml", "run_nmap", "port_os_argv", "one_target", "target_groups",
            "parse_ports", "parse_os", "up_hosts"} <= shipped
    # Only what port_os's entry reaches travels, not every helper of the module.
    assert not {"parse_alive", "host_address"} & shipped
    values = module["values"]
    assert values["FAST"] == ["-T4", "--max-retries", "1"]
    assert values["OS_DETECTION"] == ["-O", "--max-os-tries", "1"]
    assert values["XML_OUT"] == ["-oX", "-"]
    assert values["ET"] == {"$module": "xml.etree.ElementTree"}
    assert values["ctx"] == {"$levrt": "ctx"}


SAMPLE_XML = """<?xml version="1.0"?>
<nmaprun scanner="nmap" args="nmap -sV -O -oX - 127.0.0.1-2">
  <host><status state="down" reason="no-response"/>
    <address addr="127.0.0.2" addrtype="ipv4"/></host>
  <host><status state="up" reason="localhost-response"/>
    <address addr="127.0.0.1" addrtype="ipv4"/>
    <address addr="00:00:00:00:00:00" addrtype="mac"/>
    <ports>
      <extraports state="closed" count="998"/>
      <port protocol="tcp" portid="22"><state state="open"/>
        <service name="ssh" product="OpenSSH" version="9.2p1 Debian 2"/></port>
      <port protocol="tcp" portid="8080"><state state="filtered"/></port>
    </ports>
    <os><osmatch name="Linux 5.0 - 5.2" accuracy="96"/><osmatch name="Linux 3.1"/></os>
  </host>
</nmaprun>
"""


def test_xml_helpers(hub):
    from lev.szczecin.nmap_python import nmap_python

    assert nmap_python.parse_alive(SAMPLE_XML) == [TARGET]
    assert nmap_python.parse_ports(SAMPLE_XML) == [
        {"port": 22, "protocol": "tcp", "state": "open", "service": "ssh",
         "product": "OpenSSH", "version": "9.2p1 Debian 2"},
        {"port": 8080, "protocol": "tcp", "state": "filtered", "service": "",
         "product": "", "version": ""},
    ]
    assert nmap_python.parse_os(SAMPLE_XML) == ["Linux 5.0 - 5.2", "Linux 3.1"]
    empty = '<nmaprun><runstats><hosts up="0" down="1"/></runstats></nmaprun>'
    assert nmap_python.parse_alive(empty) == []
    assert nmap_python.parse_ports(empty) == []
    assert nmap_python.parse_os(empty) == []


# -- the workflow-only and the modeless packages ---------------------------------------------


@nmap_test
def test_lan_audit_open_services(hub, listener):
    from lev.szczecin.lan_audit import open_services

    services = levrt.run(open_services(TARGET, str(listener.port)))

    assert services == [f"{TARGET}:{listener.port}/ssh"]
    with Store.open() as store:
        job = only_job(store)
        docs = docs_by_coll(store, job["id"])
        assert docs["_"][0]["data"] == {"services": services}
        assert sorted(docs) == ["_", SCHEMA_ALIVE, SCHEMA_PORT_OS]


@nmap_test
def test_lan_audit_quick_check(hub, listener):
    from lev.szczecin.lan_audit import quick_check

    closed = free_port()
    states = levrt.run(quick_check(TARGET, f"{listener.port},{closed}"))

    assert states == {f"{listener.port}/tcp": "open", f"{closed}/tcp": "closed"}
    with Store.open() as store:
        (run,) = store.list_runs(only_job(store)["id"])
        assert run["schema"] == SCHEMA_RAW  # the fast path: the tool's raw mode


@nmap_test
def test_modeless_alive_tool(hub):
    from lev.szczecin.alive import alive

    assert run_doc(alive(TARGET)) == {"alive": [TARGET]}
    with Store.open() as store:
        (run,) = store.list_runs(only_job(store)["id"])
        assert (run["coll"], run["status"]) == ("szczecin/alive@1.0", "done")


# -- the __lev__ manifests -------------------------------------------------------------------


def test_nmap_python_manifest(hub):
    import lev.szczecin.nmap_python as package

    exports = package.__lev__["exports"]
    assert [(e["kind"], e["name"]) for e in exports] == [
        ("tool", "nmap_python"),
        ("workflow", "alive_nmap_python"),
        ("workflow", "port_os_nmap_python"),
        ("workflow", "server_port"),
    ]
    tool = exports[0]
    assert tool["qualname"] == "lev.szczecin.nmap_python.nmap_python"
    assert (tool["homepage"], tool["github"], tool["type"], tool["version"]) == (
        "https://nmap.org", "https://github.com/nmap/nmap", "IMAGE-BASED", "v7.93")
    assert tool["desc"].startswith("Nmap")
    assert tool["images"] == ["localhost/lev-nmap:latest"]
    assert tool["schemas"] == sorted([SCHEMA_RAW, SCHEMA_ALIVE, SCHEMA_PORT_OS])
    assert tool["cats"]["attck"] == ["TA0007", "TA0043"]
    assert {"scanner", "recon"} <= set(tool["cats"]["blackarch"])

    modes = {mode["name"]: mode for mode in tool["modes"]}
    assert list(modes) == ["raw", "alive", "port_os"]  # helpers are not modes
    assert [(p["name"], p["type"], p["placeholder"]) for p in modes["raw"]["params"]] == [
        ("argv", "list[str]", '["-h"]')]
    assert [(p["name"], p["type"], p["required"]) for p in modes["alive"]["params"]] == [
        ("ip", "str", True)]
    assert [(p["name"], p["type"], p["required"], p["default"])
            for p in modes["port_os"]["params"]] == [
        ("ip", "str", True, None), ("ports", "str | None", False, None)]
    assert modes["alive"]["example"] == f'await nmap_python.alive("{TARGET} {TARGET6}")'
    for mode in modes.values():
        assert mode["kind"] == "mode"
        assert mode["desc"] and mode["doc"] and mode["example"]
        assert mode["images"] == ["localhost/lev-nmap:latest"]
        assert mode["unknown_params"] == []

    workflows = {e["name"]: e for e in exports[1:]}
    # The seed named the Param "server" while the parameter is "ip": fixed.
    assert [(p["name"], p["desc"] is not None) for p in workflows["server_port"]["params"]] == [
        ("ip", True), ("ports", True)]
    for workflow in workflows.values():
        assert workflow["unknown_params"] == []
        assert workflow["example"] and workflow["desc"]
        assert "images" not in workflow


def test_workflow_package_manifest(hub):
    import lev.szczecin.lan_audit as package

    exports = package.__lev__["exports"]
    assert [(e["kind"], e["name"]) for e in exports] == [
        ("workflow", "open_services"), ("workflow", "quick_check")]
    params = {e["name"]: [(p["name"], p["required"]) for p in e["params"]] for e in exports}
    assert params == {
        "open_services": [("ip", True), ("ports", False)],
        "quick_check": [("ip", True), ("ports", True)],
    }
    assert all(e["unknown_params"] == [] and e["example"] for e in exports)


def test_modeless_package_manifest(hub):
    import lev.szczecin.alive as package

    (tool,) = package.__lev__["exports"]
    assert (tool["kind"], tool["name"]) == ("tool", "alive")
    assert tool["qualname"] == "lev.szczecin.alive.alive_tool:alive"
    assert tool["desc"] == "Find the live hosts of a network"
    assert (tool["homepage"], tool["type"], tool["version"]) == (
        "https://nmap.org", "IMAGE-BASED", "v7.93")
    assert tool["images"] == ["localhost/lev-nmap:latest"]
    assert tool["schemas"] == ["szczecin/alive@1.0"]
    assert [(p["name"], p["type"], p["placeholder"]) for p in tool["params"]] == [
        ("ip", "str", "127.0.0.1/32 ::1")]
    assert [mode["name"] for mode in tool["modes"]] == ["alive"]


# -- main.py, as an author runs it -----------------------------------------------------------


@nmap_test
def test_main_py_runs_the_package(tmp_path, listener):
    env = {**os.environ, "LEV_HOME": str(tmp_path / "levhome"), "LEV_EXECUTOR": "process"}
    env.pop("LEV_DB_URL", None)
    proc = subprocess.run(
        [sys.executable, "main.py"], cwd=HUB / "szczecin.nmap_python", env=env,
        # main.py scans 127.0.0.1's default ports with version detection: whatever else
        # listens there on a shared machine (test servers, other sessions) slows it down.
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{TARGET}:{listener.port}/tcp open ssh OpenSSH" in proc.stdout
    # main's own summary line
    assert f"{TARGET}: open " in proc.stdout
    assert f"{listener.port}/tcp (ssh)" in proc.stdout
    with Store.open(f"sqlite:///{tmp_path / 'levhome' / 'levrt.db'}") as store:
        job = only_job(store)
        assert (job["name"], job["status"]) == ("main", "done")
        assert len(store.list_runs(job["id"])) == 2


@nmap_test
def test_lev_run_json_of_the_seed_workflow(tmp_path, listener):
    env = {**os.environ, "LEV_HOME": str(tmp_path / "levhome"), "LEV_EXECUTOR": "process"}
    env.pop("LEV_DB_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "levrt", "run", str(HUB / "szczecin.nmap_python") +
         ":server_port", "--ip", TARGET, "--ports", str(listener.port), "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    bundle = json.loads(proc.stdout)
    assert bundle["job"]["status"] == "done" and bundle["job"]["name"] == "server_port"
    docs = {d["coll"]: d["data"] for d in bundle["documents"]}
    assert docs[SCHEMA_ALIVE]["alive"] == [TARGET]
    assert_listener_port(port_entry(docs[SCHEMA_PORT_OS]["ports"], listener.port), listener)
    assert [p["port"] for p in docs["_"]["open_ports"]] == [listener.port]
    assert [r["status"] for r in bundle["runs"]] == ["done", "done"]
    assert any(f"{listener.port}/tcp open" in line["text"] for line in bundle["log"])
