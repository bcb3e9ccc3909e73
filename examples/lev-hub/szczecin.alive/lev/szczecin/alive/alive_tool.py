"""Live host discovery with an nmap ping sweep.
A single-mode tool: the platform shows it with the alive() form and nothing else.
Homepage: https://nmap.org
GitHub: https://github.com/nmap/nmap
Type: IMAGE-BASED
Version: v7.93
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

from levrt import Cr, annot, ctx, remote
from levrt.annot.cats import Attck, BlackArch


def up_addresses(xml_text):
    """IP addresses of the hosts nmap's XML report lists as up (runs in the sandbox)."""
    found = []
    for host in ET.fromstring(xml_text).iter("host"):
        if host.find("status[@state='up']") is None:
            continue
        for address in host.findall("address"):
            # A LAN scan also reports MAC addresses; the result is about IPs.
            if address.get("addrtype") in ("ipv4", "ipv6") and address.get("addr") not in found:
                found.append(address.get("addr"))
    return found


@annot.meta(
    desc="Find the live hosts of a network",
    params=[annot.Param("ip", "Targets separated by blanks: addresses, ranges or CIDR blocks, "
                        "IPv4 or IPv6", holder="127.0.0.1/32 ::1")],
    cats=[Attck.Reconnaissance, Attck.Discovery, BlackArch.Scanner, BlackArch.Recon],
)
def alive(ip: str) -> Cr:
    """Find live hosts (``nmap -sn``); stores ``alive``: the addresses that answered.

    Raises ValueError when ``ip`` holds no target; the run fails when nmap scanned none
    (a name that does not resolve).
    ```
    await alive("127.0.0.1 ::1")
    ```
    """
    targets = ip.split()
    if not targets:
        raise ValueError("no target given: an address, a range or a CIDR block is needed")
    # nmap scans IPv6 targets only with -6, and then nothing else: one call per address family.
    ipv4 = [t for t in targets if ":" not in t]
    ipv6 = [t for t in targets if ":" in t]
    calls = []
    if ipv4:
        calls.append(["--"] + ipv4)
    if ipv6:
        calls.append(["-6", "--"] + ipv6)

    @remote
    def entry():
        hosts = []
        for argv in calls:
            proc = subprocess.run(["nmap", "-sn", "-T4", "-oX", "-", *argv],
                                  capture_output=True, text=True)
            sys.stderr.write(proc.stderr)  # nmap's messages stay in the run's log
            if proc.returncode != 0:
                sys.exit(proc.returncode)
            # nmap exits 0 when no target resolved: an empty result would read as "none is up"
            if "0 hosts scanned" in proc.stderr:
                raise RuntimeError("nmap scanned no target: " + " ".join(proc.stderr.split()))
            hosts += up_addresses(proc.stdout)
        print(f"{len(hosts)} host(s) up: {' '.join(hosts)}")
        ctx.set(alive=hosts)

    return Cr("localhost/lev-nmap:latest", "szczecin/alive@1.0", entry=entry())
