"""What an agent tells the server about its machine: the executors its runs can use, the
images its container engine holds, tool binaries on its PATH, cores, memory, levrt version."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from levrt import __version__

# Tools packages commonly wrap, looked for on PATH; the server shows which ones a device has.
TOOLS = ("nmap", "masscan", "zmap", "naabu", "nuclei", "fscan", "wpscan", "sqlmap", "hydra",
         "nikto", "ffuf", "gobuster", "dirsearch", "subfinder", "amass", "httpx", "whatweb",
         "python3", "bwrap", "podman", "docker")
# A heartbeat carries at most this many image references.
MAX_IMAGES = 1000


def _memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 0


def engine_facts(engine: str) -> dict[str, Any]:
    """What the container engine at ``engine`` (a Docker API URL) is and holds:
    ``engine_version`` (``"Podman Engine 5.4.2"``, empty when it does not say) and its tagged
    ``images`` (at most :data:`MAX_IMAGES`; none when it does not answer). Blocking."""
    import docker

    try:
        client = docker.DockerClient(base_url=engine, timeout=10)
        try:
            about = client.version()
            tags = {tag for image in client.images.list() for tag in image.tags}
        finally:
            client.close()
    except docker.errors.DockerException:
        return {"engine_version": "", "images": []}
    names = [part.get("Name", "") for part in about.get("Components") or []]
    product = next((name for name in names if name), "Docker Engine")
    version = f"{product} {about.get('Version', '')}".strip()
    return {"engine_version": version, "images": sorted(tags)[:MAX_IMAGES]}


def _tool(name: str) -> str | None:
    """Where the tool ``name`` is on PATH, leaving out the agent's own virtualenv: its
    ``httpx`` is the Python library's command, not ProjectDiscovery's scanner."""
    own = Path(sys.prefix) / "bin"
    path = os.pathsep.join(folder for folder in os.environ.get("PATH", "").split(os.pathsep)
                           if sys.prefix == sys.base_prefix or Path(folder) != own)
    return shutil.which(name, path=path)


def gather_facts() -> dict[str, Any]:
    """This machine's facts (the server's ``Facts`` shape). Blocking: asks the container
    engine, if one answers, for its version and images."""
    from levrt.executors.docker import engine_url
    from levrt.executors.sandbox import bwrap

    engine = engine_url()
    executors = (["docker"] if engine else []) + (["process"] if bwrap() else [])
    tools = {name: path for name in TOOLS if (path := _tool(name))}
    held = engine_facts(engine) if engine else {"engine_version": "", "images": []}
    return {"executors": executors, "engine": engine or "", **held, "tools": tools,
            "cores": _cores(), "memory": _memory(), "version": __version__,
            "hostname": socket.gethostname()}
