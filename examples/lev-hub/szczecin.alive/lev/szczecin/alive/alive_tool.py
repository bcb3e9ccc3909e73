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
    params=[annot.Param("ip", "Targets: an address, a range or a CIDR block",
                        holder="127.0.0.1/32")],
    cats=[Attck.Reconnaissance, Attck.Discovery, BlackArch.Scanner, BlackArch.Recon],
)
def alive(ip: str) -> Cr:
    """Find live hosts (``nmap -sn``); stores ``alive``: the addresses that answered.
    ```
    await alive("127.0.0.1")
    ```
    """

    @remote
    def entry():
        proc = subprocess.run(["nmap", "-sn", "-T4", "-oX", "-", "--", ip],
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            sys.exit(proc.returncode)  # nmap's message is already in the log (its stderr)
        hosts = up_addresses(proc.stdout)
        print(f"{len(hosts)} host(s) up: {' '.join(hosts)}")
        ctx.set(alive=hosts)

    return Cr("localhost/lev-nmap:latest", "szczecin/alive@1.0", entry=entry())
