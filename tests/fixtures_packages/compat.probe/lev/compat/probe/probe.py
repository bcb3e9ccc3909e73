"""
probe looks at hosts the way the multi-mode nmap chapter does, with Python alone:
a raw mode, an alive mode, and a port_os mode kept off the platform for now.
"""
from levrt import Cr, ctx, remote, annot
from levrt.annot.cats import Attck, BlackArch

IMAGE = "localhost/lev-base:bookworm"


@annot.meta(desc="probe raw invocation", params=[annot.ARGV])
def raw(argv: list[str]) -> Cr:
    """
    probe raw invocation: echoes its arguments
    ```
    await probe.raw(["-PE", "-sn", "127.0.0.1"])
    ```
    """
    @remote
    def entry(argv):
        import subprocess
        output = subprocess.check_output(["echo", *argv], text=True)
        data = {"result": output}
        ctx.update(data)

    return Cr(IMAGE, "compat/probe.raw@1.0", entry=entry(argv), host=True)


@annot.meta(desc="probe: is the host there", params=[annot.Param("ip", "target ip to look up", holder="127.0.0.1")])
def alive(ip: str) -> Cr:
    """
    probe resolves the target and reports it alive
    ```
    await probe.alive("127.0.0.1")
    ```
    """
    @remote
    def entry(ip):
        import socket
        ip_alive = {"target": ip, "alive": [socket.gethostbyname(ip)]}
        ctx.update(ip_alive)

    return Cr(IMAGE, "compat/probe.alive@1.0", entry=entry(ip), host=True)


@annot.meta(desc="probe SYN scan of ports and OS", params=[annot.Param("ip", "target ip", holder="127.0.0.1")])
def port_os(ip: str) -> Cr:
    """
    not exported yet
    ```
    await probe.port_os("127.0.0.1")
    ```
    """
    @remote
    def entry(ip):
        ctx.update({"ip": ip, "status": False})

    return Cr(IMAGE, "compat/probe.port_os@1.0", entry=entry(ip), host=True)


__lev__ = annot.meta([raw, alive],
                     desc="probe-update",
                     cats={
                         Attck: [Attck.Reconnaissance],
                         BlackArch: [BlackArch.Scanner]
                     })
