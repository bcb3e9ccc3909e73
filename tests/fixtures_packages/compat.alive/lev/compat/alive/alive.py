# The following content is an introduction to the tool and cannot be omitted
"""
alive finds out whether a host answers, as the modeless chapter's nmap does,
with Python alone so that it runs in any image that has python3.
"""
from levrt import Cr, ctx, remote, annot
from levrt.annot.cats import Attck, BlackArch


@annot.meta(desc="ICMP-like look at whether a host is alive", params=[annot.Param("ip", "target ip to check", holder="127.0.0.1") ],
            cats={Attck: [Attck.Discovery], BlackArch: [BlackArch.Recon]}, tags=["alive"])
def alive(ip: str) -> Cr:
    """
    looks up the host and reports it alive
    ```
    await alive("127.0.0.1")
    ```
    """
    @remote
    def entry(ip):
        import socket
        ip_alive = {
            'target': ip,
            'alive': []
            }
        ip_alive['alive'].append(socket.gethostbyname(ip))
        ctx.update(ip_alive)
    return Cr("localhost/lev-base:bookworm", "compat/alive.alive@1.0", entry=entry(ip), host=True)
