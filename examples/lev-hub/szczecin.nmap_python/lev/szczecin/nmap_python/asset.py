"""Workflows over the nmap tool: live hosts first, then ports, services and OS of each."""

from __future__ import annotations

from levrt import Concurrent, annot, lev
from levrt.annot.cats import Attck, BlackArch

from . import nmap_python as nmap

IP = annot.Param("ip", "Targets separated by blanks: addresses, ranges or CIDR blocks, "
                 "IPv4 or IPv6", holder="127.0.0.1/32 ::1")
PORTS = annot.Param("ports", "Ports to scan on each host, nmap syntax (default: top 1000)",
                    regex=r"^[0-9TUSP:,\-]+$", holder="22,80,443,8000-8100")


@annot.meta(
    desc="Detect the live hosts of a network and the open ports, services and OS of each",
    params=[IP, PORTS],
    cats=[Attck.Reconnaissance, Attck.Discovery, BlackArch.Scanner, BlackArch.Recon],
)
async def server_port(ip: str, ports: str | None = None) -> list[dict]:
    """
    Detect the live hosts of a network, then scan each one's ports, services and OS.
    Returns one ``port_os`` result (host, ports, os) per live host.
    ```
    await server_port("127.0.0.1/32")
    ```
    """
    # First sweep the whole range for the hosts that answer.
    result = await nmap.alive(ip)
    data = await result.get()
    alive = data["alive"]
    print(f"{len(alive)} live host(s) in {ip}: {', '.join(alive) or 'none'}")
    os_result = []
    task_list = []
    # Then scan every live host at once, at most 8 nmap processes at a time.
    async with Concurrent(limit=8) as c:
        for domain in alive:
            task_list.append(c.start(nmap.port_os(domain, ports)))
    # Collect the results in the order of the hosts.
    open_ports = []
    for t in task_list:
        t_result = await t
        data = await t_result.get()
        os_result.append(data)
        if not any(port["state"] == "open" for port in data["ports"]):
            print(f"{data['host']}: no open ports in {ports or 'nmap top 1000 ports'}")
        for port in data["ports"]:
            if port["state"] == "open":
                print(f"{data['host']}:{port['port']}/{port['protocol']} open "
                      f"{port['service']} {port['product']} {port['version']}".rstrip())
                open_ports.append({"host": data["host"], **port})
        if data["os"]:
            print(f"{data['host']}: OS {data['os'][0]}")
    await lev.doc.set(hosts=alive, open_ports=open_ports)
    return os_result


@annot.meta(
    desc="Find the live hosts of a network",
    params=[IP],
    cats=[Attck.Reconnaissance, Attck.Discovery, BlackArch.Scanner],
)
async def alive_nmap_python(ip: str) -> list[str]:
    """
    Find the live hosts of a network; returns their addresses.
    ```
    await alive_nmap_python("127.0.0.1/32")
    ```
    """
    doc = await nmap.alive(ip)
    alive = (await doc.get())["alive"]
    print(f"{len(alive)} live host(s): {', '.join(alive) or 'none'}")
    return alive


@annot.meta(
    desc="Scan one host's ports, services and OS",
    params=[annot.Param("ip", "The host to scan, IPv4 or IPv6", holder="127.0.0.1"), PORTS],
    cats=[Attck.Reconnaissance, Attck.Discovery, BlackArch.Scanner, BlackArch.Fingerprint],
)
async def port_os_nmap_python(ip: str, ports: str | None = None) -> list[dict]:
    """
    Scan one host; returns its ports (port, protocol, state, service, product, version).
    ```
    await port_os_nmap_python("127.0.0.1", "22,80,8080")
    ```
    """
    doc = await nmap.port_os(ip, ports)
    data = await doc.get()
    for port in data["ports"]:
        print(f"{ip}:{port['port']}/{port['protocol']} {port['state']} {port['service']}")
    return data["ports"]
