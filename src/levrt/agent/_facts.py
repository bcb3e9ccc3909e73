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
from levrt.executors.docker import engine_facts

# Tools packages commonly wrap, looked for on PATH; the server shows which ones a device has.
TOOLS = ("nmap", "masscan", "zmap", "naabu", "nuclei", "fscan", "wpscan", "sqlmap", "hydra",
         "nikto", "ffuf", "gobuster", "dirsearch", "subfinder", "amass", "httpx", "whatweb",
         "python3", "bwrap", "podman", "docker")


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
