"""The container engine and the local test images (scripts/engine.sh, images/build-all.sh).

These run when a Docker-API engine answers (DOCKER_HOST, else /run/podman.sock) and skip
otherwise; under CI they fail instead of skipping, since CI sets the engine up.
"""

import os
import uuid
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
PODMAN_SOCK = Path("/run/podman.sock")

NOPYTHON = "localhost/lev-nopython:bookworm"
BASE = "localhost/lev-base:bookworm"
NMAP = "localhost/lev-nmap:latest"
NMAP_TEST = "localhost/lev-nmap:test"
PY39 = "localhost/lev-py39:bullseye"
BUSYBOX = "localhost/lev-busybox:static"
IMAGES = [NOPYTHON, BASE, NMAP, NMAP_TEST, PY39, BUSYBOX]

HOW = "run 'bash scripts/engine.sh' as root (it starts podman's API service and builds the images)"


def _unavailable(why: str):
    if IN_CI:
        pytest.fail(f"CI is set but {why}: {HOW}")
    pytest.skip(f"{why} ({HOW})")


@pytest.fixture(scope="module")
def engine():
    try:
        import docker
    except ImportError:
        _unavailable("the docker package is not installed (pip install docker)")
    url = os.environ.get("DOCKER_HOST") or (
        f"unix://{PODMAN_SOCK}" if PODMAN_SOCK.exists() else None)
    if url is None:
        _unavailable("no container engine: DOCKER_HOST is unset and /run/podman.sock is missing")
    try:
        client = docker.DockerClient(base_url=url, timeout=120)
        client.ping()
    except Exception as exc:
        _unavailable(f"the container engine at {url} does not answer ({exc})")
    yield client
    client.close()


def run(engine, image: str, *command: str, **kwargs) -> str:
    """Runs a command in a throwaway container (no network unless asked) and returns its output.

    Not `containers.run(..., remove=True)`: against podman 4.3 that loses the end of the output
    in about a third of the runs (docker-py follows the log stream, which podman closes when the
    container exits, before the last lines are read). Waiting, then reading the logs, is exact.
    """
    if "network" not in kwargs:
        kwargs.setdefault("network_mode", "none")
    container = engine.containers.run(image, list(command), detach=True, **kwargs)
    try:
        status = container.wait(timeout=120)["StatusCode"]
        out = container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert status == 0, f"{command} in {image} exited with {status}: {out}"
    return out


@pytest.mark.parametrize("image", IMAGES)
def test_image_exists(engine, image):
    import docker

    try:
        engine.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{image} is missing: build it with images/build-all.sh")


@pytest.mark.parametrize("image", [NMAP, NMAP_TEST])
def test_nmap_image_has_python3_and_nmap(engine, image):
    out = run(engine, image, "sh", "-c", "python3 --version && nmap --version")
    assert "Python 3.11" in out
    assert "Nmap version 7.93" in out


def test_base_image_has_python3(engine):
    assert run(engine, BASE, "python3", "-c", "print('ok')").strip() == "ok"


def test_py39_image_has_python_3_9(engine):
    out = run(engine, PY39, "python3", "-c", "import sys; print(sys.version_info[:2])")
    assert out.strip() == "(3, 9)"


def test_nopython_image_has_no_python3(engine):
    out = run(engine, NOPYTHON, "sh", "-c",
              "command -v python3 python3.11 python; ls /usr/bin | grep -c '^python' || true")
    assert out.strip() == "0"


def test_busybox_image_has_only_a_static_busybox(engine):
    out = run(engine, BUSYBOX, "sh", "-c",
              "ls /lib /lib64 /usr 2>&1; command -v python3 || echo none")
    assert out.count("No such file or directory") == 3 and out.strip().endswith("none")


def test_nmap_scans_loopback_with_host_network(engine):
    out = run(engine, NMAP, "nmap", "-sn", "127.0.0.1", network_mode="host")
    assert "Host is up" in out
    assert "1 host up" in out


def test_user_network_alias_reaches_other_container(engine):
    """What `services`/`links` need: a user-defined network where a container is found by alias."""
    name = f"lev-test-{uuid.uuid4().hex[:10]}"
    labels = {"lev.test": name}
    net = engine.networks.create(name, driver="bridge", labels=labels)
    server = None
    try:
        server = engine.containers.create(
            BASE, ["python3", "-m", "http.server", "8080"], labels=labels, network=name,
            networking_config={name: engine.api.create_endpoint_config(aliases=["websvc"])})
        server.start()
        fetch = ("import time, urllib.request\n"
                 "for _ in range(50):\n"
                 "    try:\n"
                 "        print(urllib.request.urlopen('http://websvc:8080/', timeout=2).status)\n"
                 "        break\n"
                 "    except OSError:\n"
                 "        time.sleep(0.1)\n")
        assert run(engine, BASE, "python3", "-c", fetch, network=name,
                   labels=labels).strip() == "200"
    finally:
        if server is not None:
            server.remove(force=True)
        net.remove()
