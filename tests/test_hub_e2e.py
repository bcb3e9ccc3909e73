"""End to end against a real ``lev serve`` process on 127.0.0.1: users, login, publish the
example packages, then pip installs them from ``/simple/`` (with a token in the index URL)
into fresh virtual environments and imports them, and ``lev install`` resolves one package's
dependency on another from the hub.

The fresh environments are made in milliseconds: ``venv --without-pip`` plus a ``.pth`` that
adds this interpreter's site-packages, so levrt (and pip) are there as installed packages, as
in a user's venv, while the hub packages land in the fresh environment's own site-packages.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers_hub import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "lev-hub"
LEV = [sys.executable, "-m", "levrt"]
PASSWORD = "szczecin-password"


def clean_env(home, **extra):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LEV_", "PIP_"))}
    # pip sees only the indexes a step names: no config files, no cache of an earlier run.
    env.update(LEV_HOME=str(home), PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def run(argv, env, stdin=None, cwd=None):
    result = subprocess.run([str(a) for a in argv], env=env, input=stdin, capture_output=True,
                            text=True, timeout=120, cwd=cwd)
    assert result.returncode == 0, f"{argv}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def get(url, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                timeout=10) as response:
        return response.read()


def get_json(url, token=None):
    return json.loads(get(url, token))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """``lev serve`` in its own LEV_HOME; yields (URL, admin password, server env)."""
    folder = tmp_path_factory.mktemp("hub")
    env = clean_env(folder / "server-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("w")
    server = subprocess.Popen([*LEV, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        first = server.stdout.readline()
        assert first.startswith("created user admin with password "), first
        password = first.split()[5]
        deadline = time.monotonic() + 20
        while True:
            try:
                assert get_json(f"{url}/health")["status"] == "ok"
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((folder / "server.log").read_text()) from None
                time.sleep(0.05)
        yield url, password, env
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def fresh_venv(path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(path), "platbase": str(path)}))
    (purelib / "_levrt_dev.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n"
    )
    return path / "bin" / "python", purelib


def installed(purelib):
    return sorted(p.name for p in purelib.glob("*.dist-info"))


def test_publish_index_pip_install_import_and_lev_install(hub, tmp_path):
    url, admin_password, server_env = hub
    client = clean_env(tmp_path / "client-home")

    # The admin from the first start can log in; a user is added on the server's store.
    run([*LEV, "login", url, "--user", "admin", "--password-stdin"], client,
        stdin=admin_password + "\n")
    out = run([*LEV, "user", "add", "szczecin", "--password-stdin"], server_env,
              stdin=PASSWORD + "\n")
    assert out == "created user szczecin; they can publish lev.szczecin.*\n"
    out = run([*LEV, "login", url, "--user", "szczecin", "--password-stdin"], client,
              stdin=PASSWORD + "\n")
    assert out.startswith(f"logged in to {url} as szczecin")
    credentials = json.loads((tmp_path / "client-home" / "credentials.json").read_text())
    token = credentials["servers"][url]["token"]
    # pip sends the credentials of an index URL as HTTP Basic auth, the token as password.
    index = f"http://__token__:{token}@{url.removeprefix('http://')}/simple/"

    out = run([*LEV, "publish", EXAMPLES / "szczecin.nmap_python"], client)
    assert out == (f"published lev.szczecin.nmap_python@1.0.0: {url}/api/packages/"
                   "lev.szczecin.nmap_python/1.0.0\n")
    assert 'href="lev-szczecin-nmap-python/"' in get(f"{url}/simple/", token).decode()
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        get(f"{url}/simple/")
    assert anonymous.value.code == 401

    # pip from the index alone, into a fresh environment; then import it there.
    python, purelib = fresh_venv(tmp_path / "venv1")
    run([python, "-m", "pip", "install", "--no-deps", "--index-url", index,
         "lev.szczecin.nmap_python"], client)
    assert installed(purelib) == ["lev_szczecin_nmap_python-1.0.0.dist-info"]
    probe = ("import json, lev.szczecin.nmap_python as m; "
             "print(json.dumps({'file': m.__file__, 'lev': m.__lev__}))")
    # cwd is the test folder, so the examples checkout cannot be what gets imported.
    seen = json.loads(run([python, "-c", probe], client, cwd=tmp_path))
    assert Path(seen["file"]).is_relative_to(purelib)
    manifest = get_json(f"{url}/api/packages/lev.szczecin.nmap_python/1.0.0", token)["manifest"]
    assert [(e["kind"], e["name"]) for e in seen["lev"]["exports"]] == [
        (e["kind"], e["name"]) for e in manifest["exports"]]
    assert [e["name"] for e in manifest["exports"]] == [
        "nmap_python", "alive_nmap_python", "port_os_nmap_python", "server_port"]
    # lev check of the installed package, by its import name.
    report = json.loads(run([python, "-m", "levrt", "check", "--json",
                             "lev.szczecin.nmap_python"], client, cwd=tmp_path))
    assert [p for p in report["problems"] if p["level"] == "error"] == []
    assert report["manifest"]["version"] == "1.0.0"
    assert [e["name"] for e in report["manifest"]["exports"]] == [
        e["name"] for e in manifest["exports"]]
    # And run its workflow from the installed package (nmap scans only 127.0.0.1).
    if shutil.which("nmap"):
        bundle = json.loads(run([python, "-m", "levrt", "run",
                                 "lev.szczecin.nmap_python.asset:alive_nmap_python",
                                 "--ip", "127.0.0.1", "--json", "-q"], client, cwd=tmp_path))
        assert bundle["job"]["status"] == "done" and bundle["result"] == ["127.0.0.1"]

    # lan_audit depends on nmap_python: lev install resolves that from the hub, while the
    # levrt requirement is met by the levrt already there. Nothing comes from elsewhere: the
    # main index is an empty folder, so the hub is reached only as lev install adds it, with
    # the token of lev login.
    out = run([*LEV, "publish", EXAMPLES / "szczecin.lan_audit"], client)
    assert out.startswith("published lev.szczecin.lan_audit@1.0.0")
    python, purelib = fresh_venv(tmp_path / "venv2")
    (tmp_path / "empty-index").mkdir()
    run([python, "-m", "levrt", "install", "lev.szczecin.lan_audit"],
        {**client, "PIP_INDEX_URL": (tmp_path / "empty-index").as_uri()})
    assert installed(purelib) == ["lev_szczecin_lan_audit-1.0.0.dist-info",
                                  "lev_szczecin_nmap_python-1.0.0.dist-info"]
    probe = ("import json, lev.szczecin.lan_audit as m; "
             "print(json.dumps([e['name'] for e in m.__lev__['exports']]))")
    assert json.loads(run([python, "-c", probe], client, cwd=tmp_path)) == [
        "open_services", "quick_check"]
    # lev check of lan_audit's sources alone (no sibling folders): what it imports of
    # nmap_python can only be the copy installed from the hub.
    alone = tmp_path / "szczecin.lan_audit"
    shutil.copytree(EXAMPLES / "szczecin.lan_audit", alone)
    report = json.loads(run([python, "-m", "levrt", "check", "--json", alone], client,
                            cwd=tmp_path))
    assert [e["name"] for e in report["manifest"]["exports"]] == ["open_services", "quick_check"]
    assert not [p for p in report["problems"] if p["level"] == "error"]
