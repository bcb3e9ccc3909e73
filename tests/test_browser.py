"""The web pages in a real browser: headless Debian Chromium driven by Playwright, against a
real ``lev serve`` subprocess on 127.0.0.1 with its own LEV_HOME.

The example hub packages are published through the CLI (``lev user add``, ``lev login``,
``lev publish``) and nothing else: the server's task runner runs their published files.
``server_port`` scans only 127.0.0.1, on the port of a tiny TCP listener of this test that
answers with an SSH banner.

Without Chromium (``/usr/bin/chromium``) or the ``playwright`` package the module is skipped;
under ``CI=true`` it fails instead. Playwright never downloads a browser here.

``scripts/screenshots.py`` reuses the helpers of this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from levrt.executors.docker import engine_url

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "lev-hub"
PACKAGES = ("szczecin.nmap_python", "szczecin.alive", "szczecin.lan_audit")
LEV = [sys.executable, "-m", "levrt"]
USER = "szczecin"
PASSWORD = "szczecin-password"
NMAP = "lev.szczecin.nmap_python"
SERVER_PORT = f"{NMAP}.asset:server_port"
CHROMIUM = os.environ.get("LEV_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-quic", "--no-first-run", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    if not shutil.which("nmap"):
        return "nmap is not installed (apt-get install nmap)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LEV_", "PIP_"))}
    env.update(LEV_HOME=str(home), PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def run(argv: list, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run([str(a) for a in argv], env=env, input=stdin, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"{argv}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


@contextlib.contextmanager
def ssh_listener(delay: float = 0.0) -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that greets every connection with an SSH banner (after
    ``delay`` seconds, which keeps a scan running a little longer); yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def greet(conn: socket.socket) -> None:
        with conn:
            with contextlib.suppress(OSError):
                if not stop.wait(delay):
                    conn.sendall(BANNER)
                    conn.settimeout(2)
                    conn.recv(1024)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=greet, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


@dataclass
class Served:
    url: str
    env: dict[str, str]  # the server's
    admin_password: str  # as lev serve printed it


@contextlib.contextmanager
def lev_server(folder: Path, *, load: bool = False) -> Iterator[Served]:
    """``lev serve`` on a free 127.0.0.1 port in ``folder``/server-home, with the example
    packages published: by the user szczecin through the hub's API (``lev publish``), or
    with ``load`` straight into the store (``lev hub load``), as a new user would."""
    # Without an engine, the tools may run as processes here (containers where one answers).
    env = clean_env(folder / "server-home", LEV_SERVER_ALLOW_HOST_EXECUTION="true")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([*LEV, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                                  cwd=folder)
        try:
            first = server.stdout.readline()
            created = re.match(r"created user admin with password (\S+) ", first)
            assert created, first
            assert server.stdout.readline() == (
                f"levrt platform at {url}/ (web pages; API docs at {url}/docs)\n")
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                        assert json.loads(answer.read())["status"] == "ok"
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(log_path.read_text()) from None
                    time.sleep(0.05)
            if load:
                run([*LEV, "hub", "load", EXAMPLES], env)
            else:
                client = clean_env(folder / "client-home")
                run([*LEV, "user", "add", USER, "--password-stdin"], env,
                    stdin=PASSWORD + "\n")
                run([*LEV, "login", url, "--user", USER, "--password-stdin"], client,
                    stdin=PASSWORD + "\n")
                for name in PACKAGES:
                    run([*LEV, "publish", EXAMPLES / name], client)
            yield Served(url, env, created.group(1))
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)


def launch(playwright):  # -> playwright.sync_api.Browser
    """Debian's Chromium, headless; Playwright's own browsers are never used or fetched."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# Counts what tasklog.js appends to the live log, and how often it replaces the run tree, in
# sessionStorage, so that it survives the reload at the task's end.
WATCH_LIVE_LOG = """
document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  if (!log) { return; }
  const runs = document.getElementById("runs");
  new MutationObserver(() => {
    const count = Number(sessionStorage.getItem("levRunTrees") || "0");
    sessionStorage.setItem("levRunTrees", String(count + 1));
  }).observe(runs, {childList: true});
  new MutationObserver((changes) => {
    const seen = JSON.parse(sessionStorage.getItem("levLiveLog") || "[]");
    for (const change of changes) {
      for (const node of change.addedNodes) {
        if (node.classList && node.classList.contains("line")) {
          seen.push(node.querySelector(".text").textContent);
        }
      }
    }
    sessionStorage.setItem("levLiveLog", JSON.stringify(seen));
  }).observe(log, {childList: true});
});
"""


def log_in(page, url: str, user: str = USER, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{url}/")


def search_market(page, words: str = "nmap") -> list[str]:
    """Search the market; the names of the packages found."""
    page.fill("form.filters input[name=q]", words)
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*\?q="))
    return page.locator("ul.cards h2 a").all_inner_texts()


def open_package(page, url: str) -> None:
    page.click(f"ul.cards a[href='/packages/{NMAP}']")
    page.wait_for_url(f"{url}/packages/{NMAP}")


def open_quick_form(page) -> None:
    """From the package page: the Run button of server_port."""
    page.click(f"a.button[href$='/run/{SERVER_PORT.replace(':', '%3A')}']")
    page.wait_for_selector("form.quick")


def submit_bad_ports(page) -> None:
    """Ports that break the field's regex, past the browser's own check (novalidate), so that
    the server's answer shows; the browser alone refuses to submit them."""
    page.fill("#p_ip", "127.0.0.1")
    page.fill("#p_ports", "22; rm -rf /")
    assert page.eval_on_selector("#p_ports", "e => e.validity.patternMismatch")
    page.eval_on_selector("form.quick", "f => { f.noValidate = true; }")
    with page.expect_navigation():
        page.click("form.quick button[type=submit]")


def run_server_port(page, port: int | str) -> None:
    """From the Quick form of server_port: run it on 127.0.0.1 and ``port``, on to the task's
    page; returns once the task has ended and the page has reloaded."""
    page.fill("#p_ip", "127.0.0.1")
    page.fill("#p_ports", str(port))
    with page.expect_navigation():
        page.click("form.quick button[type=submit]")
    assert re.search(r"/tasks/[^/]+$", page.url), page.url
    assert page.inner_text("h1").startswith("Task server_port")
    # At the end tasklog.js reloads the page: runs and results show.
    page.wait_for_function(
        "() => document.getElementById('log')?.dataset.live === 'no'", timeout=45_000)


def documents_of(page) -> list[dict]:
    """The task page's documents, from its raw JSON toggle."""
    return json.loads(page.locator("#raw-json pre code").text_content())


def check_server_port_results(page, port: int) -> None:
    """The task page of a finished server_port on 127.0.0.1 and ``port``: done, the
    listener's port open with its ssh service in the result, the documents and the log."""
    assert page.inner_text("#status") == "done", page.content()
    result = page.inner_text("#result")
    assert "127.0.0.1" in result and f'"port":{port}' in result, result
    summary = next(doc["data"] for doc in documents_of(page) if doc["collection"] == "_")
    open_ports = summary["open_ports"]
    assert {"host": "127.0.0.1", "port": port} in [
        {"host": d["host"], "port": d["port"]} for d in open_ports], summary
    assert "ssh" in {d["service"] for d in open_ports}
    assert f"127.0.0.1:{port}/tcp open ssh" in page.inner_text("#log")


def page_width(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


@dataclass
class Shots:
    """Screenshots of a browser test, kept as artifacts of the run."""

    folder: Path

    def __call__(self, page, name: str, full_page: bool = True) -> None:
        page.screenshot(path=str(self.folder / f"{name}.png"), full_page=full_page)


# ---------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def browser_ready():
    why = missing_browser()
    if why:
        if IN_CI:
            pytest.fail(f"CI is set but the browser tests cannot run: {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def server(browser_ready, tmp_path_factory):
    with lev_server(tmp_path_factory.mktemp("browser")) as served:
        yield served.url


@pytest.fixture(scope="module")
def browser(browser_ready):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch(p)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory, pytestconfig):
    """Where the screenshots go: ``$LEV_ARTIFACTS/browser`` if set, else a pytest tmp dir;
    the folder is named in the test's output."""
    root = os.environ.get("LEV_ARTIFACTS")
    folder = Path(root) / "browser" if root else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    with pytestconfig.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\nbrowser test screenshots: {folder}")
    return Shots(folder)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(20_000)
    context.add_init_script(WATCH_LIVE_LOG)
    page = context.new_page()
    yield page
    context.close()


def test_login_market_package_quick_form_and_a_live_task(server, page, shots):
    url = server
    # Without a session every page sends the browser to the login form; a wrong password
    # says so.
    page.goto(f"{url}/")
    assert page.url == f"{url}/login"
    page.fill("input[name=user]", USER)
    page.fill("input[name=password]", "wrong")
    page.click("form.login button[type=submit]")
    assert "wrong user name or password" in page.inner_text("p.error")
    log_in(page, url)

    # The market lists the published packages, each card with what it can run; a tag links
    # to its filter; the search narrows it to nmap's.
    names = page.locator("ul.cards h2 a").all_inner_texts()
    assert set(names) >= {NMAP, "lev.szczecin.alive", "lev.szczecin.lan_audit"}, names
    card = page.locator("li.card", has=page.locator(f"h2 a[href='/packages/{NMAP}']"))
    assert "server_port" in card.locator("p.runs").inner_text()
    shots(page, "market")
    card.locator("a.tag", has_text="TA0007").first.click()
    page.wait_for_url(re.compile(r".*category=attck%3ATA0007"))
    assert page.input_value("select[name=category]") == "attck:TA0007"
    assert NMAP in page.locator("ul.cards h2 a").all_inner_texts()
    assert NMAP in search_market(page, "nmap")
    assert search_market(page, "no-such-tool-anywhere") == []
    assert "No package matches." in page.inner_text("main")
    assert NMAP in search_market(page, "nmap")
    open_package(page, url)
    assert page.locator("h1").inner_text().startswith(NMAP)

    # The package page: an index of what can be run on the first screen, server_port in it;
    # each entry says what it produces and where it runs; no null defaults.
    index = page.locator("nav.index")
    assert "server_port" in index.inner_text()
    box = index.locator("a", has_text="server_port").first.bounding_box()
    assert box and box["y"] < VIEWPORT["height"], box
    anchor = "run-" + re.sub(r"[^A-Za-z0-9_-]", "-", SERVER_PORT)
    server_port = page.locator(f"div.mode[id='{anchor}']")
    made = server_port.locator("dl.produces").inner_text()
    assert "Summary: hosts, open_ports" in made and "nmap · port_os: host, ports, os" in made
    assert "localhost/lev-nmap:latest" in made
    assert ("present" if engine_url() else "no container engine") in made, made
    assert "null" not in page.locator("table.params").all_inner_texts()[0]
    shots(page, "package")

    # The Quick form of server_port: types in words, the example one click away, a bad
    # ports value refused in words beside its field.
    open_quick_form(page)
    assert page.inner_text("label[for=p_ports] small") == "text, optional"
    assert page.input_value("#task_name") == "server_port"
    assert "Runs on" in page.inner_text("#runs-on")
    page.click("button[data-fill=p_ports]")
    assert page.input_value("#p_ports") == "22,80,443,8000-8100"
    assert page.get_attribute("#p_ports", "pattern") == r"^[0-9TUSP:,\-]+$"
    submit_bad_ports(page)
    error = page.locator("#p_ports-error")
    assert error.is_visible()
    assert error.inner_text().startswith("expected ports to scan on each host"), error.inner_text()
    assert "(pattern ^[0-9TUSP:,\\-]+$)" in error.inner_text()
    assert page.locator(".field.invalid #p_ports").count() == 1
    assert page.input_value("#p_ports") == "22; rm -rf /"   # the values as typed
    assert page.locator("#p_ip-error").count() == 0
    shots(page, "quick-form-error")

    # A real run: 127.0.0.1, the listener's port. The banner comes late enough for the log
    # to grow while the task page is open, and for its signs of life to show.
    with ssh_listener(delay=3.0) as port:
        page.fill("#p_ip", "127.0.0.1")
        page.fill("#p_ports", str(port))
        with page.expect_navigation():
            page.click("form.quick button[type=submit]")
        assert re.search(r"/tasks/[^/]+$", page.url), page.url
        task_url = page.url
        page.wait_for_function("() => document.getElementById('status').textContent"
                               " === 'running' && document.querySelector('#runs .ticking')")
        first = page.inner_text("#elapsed")
        page.wait_for_function(f"() => document.getElementById('elapsed').textContent"
                               f" !== {json.dumps(first)}", timeout=5_000)
        # Progress moves when runs start, before the task ends.
        page.wait_for_function("() => document.getElementById('progress').value > 0"
                               " && document.getElementById('status').textContent"
                               " === 'running'", timeout=15_000)
        assert re.fullmatch(r"\d+ of \d+ runs? finished", page.inner_text("#run-count"))
        assert page.inner_text("#log-tail").strip()
        shots(page, "task-running", full_page=False)
        page.wait_for_function(
            "() => document.getElementById('log')?.dataset.live === 'no'", timeout=45_000)
    live = page.evaluate("() => JSON.parse(sessionStorage.getItem('levLiveLog') || '[]')")
    # tasklog.js appended lines from the event stream while the task ran.
    assert live, "no log line came in live (did the task end before its page opened?)"
    assert any(f"127.0.0.1:{port}/tcp open ssh" in line for line in live), live
    # The server's default executor, auto: containers where an engine answers (as in CI).
    assert page.inner_text("#executor") == ("docker" if engine_url() else "process")
    assert int(page.evaluate("() => sessionStorage.getItem('levRunTrees') || '0'")) >= 1
    check_server_port_results(page, port)

    # The answer first: the result comes before the runs; each document once, the raw JSON
    # behind its toggle; human names for documents and runs.
    assert page.evaluate("() => document.getElementById('result').compareDocumentPosition("
                         "document.getElementById('runs')) & Node.DOCUMENT_POSITION_FOLLOWING")
    assert page.locator("#raw-json").get_attribute("open") is None
    assert not page.locator("#raw-json pre").is_visible()
    assert page.locator("h3").all_inner_texts()[:3] == ["Summary", "nmap · alive",
                                                       "nmap · port_os"]
    runs = page.locator("#runs .run-link").all_inner_texts()
    assert runs == ["alive 127.0.0.1", "port_os 127.0.0.1"], runs
    assert page.inner_text("#run-count") == "2 of 2 runs finished"
    # The log: each line with its time and run; the tool's output is not an error's red.
    lines = page.locator("#log .line")
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", t)
               for t in page.locator("#log .line time").all_inner_texts())
    nmap_line = page.locator("#log .line", has_text=f"127.0.0.1:{port}/tcp").first
    assert "output" in nmap_line.get_attribute("class")
    assert page.locator("#log .line.note").count() >= 1  # levrt's own: the job started
    # Clicking a run filters the log to it; "show all" brings the rest back.
    page.locator("#runs .run-link", has_text="port_os").click()
    shown_runs = {line.get_attribute("data-run") for line in lines.all() if line.is_visible()}
    assert shown_runs == {"1"}, shown_runs
    assert page.locator("#log-filter").is_visible()
    shots(page, "task")
    page.click("#log-all")
    assert all(line.is_visible() for line in lines.all())
    # No page wider than its window, with a results table on it.
    page.set_viewport_size({"width": 820, "height": 800})
    assert page_width(page) <= 820
    page.evaluate("() => document.getElementById('result').scrollIntoView()")
    shots(page, "task-results", full_page=False)
    page.set_viewport_size(VIEWPORT)

    # Edit and run: the form comes filled with the task's parameters and name.
    with ssh_listener() as port2:
        page.click("#edit-run")
        page.wait_for_selector("form.quick")
        assert (page.input_value("#p_ip"), page.input_value("#p_ports"),
                page.input_value("#task_name")) == ("127.0.0.1", str(port), "server_port")
        page.fill("#p_ports", str(port2))
        page.fill("#task_name", "server_port again")
        with page.expect_navigation():
            page.click("form.quick button[type=submit]")
        assert page.inner_text("h1").startswith("Task server_port again")
        page.wait_for_function(
            "() => document.getElementById('log')?.dataset.live === 'no'", timeout=45_000)
        assert page.inner_text("#status") == "done"

    # The task list: parameters, result count, times with their zone; searching a port or
    # an address finds the tasks; a click anywhere on a row opens its task.
    page.goto(f"{url}/tasks?q={port}")
    rows = page.locator("tr.job")
    assert rows.count() == 1 and "done" in rows.first.inner_text()
    assert f"ports {port}" in rows.first.locator("td.params").inner_text()
    assert "1 item" in rows.first.inner_text() and "UTC" in rows.first.inner_text()
    page.goto(f"{url}/tasks?q=127.0.0.1")
    assert page.locator("tr.job").count() >= 2
    shots(page, "tasks")
    page.goto(f"{url}/tasks?q=8.8.8.8")
    assert page.locator("tr.job").count() == 0
    page.goto(f"{url}/tasks?q={port}")
    with page.expect_navigation():
        page.locator("tr.job td.params").first.click()
    assert page.url == task_url


def test_raw_mode_in_customized_mode(server, page, shots):
    url = server
    log_in(page, url)
    raw = f"{NMAP}.nmap_python:raw".replace(":", "%3A")
    page.goto(f"{url}/packages/{NMAP}/run/{raw}?tab=customized")
    # A command line pasted into a row becomes its arguments, by shell rules; the preview
    # shows the final command line, the tool in front.
    page.evaluate("""() => {
      const input = document.querySelector("ol.argv-rows input");
      const data = new DataTransfer();
      data.setData("text", "-sn '127.0.0.1'");
      input.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true,
                                                       cancelable: true}));
    }""")
    rows = page.locator("ol.argv-rows li input")
    assert [rows.nth(i).input_value() for i in range(rows.count())] == ["-sn", "127.0.0.1"]
    assert page.inner_text("#argv-preview") == "nmap -sn 127.0.0.1"
    # An argument with spaces is flagged: the tool gets it whole.
    page.click("text=Add argument")
    page.fill("ol.argv-rows li:nth-child(3) input", "a b")
    assert page.locator("ol.argv-rows li:nth-child(3) .warning").is_visible()
    assert page.inner_text("#argv-preview") == "nmap -sn 127.0.0.1 'a b'"
    shots(page, "argv-editor")
    page.click("ol.argv-rows li:nth-child(3) button")
    with page.expect_navigation():
        page.click("form.customized button[type=submit]")
    assert re.search(r"/tasks/[^/]+$", page.url), page.url
    page.wait_for_function(
        "() => document.getElementById('log')?.dataset.live === 'no'", timeout=45_000)
    assert page.inner_text("#status") == "done", page.content()
    # The mode's result is its document, shown once: nmap's report preformatted.
    assert page.locator("#result pre.text").count() == 1
    assert "Host is up" in page.inner_text("#result pre.text")
    assert page.locator("table.results").count() == 0
    assert documents_of(page)[0]["data"]["returncode"] == 0

    # A failure leads with the tool's own words, levrt's error after them.
    page.goto(f"{url}/packages/{NMAP}/run/{raw}?tab=customized")
    page.fill("ol.argv-rows li:nth-child(1) input", "--no-such-option")
    with page.expect_navigation():
        page.click("form.customized button[type=submit]")
    page.wait_for_function(
        "() => document.getElementById('log')?.dataset.live === 'no'", timeout=45_000)
    assert page.inner_text("#status") == "failed"
    assert "unrecognized option" in page.inner_text("#failure")
    assert page.evaluate("() => document.getElementById('failure').compareDocumentPosition("
                         "document.getElementById('job-error'))"
                         " & Node.DOCUMENT_POSITION_FOLLOWING")
    shots(page, "task-failed")


def test_a_workflows_answer_comes_first(server, page, shots):
    """quick_check returns port → state: the task page shows that answer as its Result."""
    url = server
    log_in(page, url)
    page.goto(f"{url}/packages/lev.szczecin.lan_audit")
    page.locator("nav.index li", has_text="quick_check").locator("a.button").click()
    page.wait_for_selector("form.quick")
    with ssh_listener() as port:
        page.fill("#p_ip", "127.0.0.1")
        page.fill("#p_ports", str(port))
        with page.expect_navigation():
            page.click("form.quick button[type=submit]")
        page.wait_for_function(
            "() => document.getElementById('log')?.dataset.live === 'no'", timeout=45_000)
    assert page.inner_text("#status") == "done", page.content()
    pairs = page.locator("#result table.pairs tr")
    assert pairs.count() == 1
    assert pairs.first.inner_text().split() == [f"{port}/tcp", "open"]
    shots(page, "task-answer")


def demo_module():
    """examples/demo.py, whose services (an HTTP server, SSH- and SMTP-like listeners on a
    window of free ports) the rows test scans."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("levrt_demo", ROOT / "examples" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows_table(page, label: str):
    """The Rows section's table under the heading that starts with ``label``."""
    page.wait_for_selector("#rows[data-loaded=yes]")
    heading = page.locator("#rows h3", has_text=label).first
    return heading.locator("xpath=following-sibling::div[contains(@class,'rows-box')][1]")


def test_rows_compare_with_previous_run_and_assets(server, page, shots):
    """server_port on a window of ports with two services, then again with a third: the
    task page's rows (filter, sort, CSV), Compare with previous run (one new port), Assets."""
    url = server
    demo = demo_module()
    log_in(page, url)
    with demo.services() as (ports, third):
        base = int(ports.split("-")[0])
        page.goto(f"{url}/packages/{NMAP}")
        open_quick_form(page)
        run_server_port(page, ports)
        assert page.inner_text("#status") == "done", page.content()
        box = rows_table(page, "nmap · port_os")
        assert "keys host, port, protocol" in page.locator("#rows h3", has_text="port_os")\
            .first.inner_text()
        body = box.locator("tbody tr")
        assert body.count() == 2
        heads = box.locator("thead th").all_inner_texts()
        assert heads[:7] == ["host", "port", "protocol", "state", "service", "product",
                             "version"], heads
        # Filter: only the ssh row; sort by port, twice: the other way.
        box.locator("input.rows-filter").fill("openssh")
        assert [row.is_visible() for row in body.all()].count(True) == 1
        assert "ssh" in box.locator("tbody tr:not([hidden])").inner_text()
        box.locator("input.rows-filter").fill("")
        box.locator("thead th", has_text="port").first.click()
        box.locator("thead th", has_text="port").first.click()
        assert box.locator("tbody tr").first.locator("td").nth(1).inner_text() == str(base + 1)
        shots(page, "task-rows")
        csv_link = page.locator("#rows h3", has_text="port_os").first.locator("a", has_text="CSV")
        answer = page.request.get(url + csv_link.get_attribute("href"))
        assert answer.ok and answer.headers["content-type"].startswith("text/csv")
        lines = answer.text().splitlines()
        assert lines[0].startswith("host,port,protocol,state,service,product,version")
        assert any(line.startswith(f"127.0.0.1,{base + 1},tcp,open,ssh,OpenSSH") for line in lines)

        # One more service, and the same task again: compare shows its port as new.
        smtp = demo.Banner(third, demo.SMTP_BANNER)
        try:
            with page.expect_navigation():
                page.click("form[action$='/rerun'] button[type=submit]")
            page.wait_for_function(
                "() => document.getElementById('log')?.dataset.live === 'no'", timeout=45_000)
        finally:
            smtp.close()
    assert page.inner_text("#status") == "done", page.content()
    assert rows_table(page, "nmap · port_os").locator("tbody tr").count() == 3
    with page.expect_navigation():
        page.click("#compare-previous")
    assert "/diff?with=" in page.url
    section = page.locator("section.diff", has_text="nmap · port_os")
    assert "1 new · 0 gone · " in section.locator("h2").inner_text()
    new_rows = section.locator("h3.added + .rows-box tbody tr")
    assert new_rows.count() == 1
    assert new_rows.first.locator("td").nth(1).inner_text() == str(base + 2)
    assert "smtp" in new_rows.first.inner_text()
    shots(page, "task-diff")

    page.click("header.top nav a[href='/assets']")
    page.wait_for_url(f"{url}/assets")
    page.select_option("select[name=coll]", "szczecin/nmap.port_os@1.0")
    page.fill("form.filters input[name=q]", "127.0.0.1")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    table = page.locator("table.rows-table").first
    found = {row.locator("td").nth(1).inner_text(): row.inner_text()
             for row in table.locator("tbody tr").all()}
    assert {str(base), str(base + 1), str(base + 2)} <= set(found), found
    heads = table.locator("thead th").all_inner_texts()
    assert heads[-4:] == ["first seen", "last seen", "tasks", "last task"], heads
    shots(page, "assets")


def test_confirmations_copy_and_a_phone_wide_header(server, page, shots):
    url = server
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    log_in(page, url)
    # A new token: shown once, with a button that copies it.
    page.goto(f"{url}/settings")
    page.fill("#token-name", "browser test")
    with page.expect_navigation():
        page.click("form.quick button[type=submit]")
    token = page.inner_text("#new-token")
    page.click("#copy-token")
    page.wait_for_function("() => document.getElementById('copy-token').textContent"
                           " === 'Copied'")
    assert page.evaluate("() => navigator.clipboard.readText()") == token
    shots(page, "settings-token")
    # Revoke asks first: dismissed, nothing happens; accepted, the token is revoked.
    row = page.locator("table.tokens tr", has_text="browser test")
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.locator("button", has_text="Revoke").click()
    assert row.locator("button", has_text="Revoke").count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        row.locator("button", has_text="Revoke").click()
    assert page.locator("table.tokens tr", has_text="browser test").locator(
        "button").count() == 0

    # Cancel asks first too.
    with ssh_listener(delay=20.0) as port:
        page.goto(f"{url}/packages/{NMAP}")
        open_quick_form(page)
        page.fill("#p_ip", "127.0.0.1")
        page.fill("#p_ports", str(port))
        with page.expect_navigation():
            page.click("form.quick button[type=submit]")
        page.wait_for_function("() => document.getElementById('status').textContent"
                               " === 'running'")
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.click("button.danger")
        assert page.inner_text("#status") == "running"
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("button.danger")
        page.wait_for_function("() => document.getElementById('log')?.dataset.live === 'no'"
                               " && document.getElementById('status').textContent"
                               " === 'cancelled'", timeout=30_000)

    # The header at 390 px: every link there, the page no wider than the window.
    page.set_viewport_size({"width": 390, "height": 800})
    for path in ("/", "/tasks", page.url.removeprefix(url)):
        page.goto(f"{url}{path}")
        assert page_width(page) <= 390, path
        for link in page.locator("header.top nav a").all():
            box = link.bounding_box()
            assert box and box["x"] + box["width"] <= 390, path
    shots(page, "phone-header", full_page=False)


def test_a_new_users_path(browser_ready, page, tmp_path):
    """As the issue tries it: lev serve, log in with the password it printed, load the
    examples with one command, run the seed's workflow from the browser against 127.0.0.1,
    read its results and log. Nothing is installed: the task runs the published files."""
    with lev_server(tmp_path, load=True) as served, ssh_listener() as port:
        log_in(page, served.url, "admin", served.admin_password)
        open_package(page, served.url)
        open_quick_form(page)
        run_server_port(page, port)
        check_server_port_results(page, port)


# A workflow package of this test's own: two namespaces, a Concurrent fan-out in the second,
# on top of the example nmap tool.
STAGED = '''
from lev.szczecin.nmap_python import nmap_python as nmap

from levrt import Concurrent, annot, lev


@annot.meta(desc="Find a host alive, then check its ports one run each",
            params=[annot.Param("ip", "The host", holder="127.0.0.1"),
                    annot.Param("ports", "Ports, separated by commas", holder="22,80")])
async def staged(ip: str, ports: str) -> dict:
    with lev / "discover":
        alive = (await (await nmap.alive(ip)).get())["alive"]
    with lev / "ports":
        async with Concurrent(limit=4) as c:
            tasks = [c.start(nmap.raw(["-sT", "-Pn", *nmap.FAST, "-p", port, *nmap.XML_OUT,
                                       *nmap.one_target(ip)]))
                     for port in ports.split(",")]
    states = {}
    for task in tasks:
        xml_text = (await (await task).get())["stdout"]
        states.update({f"{p['port']}": p["state"] for p in nmap.parse_ports(xml_text)})
    return {"alive": alive, "ports": states}


__lev__ = annot.meta([staged])
'''
STAGED_PYPROJECT = '''
[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "lev.szczecin.staged"
version = "1.0.0"
description = "Two stages in two namespaces"
requires-python = ">=3.10"
dependencies = ["levrt", "lev.szczecin.nmap_python>=1.0"]

[tool.hatch.build.targets.wheel]
packages = ["lev"]
'''


def publish_staged(url: str, folder: Path) -> None:
    """Publish lev.szczecin.staged (STAGED) as the user szczecin, from ``folder``, next to
    the nmap tool it imports (a sibling folder, as in a lev-hub checkout)."""
    source = folder / "hub" / "szczecin.staged"
    (source / "lev" / "szczecin" / "staged").mkdir(parents=True)
    (source / "pyproject.toml").write_text(STAGED_PYPROJECT)
    (source / "lev" / "szczecin" / "staged" / "__init__.py").write_text(STAGED)
    (folder / "hub" / "szczecin.nmap_python").symlink_to(EXAMPLES / "szczecin.nmap_python")
    client = clean_env(folder / "client-home")
    run([*LEV, "login", url, "--user", USER, "--password-stdin"], client, stdin=PASSWORD + "\n")
    run([*LEV, "publish", source], client)


def test_the_timeline_of_a_namespaced_workflow(server, page, shots, tmp_path):
    """A workflow with a namespace per stage and a fan-out of three runs in the second: the
    task page draws each run as a bar under its namespace, with its times in a tooltip."""
    url = server
    publish_staged(url, tmp_path)
    log_in(page, url)
    page.goto(f"{url}/packages/lev.szczecin.staged")
    page.locator("nav.index li", has_text="staged").locator("a.button").click()
    page.wait_for_selector("form.quick")
    closed = [free_port(), free_port()]
    with ssh_listener(delay=1.0) as port:
        page.fill("#p_ip", "127.0.0.1")
        page.fill("#p_ports", ",".join(str(p) for p in (port, *closed)))
        with page.expect_navigation():
            page.click("form.quick button[type=submit]")
        page.wait_for_function(
            "() => document.getElementById('log')?.dataset.live === 'no'", timeout=60_000)
    assert page.inner_text("#status") == "done", page.content()
    box = page.locator("#timeline svg")
    heads = box.locator("text.tl-head").all_text_contents()
    assert heads == ["discover · 1 done", "ports · 3 done"], heads
    tips = box.locator("g > title").all_text_contents()
    assert len(tips) == 4 and tips[0].startswith("alive 127.0.0.1 (done)\nstarted "), tips
    assert all("\nended " in tip and "\ntook " in tip for tip in tips), tips
    assert box.locator("rect.tl-done").count() == 4
    # The fan-out ran at once: its bars overlap in time.
    starts = sorted(float(x) for x in box.locator("rect.tl-bar").evaluate_all(
        "rects => rects.map(r => r.getAttribute('x'))"))
    widths = box.locator("rect.tl-bar").evaluate_all(
        "rects => rects.map(r => Number(r.getAttribute('width')))")
    assert starts[3] < starts[1] + max(widths), (starts, widths)
    # The drawing fits the window, and its route serves the same runs.
    assert page_width(page) <= VIEWPORT["width"]
    svg = page.request.get(page.url + "/timeline.svg")
    assert svg.ok and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text().count("<title>") == 4
    page.locator("#timeline-box").scroll_into_view_if_needed()
    shots(page, "task-timeline")
    page.locator("#timeline-box").screenshot(path=str(shots.folder / "timeline.png"))


def test_devices_show_executor_images_load_and_their_tasks(server, page, shots):
    """The runner says what ``auto`` resolved to, its images and load, and links to its
    running tasks; an agent device (enrolled and heard from over HTTP with this machine's
    real facts) shows the same from what it reported."""
    from levrt.agent._facts import gather_facts

    url = server
    log_in(page, url)
    page.goto(f"{url}/devices")
    page.fill("#device-name", "browser-box")
    page.fill("#device-pools", "lab")
    with page.expect_navigation():
        page.click("form.quick button[type=submit]")
    code = page.inner_text("#enrol-command").rsplit(" ", 1)[1]
    enrolled = page.request.post(f"{url}/api/agent/enrol", data={"code": code})
    assert enrolled.ok, enrolled.text()
    facts = gather_facts()
    beat = page.request.post(f"{url}/api/agent/heartbeat", data={
        "running": 0, "slots": 3, "facts": facts},
        headers={"Authorization": f"Bearer {enrolled.json()['token']}"})
    assert beat.ok, beat.text()
    with ssh_listener(delay=20.0) as port:
        page.goto(f"{url}/packages/{NMAP}")
        open_quick_form(page)
        page.fill("#p_ip", "127.0.0.1")
        page.fill("#p_ports", str(port))
        with page.expect_navigation():
            page.click("form.quick button[type=submit]")
        task_url = page.url
        page.wait_for_function("() => document.getElementById('status').textContent"
                               " === 'running'")
        page.goto(f"{url}/devices")
        engine = engine_url()
        line = page.inner_text("#local-executor")
        if engine:
            assert f"docker, auto: a Docker API answers at {engine}" in line, line
            assert page.locator("#local-images summary").inner_text().endswith("images")
        else:
            assert "process, auto: no Docker API answers" in line, line
            assert "No container engine" in page.inner_text("#local-images")
        assert page.inner_text("#local-load").startswith("Load: 1 running and 0 queued")
        row = page.locator("#device-browser-box")
        assert row.locator("td.executor strong").inner_text() == facts["executors"][0]
        assert "0 of 3 slots" in row.locator("td.load").inner_text()
        assert f"on {socket.gethostname()}" in row.inner_text()
        assert page_width(page) <= VIEWPORT["width"]
        shots(page, "devices")
        # The runner's running tasks: the task list filtered to it, holding this task.
        page.click("#local-load a:text('running tasks')")
        page.wait_for_url(re.compile(r".*/tasks\?device=.*status=running"))
        assert socket.gethostname() in page.inner_text("#device-filter")
        rows = page.locator("tr.job a").evaluate_all("links => links.map(a => a.href)")
        assert rows == [task_url], rows
        shots(page, "device-tasks", full_page=False)
        page.goto(task_url)
        page.once("dialog", lambda dialog: dialog.accept())
        with page.expect_navigation():
            page.click("button.danger")
        # ?.: the predicate may run while the next page is still coming.
        page.wait_for_function("() => document.getElementById('log')?.dataset.live === 'no'",
                               timeout=30_000)


def test_a_task_made_a_schedule(server, page, shots):
    """Schedule… on a task's page opens a form filled from the task; the schedule it makes
    is listed on the Schedules page, paused, resumed and deleted there."""
    url = server
    log_in(page, url)
    page.goto(f"{url}/packages/lev.szczecin.lan_audit")
    page.locator("nav.index li", has_text="quick_check").locator("a.button").click()
    page.wait_for_selector("form.quick")
    page.fill("#p_ip", "127.0.0.1")
    page.fill("#p_ports", "9")
    with page.expect_navigation():
        page.click("form.quick button[type=submit]")
    with page.expect_navigation():
        page.click("#schedule-task")
    assert page.input_value("#schedule-name") == "quick_check"
    assert '"ip": "127.0.0.1"' in page.inner_text("#schedule-params")
    page.fill("#schedule-name", "hourly-check")
    page.fill("#schedule-cron", "")
    page.fill("#schedule-interval", "3600")
    page.fill("#schedule-timezone", "Europe/Paris")
    with page.expect_navigation():
        page.click("text=Save schedule")
    assert page.url == f"{url}/schedules"
    row = page.locator("#schedule-hourly-check")
    assert "every 3600 s (Europe/Paris)" in row.inner_text()
    shots(page, "schedules")
    with page.expect_navigation():
        row.locator("text=Pause").click()
    assert "paused" in page.locator("#schedule-hourly-check").inner_text()
    with page.expect_navigation():
        page.locator("#schedule-hourly-check").locator("text=Resume").click()
    assert "active" in page.locator("#schedule-hourly-check").inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.locator("#schedule-hourly-check").locator("text=Delete").click()
    assert page.locator("#schedule-hourly-check").count() == 0
