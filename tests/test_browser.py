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
        if (node.nodeName === "SPAN") { seen.push(node.textContent); }
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


def run_server_port(page, port: int) -> None:
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
        "() => document.getElementById('log').dataset.live === 'no'", timeout=45_000)


def check_server_port_results(page, port: int) -> None:
    """The task page of a finished server_port on 127.0.0.1 and ``port``: done, the
    listener's port open with its ssh service in the results and in the log."""
    assert page.inner_text("#status") == "done", page.content()
    results = page.locator("pre.json code").all_inner_texts()
    assert json.loads(results[0]) == {"ip": "127.0.0.1", "ports": str(port)}
    found = [json.loads(text) for text in results[1:]]
    open_ports = [d for doc in found if isinstance(doc, dict)
                  for d in doc.get("open_ports", [])]
    assert {"host": "127.0.0.1", "port": port} in [
        {"host": d["host"], "port": d["port"]} for d in open_ports], results
    assert "ssh" in {d["service"] for d in open_ports}
    assert f"127.0.0.1:{port}/tcp open ssh" in page.inner_text("#log")


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


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(20_000)
    context.add_init_script(WATCH_LIVE_LOG)
    page = context.new_page()
    yield page
    context.close()


def test_login_market_package_quick_form_and_a_live_task(server, page):
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

    # The market lists the published packages; the search narrows it to nmap's.
    names = page.locator("ul.cards h2 a").all_inner_texts()
    assert set(names) >= {NMAP, "lev.szczecin.alive", "lev.szczecin.lan_audit"}, names
    assert NMAP in search_market(page, "nmap")
    assert search_market(page, "no-such-tool-anywhere") == []
    assert "No package matches." in page.inner_text("main")
    assert NMAP in search_market(page, "nmap")
    open_package(page, url)
    assert page.locator("h1").inner_text().startswith(NMAP)
    assert "server_port" in page.locator("section.export h3").all_inner_texts()[-1]

    # The Quick form of server_port: a bad ports value comes back beside its field.
    open_quick_form(page)
    assert page.get_attribute("#p_ports", "pattern") == r"^[0-9TUSP:,\-]+$"
    submit_bad_ports(page)
    error = page.locator("#p_ports-error")
    assert error.is_visible() and error.inner_text()
    assert page.locator(".field.invalid #p_ports").count() == 1
    assert page.input_value("#p_ports") == "22; rm -rf /"   # the values as typed
    assert page.locator("#p_ip-error").count() == 0

    # A real run: 127.0.0.1, the listener's port. The banner comes late enough for the log
    # to grow while the task page is open.
    with ssh_listener(delay=2.0) as port:
        run_server_port(page, port)
    live = page.evaluate("() => JSON.parse(sessionStorage.getItem('levLiveLog') || '[]')")
    # tasklog.js appended lines from the event stream while the task ran.
    assert live, "no log line came in live (did the task end before its page opened?)"
    # The port's line comes after the listener's late banner, well after the page opened.
    assert any(f"127.0.0.1:{port}/tcp open ssh" in line for line in live), live
    # The server's default executor, auto: containers where an engine answers (as in CI).
    assert page.inner_text("#executor") == ("docker" if engine_url() else "process")
    # The run tree was fetched again while the task ran (its run started or ended), and
    # shows the nmap run, done, with its image.
    assert int(page.evaluate("() => sessionStorage.getItem('levRunTrees') || '0'")) >= 1
    run_row = page.locator("#runs tr.run").first
    assert "done" in run_row.inner_text() and "nmap" in run_row.inner_text()
    check_server_port_results(page, port)

    # The tasks list shows it as done.
    page.goto(f"{url}/tasks")
    assert "server_port" in page.content() and "done" in page.content()


def test_raw_mode_in_customized_mode(server, page):
    url = server
    log_in(page, url)
    raw = f"{NMAP}.nmap_python:raw".replace(":", "%3A")
    page.goto(f"{url}/packages/{NMAP}/run/{raw}?tab=customized")
    # argv.js turned the text area into one row per argument.
    page.fill("ol.argv-rows li:nth-child(1) input", "-sn")
    page.click("text=Add argument")
    page.fill("ol.argv-rows li:nth-child(2) input", "127.0.0.1")
    with page.expect_navigation():
        page.click("form.customized button[type=submit]")
    assert re.search(r"/tasks/[^/]+$", page.url), page.url
    page.wait_for_function(
        "() => document.getElementById('log').dataset.live === 'no'", timeout=45_000)
    assert page.inner_text("#status") == "done", page.content()
    results = page.locator("pre.json code").all_inner_texts()
    assert json.loads(results[0]) == {"argv": ["-sn", "127.0.0.1"]}
    documents = [json.loads(text) for text in results[1:]]
    assert any(doc.get("returncode") == 0 and "Host is up" in doc.get("stdout", "")
               for doc in documents if isinstance(doc, dict)), documents


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
