"""Network namespaces made by a test (iproute2: ``ip netns``, veth pairs), removed at the end.

Each namespace is joined to the host by a veth pair of its own, addressed in a private /30
of 10.213.0.0/16 that nothing on the host uses (host side ``.1``, namespace side ``.2``), with
its loopback up. The *hub* is the host side of the lab's first pair: every namespace has a
route to it alone, so a server bound there is reachable from all of them and they reach
nothing else of the host (nor each other). Needs root and ``ip``.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

POOL = ipaddress.ip_network("10.213.0.0/16")
NETNS_DIR = Path("/run/netns")
RELAY = Path(__file__).resolve().parent.parent / "scripts" / "tcp_relay.py"


def _ip(*argv: str, netns: str | None = None) -> str:
    command = ["ip", *argv] if netns is None else ["ip", "netns", "exec", netns, "ip", *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def missing() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "iproute2's ip (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "root, for ip netns"
    return None


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    used = []
    for line in _ip("-4", "-o", "addr", "show").splitlines():
        used.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in _ip("-4", "route", "show", "table", "all").splitlines():
        first = line.split()[0]
        if first[0].isdigit():
            used.append(ipaddress.ip_network(first, strict=False))
    return used


@dataclass
class Netns:
    """One namespace: ``name`` (for ``ip netns exec``), ``ip`` inside, ``host_ip`` on the
    host's end of its veth pair."""

    name: str
    ip: str
    host_ip: str
    host_link: str

    def argv(self, *command: str) -> list[str]:
        """``command`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def inode(self) -> int:
        """The namespace's identity, as ``/proc/PID/ns/net`` of a process in it shows."""
        return (NETNS_DIR / self.name).stat().st_ino


class NetnsLab:
    """The namespaces of one test: :meth:`add` makes one, :meth:`close` removes them all."""

    def __init__(self) -> None:
        self._tag = f"{os.getpid() % 100000}{random.randrange(100):02d}"
        self.namespaces: list[Netns] = []

    @property
    def hub(self) -> str:
        """The host's address every namespace of the lab reaches (made with the first)."""
        return self.namespaces[0].host_ip

    def _free_subnet(self) -> ipaddress.IPv4Network:
        used = _networks_in_use()
        candidates = list(POOL.subnets(new_prefix=30))
        random.shuffle(candidates)
        for subnet in candidates:
            if not any(subnet.overlaps(other) for other in used):
                return subnet
        raise RuntimeError(f"no free /30 left in {POOL}")

    def add(self) -> Netns:
        index = len(self.namespaces)
        name, host_link, inner_link = (f"levt{self._tag}n{index}", f"lvh{self._tag}{index}",
                                       f"lvn{self._tag}{index}")
        subnet = self._free_subnet()
        host_ip, inner_ip = (str(address) for address in list(subnet.hosts())[:2])
        _ip("netns", "add", name)
        netns = Netns(name, inner_ip, host_ip, host_link)
        self.namespaces.append(netns)
        _ip("link", "add", host_link, "type", "veth", "peer", "name", inner_link,
            "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_link)
        _ip("link", "set", host_link, "up")
        _ip("link", "set", "lo", "up", netns=name)
        _ip("addr", "add", f"{inner_ip}/30", "dev", inner_link, netns=name)
        _ip("link", "set", inner_link, "up", netns=name)
        if index:
            _ip("route", "add", f"{self.hub}/32", "via", host_ip, netns=name)
        return netns

    def close(self) -> None:
        """Remove every namespace and veth pair made (a pair goes with either end)."""
        for netns in reversed(self.namespaces):
            subprocess.run(["ip", "link", "del", netns.host_link], capture_output=True)
            subprocess.run(["ip", "netns", "del", netns.name], capture_output=True)
        self.namespaces.clear()


class Relay:
    """``scripts/tcp_relay.py`` from ``listen_ip`` (a free port: :attr:`address`) to
    ``target`` (``HOST:PORT``), so the namespaces reach a server that listens on the host's
    loopback only (Temporal's dev server cannot serve on another address alone)."""

    def __init__(self, listen_ip: str, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._process = subprocess.Popen(
            [sys.executable, str(RELAY), listen_ip, "0", host, port], stdout=subprocess.PIPE,
            text=True)
        assert self._process.stdout is not None
        self.address = f"{listen_ip}:{self._process.stdout.readline().strip()}"

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(10)
