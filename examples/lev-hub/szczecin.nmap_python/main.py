"""Local test of the package: scan this machine's loopback address with server_port.

    python main.py      # the job, its runs and documents also land in the store (LEV_HOME)
"""

from lev.szczecin.nmap_python import server_port

import levrt


async def main():
    hosts = await server_port("127.0.0.1")
    for host in hosts:
        open_ports = [f"{p['port']}/{p['protocol']} ({p['service'] or '?'})"
                      for p in host["ports"] if p["state"] == "open"]
        print(f"{host['host']}: open {', '.join(open_ports) or 'nothing'}")
    return hosts


if __name__ == "__main__":
    levrt.run(main())
