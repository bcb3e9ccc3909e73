"""Nmap ("Network Mapper"), the network discovery and security auditing scanner.
Finds live hosts, their open ports, the services and versions behind them, and the OS.
Homepage: https://nmap.org
GitHub: https://github.com/nmap/nmap
Type: IMAGE-BASED
Version: v7.93
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

from levrt import Cr, annot, ctx, remote
from levrt.annot.cats import Attck, BlackArch

# Everything below up to the modes runs inside the run's sandbox: the entries reference these
# constants and helpers, so they travel with the entry as source. The helpers therefore stay
# plain module-level functions, unannotated: the image's python3 (3.7+ is enough) runs them
# without this module's `from __future__ import annotations`.

#: the scanner binary, looked up on PATH inside the image
NMAP = "nmap"
#: XML on stdout: the machine-readable format nmap keeps stable across versions
XML_OUT = ["-oX", "-"]
#: aggressive timing and one retry: loopback and LAN targets answer fast, lost probes are rare
FAST = ["-T4", "--max-retries", "1"]
#: OS detection sends raw packets, so it needs raw sockets; one try names the OS and saves ~10 s
OS_DETECTION = ["-O", "--max-os-tries", "1"]
#: without raw sockets (not root, or a container without CAP_NET_RAW) nmap must connect()
CONNECT_SCAN = ["-sT", "--unprivileged"]


#: what nmap prints on stderr when it scanned no address at all, whatever the output format
NOTHING_SCANNED = "0 hosts scanned"


def run_nmap(argv):
    """Run nmap with ``argv``: its stdout is returned, its stderr goes to the run's log.

    When nmap scanned no target at all (a name that does not resolve, an IPv6 address without
    -6, an empty list) it still exits 0; the run fails instead, with nmap's own words, since an
    empty result would read as "no host is up".
    """
    if shutil.which(NMAP) is None:
        sys.exit(f"{NMAP} is not on PATH in this image; install it (apt-get install nmap)")
    proc = subprocess.run([NMAP, *argv], capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    if NOTHING_SCANNED in proc.stderr:
        raise RuntimeError("nmap scanned no target: " + " ".join(proc.stderr.split()))
    return proc


def scan_xml(argv):
    """Run nmap with XML output; the run fails with nmap's exit code when nmap does."""
    proc = run_nmap(XML_OUT + argv)
    if proc.returncode != 0:
        sys.exit(proc.returncode)  # nmap's own message is already in the log (its stderr)
    return proc.stdout


def target_groups(ip):
    """The nmap argv tails that scan the targets in ``ip`` (separated by blanks), one per call.

    nmap scans IPv6 targets only with -6, and then nothing else, so a list holding both takes
    two calls: IPv4 addresses, ranges and host names in one, IPv6 addresses and CIDR blocks
    (anything with a ":") in the other. Raises ValueError when ``ip`` holds no target.
    """
    targets = ip.split()
    if not targets:
        raise ValueError("no target given: an address, a range or a CIDR block is needed")
    ipv4 = [t for t in targets if ":" not in t]
    ipv6 = [t for t in targets if ":" in t]
    # "--" ends the options: a target beginning with "-" cannot turn into an nmap flag.
    return ([["--"] + ipv4] if ipv4 else []) + ([["-6", "--"] + ipv6] if ipv6 else [])


def one_target(ip):
    """The nmap argv tail that scans the one target ``ip``; ValueError for none or several."""
    if len(ip.split()) != 1:
        raise ValueError(f"give one host to scan (an IPv4 or IPv6 address or name), not {ip!r}")
    return target_groups(ip)[0]


def raw_sockets():
    """Whether raw packets can be sent here: root is not enough in a container without NET_RAW."""
    import socket

    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except OSError:
        return False
    return True


def port_os_argv(ip, ports=None, root=False):
    """The nmap argv of the ``port_os`` mode (a function so that it can be tested anywhere)."""
    argv = ["-sV"] + FAST + (OS_DETECTION if root else CONNECT_SCAN)
    if ports:
        argv += ["-p", ports]
    return argv + one_target(ip)


def host_address(host):
    """The IP address of a ``<host>`` element (not its MAC address), or None."""
    for address in host.findall("address"):
        if address.get("addrtype") in ("ipv4", "ipv6"):
            return address.get("addr")
    return None


def up_hosts(xml_text):
    """The ``<host>`` elements nmap reported as up, in scan order."""
    return [host for host in ET.fromstring(xml_text).iter("host")
            if host.find("status[@state='up']") is not None]


def parse_alive(xml_text):
    """Addresses of the hosts that are up."""
    found = []
    for host in up_hosts(xml_text):
        address = host_address(host)
        if address and address not in found:
            found.append(address)
    return found


def parse_ports(xml_text):
    """The ports nmap listed for the first host that is up, one dict per port."""
    hosts = up_hosts(xml_text)
    ports = []
    for port in hosts[0].iter("port") if hosts else []:
        state = port.find("state")
        service = port.find("service")
        ports.append({
            "port": int(port.get("portid")),
            "protocol": port.get("protocol", ""),
            "state": state.get("state", "") if state is not None else "",
            "service": service.get("name", "") if service is not None else "",
            "product": service.get("product", "") if service is not None else "",
            "version": service.get("version", "") if service is not None else "",
        })
    return ports


def parse_os(xml_text):
    """Names of the OS matches for the first host that is up, best first."""
    hosts = up_hosts(xml_text)
    if not hosts:
        return []
    return [match.get("name") for match in hosts[0].iter("osmatch") if match.get("name")]


# -- modes ------------------------------------------------------------------------------------


@annot.meta(
    desc="Run nmap with raw command-line arguments",
    params=[annot.ARGV],
    cats=[Attck.Reconnaissance, Attck.Discovery, BlackArch.Scanner, BlackArch.Recon],
)
def raw(argv: list[str]) -> Cr:
    """Run nmap with the given arguments; stores its stdout text and exit code.

    The run fails (``levrt.TaskFailed``) when nmap exits non-zero or scanned no target.
    IPv6 targets need ``-6`` here, as on nmap's command line.
    ```
    await nmap_python.raw(["-sn", "127.0.0.1"])
    ```
    """
    if not isinstance(argv, (list, tuple)) or not all(isinstance(a, str) for a in argv):
        raise TypeError(f"argv must be a list of str, not {argv!r}")
    argv = list(argv)

    @remote
    def entry():
        proc = run_nmap(argv)
        print(proc.stdout, end="")  # also in the run's log, where the user watches it
        ctx.set(stdout=proc.stdout, returncode=proc.returncode)
        if proc.returncode != 0:
            sys.exit(proc.returncode)

    return Cr("localhost/lev-nmap:latest", "szczecin/nmap.raw@1.0", host=True, entry=entry())


@annot.meta(
    desc="Find the live hosts of a network with an nmap ping sweep",
    params=[annot.Param("ip", "Targets separated by blanks: addresses, ranges or CIDR blocks, "
                        "IPv4 or IPv6", holder="127.0.0.1/32 ::1")],
    cats=[Attck.Reconnaissance, Attck.Discovery, BlackArch.Scanner, BlackArch.Recon],
    keys=["alive"],
)
def alive(ip: str) -> Cr:
    """Find live hosts (``nmap -sn``); stores ``alive``: the addresses that answered.

    ``ip`` may list several targets separated by blanks, IPv4 and IPv6 mixed (one nmap call
    per address family). Raises ValueError when it lists none; the run fails when nmap
    scanned no target (a name that does not resolve).
    ```
    await nmap_python.alive("127.0.0.1 ::1")
    ```
    """
    groups = target_groups(ip)

    @remote
    def entry():
        hosts = []
        for targets in groups:
            hosts += parse_alive(scan_xml(["-sn"] + targets))
        print(f"{len(hosts)} host(s) up: {' '.join(hosts)}")
        ctx.set(alive=hosts)

    return Cr("localhost/lev-nmap:latest", "szczecin/nmap.alive@1.0", host=True, entry=entry())


@annot.meta(
    desc="Scan one host's ports, identify their services and versions, and guess its OS",
    params=[
        annot.Param("ip", "The host to scan, IPv4 or IPv6", holder="127.0.0.1"),
        annot.Param("ports", "Ports to scan, nmap syntax (default: nmap's top 1000)",
                    regex=r"^[0-9TUSP:,\-]+$", holder="22,80,443,8000-8100"),
    ],
    cats=[Attck.Reconnaissance, Attck.Discovery, BlackArch.Scanner, BlackArch.Fingerprint],
    # A row per port (levrt.rows): the same host, port and protocol in two jobs is one port.
    keys=["host", "port", "protocol"],
)
def port_os(ip: str, ports: str | None = None) -> Cr:
    """Scan ports with service detection (``nmap -sV``), plus OS detection when run as root.

    Stores ``host``, ``ports`` (port, protocol, state, service, product, version) and
    ``os`` (OS match names, best first; empty without root). ``ip`` is one target (IPv4 or
    IPv6); ValueError otherwise.
    ```
    await nmap_python.port_os("127.0.0.1", "22,80,8080")
    ```
    """
    one_target(ip)  # a bad target fails here, before any run

    @remote
    def entry():
        # Decided in the sandbox, not on the host: what counts is where nmap runs.
        root = raw_sockets()
        xml_text = scan_xml(port_os_argv(ip, ports, root))
        found = parse_ports(xml_text)
        for port in found:
            if port["state"] == "open":
                print(f"{ip}:{port['port']}/{port['protocol']} {port['service']} "
                      f"{port['product']} {port['version']}".rstrip())
        ctx.set(host=ip, ports=found, os=parse_os(xml_text))

    return Cr("localhost/lev-nmap:latest", "szczecin/nmap.port_os@1.0", host=True, entry=entry())
