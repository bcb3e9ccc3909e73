"""
checker: stands in for a DMARC checker; computes, contacts nobody.
"""
import time

from levrt import Cr, ctx, remote, annot
from levrt.annot.cats import Attck

IMAGE = "localhost/lev-base:bookworm"


@annot.meta(desc="DMARC record of a domain", params=[annot.Param("domain", "domain to check", holder="example.org")],
            cats=[Attck.Reconnaissance])
def dmarc(domain: str) -> Cr:
    """
    Checks the DMARC record of a domain (here: makes one up).
    ```
    await checker.dmarc("example.org")
    ```
    """
    @remote
    def entry():
        ctx.set(domain=domain, record=f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}")

    return Cr(IMAGE, "compat/checker.dmarc@1.0", entry=entry())


@annot.meta(desc="a long check", params=[annot.Param("domain", "domain to check")])
def slow(domain: str, seconds: float = 0.5) -> Cr:
    """
    Takes its time.
    ```
    await checker.slow("example.org")
    ```
    """
    @remote
    def entry():
        ctx.set(domain=domain, started=True)
        time.sleep(seconds)
        ctx.set(finished=True)

    return Cr(IMAGE, "compat/checker.slow@1.0", entry=entry())
