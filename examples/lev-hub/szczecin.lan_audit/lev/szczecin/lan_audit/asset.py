"""LAN audit workflows: they drive the nmap tool of lev.szczecin.nmap_python."""

from __future__ import annotations

from lev.szczecin.nmap_python import nmap_python as nmap

from levrt import Concurrent, annot, lev
from levrt.annot.cats import Attck, BlackArch

PORTS = annot.Param("ports", "Ports to scan, nmap syntax", regex=r"^[0-9TUSP:,\-]+$",
                    holder="22,80,443,8000-8100")


@annot.meta(
    desc="List the open services of every live host of a network",
    params=[annot.Param("ip", "Targets separated by blanks: addresses, ranges or CIDR blocks, "
                        "IPv4 or IPv6", holder="127.0.0.1/32 ::1"), PORTS],
    cats=[Attck.Discovery, BlackArch.Scanner, BlackArch.Recon],
)
async def open_services(ip: str, ports: str | None = None) -> list[str]:
    """
    Find the live hosts, scan them all, and list their open services as
    ``host:port/service`` strings, IPv6 hosts in brackets (``[::1]:22/ssh``); also stored as
    ``services`` on the job's document.
    ```
    await open_services("127.0.0.1/32")
    ```
    """
    alive = (await (await nmap.alive(ip)).get())["alive"]
    async with Concurrent(limit=8) as c:
        tasks = [c.start(nmap.port_os(host, ports)) for host in alive]
    services = []
    for host, task in zip(alive, tasks, strict=True):
        data = await (await task).get()
        address = f"[{host}]" if ":" in host else host  # [::1]:22, as in a URL
        for port in data["ports"]:
            if port["state"] == "open":
                services.append(f"{address}:{port['port']}/{port['service'] or 'unknown'}")
    for service in services:
        print(service)
    await lev.doc.set(services=services)
    return services


@annot.meta(
    desc="Check quickly which of the given ports of one host are open",
    params=[annot.Param("ip", "The host to check, IPv4 or IPv6", holder="127.0.0.1"), PORTS],
    cats=[Attck.Discovery, BlackArch.Scanner],
)
async def quick_check(ip: str, ports: str) -> dict[str, str]:
    """
    A TCP connect scan of the given ports, without service or OS detection:
    returns ``{"<port>/<protocol>": state}`` for the ports nmap lists.
    ```
    await quick_check("127.0.0.1", "22,80,443")
    ```
    """
    # The raw mode keeps this fast (no -sV, no -O) and the tool's own helpers build the target
    # arguments (-6 for an IPv6 address) and read the XML output.
    doc = await nmap.raw(["-sT", "-Pn", *nmap.FAST, "-p", ports, *nmap.XML_OUT,
                          *nmap.one_target(ip)])
    xml_text = (await doc.get())["stdout"]
    states = {f"{p['port']}/{p['protocol']}": p["state"] for p in nmap.parse_ports(xml_text)}
    for port, state in states.items():
        print(f"{ip}:{port} {state}")
    return states
