"""`lev serve / user add / login / publish / install`, in-process through ``cli_main``, against
a hub served on 127.0.0.1 in a thread (the end-to-end test runs a real ``lev serve``)."""

import http.client
import io
import json
import os
import re
import select
import shlex
import stat
import sys
from pathlib import Path

import pytest
from helpers_hub import PASSWORD, serve_in_thread

from levrt import _cli_hub
from levrt._cli import cli_main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "lev-hub"


def lev(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli_main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err):
    """The single ``lev: error:`` line a failed command prints (never a traceback)."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lev: error: "), err
    return lines[0].removeprefix("lev: error: ")


@pytest.fixture
def hub(store):
    with serve_in_thread(store) as url:
        yield url


def add_user(store, name):
    store.create_user(name, PASSWORD)


def login(capsys, monkeypatch, url, user):
    code, out, err = lev(capsys, "login", url, "--user", user, "--password-stdin",
                         stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    assert code == 0, err
    return out


# -- lev user add, lev serve -------------------------------------------------------------


def test_user_add_prints_a_password_that_works(capsys, store):
    code, out, err = lev(capsys, "user", "add", "alice")
    assert code == 0, err
    match = re.fullmatch(r"created user alice with password (\S+) \(shown this once\); "
                         r"they can publish lev\.alice\.\*\n", out)
    assert match, out
    assert store.verify_password("alice", match.group(1))["is_admin"] is False


def test_user_add_with_password_on_stdin(capsys, monkeypatch, store):
    code, out, err = lev(capsys, "user", "add", "root_1", "--admin", "--password-stdin",
                         stdin="a long password\n", monkeypatch=monkeypatch)
    assert code == 0, err
    assert out == "created admin root_1; they can publish lev.root_1.*\n"
    assert store.verify_password("root_1", "a long password")["is_admin"] is True


@pytest.mark.parametrize(
    "argv, stdin, message",
    [
        (["user", "add", "alice"], None, "user 'alice' already exists"),
        (["user", "add", "Alice"], None, "user name 'Alice' is not usable"),
        (["user", "add", "bob", "--password-stdin"], "short\n", "at least 8 characters"),
        (["user", "add", "bob", "--password-stdin"], "", "standard input gave no password"),
    ],
)
def test_user_add_errors(capsys, monkeypatch, store, argv, stdin, message):
    add_user(store, "alice")
    code, out, err = lev(capsys, *argv, stdin=stdin, monkeypatch=monkeypatch)
    assert code != 0 and out == ""
    assert message in one_error(err)


def test_serve_creates_admin_on_first_start_only(capsys, monkeypatch, store):
    started = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.append(kw))
    code, out, err = lev(capsys, "serve", "--port", "9")
    assert code == 0, err
    match = re.match(r"created user admin with password (\S+) \(shown this once", out)
    assert match, out
    assert store.verify_password("admin", match.group(1))["is_admin"] is True
    assert out.splitlines()[1] == ("levrt platform at http://127.0.0.1:9/ (web pages; API docs "
                                   "at http://127.0.0.1:9/docs)")
    code, out, err = lev(capsys, "serve", "--host", "127.0.0.2")
    assert code == 0 and out == ("levrt platform at http://127.0.0.2:8765/ (web pages; API "
                                 "docs at http://127.0.0.2:8765/docs)\n")
    assert started == [{"host": "127.0.0.1", "port": 9, "log_level": "info"},
                       {"host": "127.0.0.2", "port": 8765, "log_level": "info"}]


def test_serve_reports_bad_settings(capsys, monkeypatch):
    monkeypatch.setenv("LEV_SERVER_MAX_UPLOAD_BYTES", "lots")
    code, _, err = lev(capsys, "serve")
    assert code == 2
    assert "server setting max_upload_bytes (LEV_SERVER_MAX_UPLOAD_BYTES" in one_error(err)


def test_serve_reads_the_server_table_of_config_toml(capsys, monkeypatch, store, lev_home):
    from levrt._config import load_settings
    from levrt.server import Settings

    monkeypatch.delenv("LEV_SERVER_EXECUTOR")
    lev_home.mkdir(parents=True, exist_ok=True)
    (lev_home / "config.toml").write_text(
        'executor = "auto"\n\n[server]\nport = 9100\nmax_running_tasks = 3\n'
        'executor = "docker"\n')
    settings = Settings()
    assert (settings.port, settings.max_running_tasks, settings.executor) == (9100, 3,
                                                                              "docker")
    assert load_settings().executor == "auto"  # the runtime's own keys, [server] aside
    monkeypatch.setenv("LEV_SERVER_PORT", "9200")  # the environment wins
    assert Settings().port == 9200 and Settings(port=9300).port == 9300  # options win more
    started = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.append(kw))
    assert lev(capsys, "serve")[0] == 0 and started[0]["port"] == 9200

    (lev_home / "config.toml").write_text("[server]\nmax_runing_tasks = 3\n")
    code, _, err = lev(capsys, "serve")
    assert code == 2 and "server setting max_runing_tasks" in one_error(err)
    assert "[server] of " in err and "Extra inputs are not permitted" in err
    (lev_home / "config.toml").write_text("server = 3\n")
    code, _, err = lev(capsys, "serve")
    assert code == 2 and "server must be a table ([server]), not 3" in one_error(err)


def test_user_grant(capsys, store):
    add_user(store, "alice")
    code, out, err = lev(capsys, "user", "grant", "alice", "acme")
    assert code == 0 and out == "alice can publish lev.acme.*, lev.alice.*\n", err
    code, out, err = lev(capsys, "user", "grant", "alice", "acme")
    assert code == 1 and out == ""
    assert one_error(err).endswith("the namespace lev.acme belongs to 'alice': choose another "
                                   "name")
    code, out, err = lev(capsys, "user", "add", "acme")
    assert code == 1 and "lev.acme belongs to 'alice'" in one_error(err)
    code, out, err = lev(capsys, "user", "grant", "nobody", "team")
    assert code == 1 and "no user 'nobody'" in one_error(err)


# -- lev login ---------------------------------------------------------------------------


def test_login_keeps_a_token_in_a_private_file(capsys, monkeypatch, store, hub, lev_home):
    add_user(store, "alice")
    out = login(capsys, monkeypatch, hub + "/", "alice")
    path = lev_home / "credentials.json"
    assert out == f"logged in to {hub} as alice (token saved in {path})\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["default"] == hub
    token = saved["servers"][hub]["token"]
    user = store.resolve_token(token)
    assert user["name"] == "alice" and user["token_name"].startswith("lev login on ")


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["login", "{hub}", "--user", "alice", "--password-stdin"], 1,
         "refused the login: wrong user name or password"),
        (["login", "127.0.0.1:8765", "--user", "alice", "--password-stdin"], 2,
         "must start with http:// or https://"),
        (["login", "http://127.0.0.1:9", "--user", "alice", "--password-stdin"], 1,
         "cannot reach the hub at http://127.0.0.1:9/api/login"),
        (["login", "{hub}", "--password-stdin"], 2, "give the user name with --user NAME"),
        (["login", "{hub}", "--user", "alice"], 2, "pipe it in with --password-stdin"),
    ],
)
def test_login_errors(capsys, monkeypatch, store, hub, lev_home, argv, code, message):
    add_user(store, "alice")
    argv = [arg.format(hub=hub) for arg in argv]
    got, out, err = lev(capsys, *argv, stdin="not the password\n", monkeypatch=monkeypatch)
    assert got == code and out == ""
    assert message in one_error(err)
    assert not (lev_home / "credentials.json").exists()


def test_broken_credentials_file(capsys, lev_home):
    lev_home.mkdir(parents=True, exist_ok=True)
    (lev_home / "credentials.json").write_text("{oops")
    code, _, err = lev(capsys, "install", "lev.a.b")
    assert code == 1 and "delete it and run lev login again" in one_error(err)


# -- lev publish -------------------------------------------------------------------------


def test_publish_then_refusals(capsys, monkeypatch, store, hub):
    add_user(store, "szczecin")
    add_user(store, "mallory")
    package = EXAMPLES / "szczecin.alive"
    code, _, err = lev(capsys, "publish", package)
    assert code == 2 and one_error(err) == (
        "no hub given: pass --server URL, or log in first with lev login URL")

    login(capsys, monkeypatch, hub, "szczecin")
    code, out, err = lev(capsys, "publish", package)
    assert code == 0, err
    assert out == (f"published lev.szczecin.alive@1.0.0: {hub}/api/packages/"
                   "lev.szczecin.alive/1.0.0\n")
    assert err == ""
    version = store.get_version("lev.szczecin.alive", "1.0.0")
    assert version["uploaded_by"] == "szczecin"
    assert [e["name"] for e in version["manifest"]["exports"]] == ["alive"]
    paths = [f["path"] for f in store.list_version_files("lev.szczecin.alive", "1.0.0")]
    assert "lev/szczecin/alive/alive_tool.py" in paths

    code, out, err = lev(capsys, "publish", package, "--server", hub)
    assert code == 1 and out == ""
    assert one_error(err) == (f"{hub} refused lev.szczecin.alive 1.0.0: lev.szczecin.alive "
                              "1.0.0 exists already; versions cannot be replaced: raise the "
                              "version in pyproject.toml and publish again")

    login(capsys, monkeypatch, hub, "mallory")
    code, _, err = lev(capsys, "publish", EXAMPLES / "szczecin.nmap_python")
    assert code == 1
    assert "cannot publish lev.szczecin.nmap_python: the namespace lev.szczecin is not " \
           "theirs; 'mallory' can publish lev.mallory.*" in one_error(err)
    assert store.get_package("lev.szczecin.nmap_python") is None

    code, _, err = lev(capsys, "publish", "--server", "http://127.0.0.1:9", package)
    assert code == 2 and one_error(err) == (
        "not logged in to http://127.0.0.1:9: run lev login http://127.0.0.1:9")

    code, _, err = lev(capsys, "publish", EXAMPLES / "no-such-package")
    assert code == 1 and "no such directory" in one_error(err)


def test_publish_too_large_for_the_server(capsys, monkeypatch, store):
    add_user(store, "szczecin")
    with serve_in_thread(store, max_upload_bytes=1000) as url:
        login(capsys, monkeypatch, url, "szczecin")
        code, _, err = lev(capsys, "publish", EXAMPLES / "szczecin.alive")
    assert code == 1
    assert one_error(err) == (f"{url} refused lev.szczecin.alive 1.0.0: upload too large: the "
                              "server takes at most 1000 bytes per upload (setting "
                              "LEV_SERVER_MAX_UPLOAD_BYTES)")
    assert store.get_package("lev.szczecin.alive") is None


def test_streamed_upload_is_cut_off_at_the_limit(store):
    """A body with no declared length is refused as it arrives, not after it was all read."""
    add_user(store, "alice")
    token = store.create_token("alice", "t")["token"]
    limit = 64 * 1024
    chunk = b"\0" * 16384
    with serve_in_thread(store, max_upload_bytes=limit) as url:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
        connection.putrequest("POST", "/api/packages/upload")
        connection.putheader("Authorization", f"Bearer {token}")
        connection.putheader("Content-Type", "multipart/form-data; boundary=b")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        sent = 0
        try:
            preamble = (b'--b\r\nContent-Disposition: form-data; name="wheel"; '
                        b'filename="x.whl"\r\n\r\n')
            connection.send(b"%x\r\n%s\r\n" % (len(preamble), preamble))
            while sent < 1000 * limit:
                # Stop sending once the server has answered, as a real client does.
                if select.select([connection.sock], [], [], 0)[0]:
                    break
                connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
    assert response.status == 413 and "upload too large" in body["detail"]
    # The server answered long before the 64 MiB were sent: what got through is the limit
    # plus what loopback socket buffers held meanwhile (a few MiB at most).
    assert sent < 256 * limit, sent


# -- lev install -------------------------------------------------------------------------


def test_install_gives_pip_the_hub_with_the_token_in_its_environment(
        capsys, monkeypatch, store, hub, lev_home):
    add_user(store, "alice")
    login(capsys, monkeypatch, hub, "alice")
    token = json.loads((lev_home / "credentials.json").read_text())["servers"][hub]["token"]
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://mirror.test/simple/")
    calls = []
    monkeypatch.setattr(_cli_hub.subprocess, "call",
                        lambda argv, env: calls.append((argv, env)) or 0)
    code, out, err = lev(capsys, "install", "lev.alice.tool", "lev.alice.other>=1.0")
    assert code == 0, err
    [(argv, env)] = calls
    # The token is in neither the command line (ps shows it) nor what lev prints.
    assert argv == [sys.executable, "-m", "pip", "install", "lev.alice.tool",
                    "lev.alice.other>=1.0"]
    index = f"http://__token__:{token}@{hub.removeprefix('http://')}/simple/"
    assert env["PIP_EXTRA_INDEX_URL"] == f"https://mirror.test/simple/ {index}"
    assert out == "" and err == f"running PIP_EXTRA_INDEX_URL={hub}/simple/ {shlex.join(argv)}\n"

    monkeypatch.setattr(_cli_hub.subprocess, "call", lambda argv, env: 1)
    code, _, err = lev(capsys, "install", "--server", hub + "/", "lev.x.y")
    assert code == 1
    lines = err.splitlines()
    assert lines[0].endswith("pip install lev.x.y")
    assert lines[1] == ("lev: error: pip install failed (exit code 1); its messages above "
                        "say why")


def test_install_needs_a_login(capsys, monkeypatch):
    monkeypatch.setattr(_cli_hub.subprocess, "call", lambda argv, env: pytest.fail("pip ran"))
    code, _, err = lev(capsys, "install", "--server", "http://hub.test:1/", "lev.x.y")
    assert code == 2 and one_error(err) == (
        "not logged in to http://hub.test:1: run lev login http://hub.test:1")


# -- lev hub load -----------------------------------------------------------------------------

EXAMPLE_PACKAGES = ["lev.szczecin.alive", "lev.szczecin.lan_audit", "lev.szczecin.nmap_python"]


def test_hub_load_publishes_the_examples_into_the_store(capsys, store):
    code, out, err = lev(capsys, "hub", "load", EXAMPLES)
    assert code == 0, err
    # Where they went: a server of another LEV_HOME would not see them.
    assert err == f"lev hub load: into LEV_HOME={os.environ['LEV_HOME']}\n"
    lines = out.splitlines()
    created = re.fullmatch(r"created user szczecin with password (\S+) \(shown this once\); "
                           r"they can publish lev\.szczecin\.\*", lines[0])
    assert created, out
    assert store.verify_password("szczecin", created.group(1))["is_admin"] is False
    assert lines[1:] == [f"published {name} 1.0.0 as szczecin" for name in EXAMPLE_PACKAGES]
    assert [p["name"] for p in store.list_packages()] == EXAMPLE_PACKAGES
    for name in EXAMPLE_PACKAGES:
        version = store.get_version(name, "1.0.0")
        # What an upload stores: the manifest, the wheel and its files.
        assert version["manifest"]["package"] == name and version["manifest"]["exports"]
        assert version["uploaded_by"] == "szczecin", version
        assert store.get_wheel(version["filename"]) is not None
        paths = [f["path"] for f in store.list_version_files(name, "1.0.0")]
        assert f"{name.replace('.', '/')}/__init__.py" in paths
    modes = {mode["name"]: mode for export in
             store.get_version("lev.szczecin.nmap_python", "1.0.0")["manifest"]["exports"]
             for mode in export.get("modes") or []}
    assert [p["name"] for p in modes["raw"]["params"]] == ["argv"]

    # Again: every version is there already; nothing changes, no user is made.
    code, out, err = lev(capsys, "hub", "load", EXAMPLES)
    assert code == 0 and err.startswith("lev hub load: into "), err
    assert out.splitlines() == [f"skipped {name} 1.0.0: that version is in the store already"
                                for name in EXAMPLE_PACKAGES]
    assert store.count_users() == 1


def test_hub_load_as_another_user_gets_the_uploads_checks(capsys, store):
    add_user(store, "alice")
    code, out, err = lev(capsys, "hub", "load", EXAMPLES / "szczecin.alive", "--user", "alice")
    assert (code, out) == (1, "")
    where, first, last = err.splitlines()
    assert where.startswith("lev hub load: into ")
    assert first.startswith("lev: error: lev.szczecin.alive 1.0.0: 'alice' cannot publish "
                            "lev.szczecin.alive: the namespace lev.szczecin does not exist")
    assert last == "lev: error: 1 of 1 packages were not loaded"
    assert store.list_packages() == [] and store.get_user("szczecin") is None
    code, _, err = lev(capsys, "hub", "load", EXAMPLES, "--user", "nobody")
    assert code == 1 and "no user 'nobody' in the store" in one_error(err)
    code, _, err = lev(capsys, "hub", "load", EXAMPLES / "no-such-folder")
    assert code == 2 and "is not a folder" in one_error(err)
