"""Hashes the bytes it is given, in a container.
Type: IMAGE-BASED
Version: v1.0.0
"""

from levrt import Cr, annot, ctx, remote

IMAGE = "localhost/lev-base:bookworm"


@annot.meta(desc="Hash some bytes", params=[annot.Param("data", "the bytes to hash")])
def digest(data: bytes) -> Cr:
    """Stores ``sha256``, ``size`` and ``head`` (the first 8 bytes).
    ```
    await digest(b"abc")
    ```
    """

    @remote
    def entry():
        import hashlib
        ctx.set(sha256=hashlib.sha256(data).hexdigest(), size=len(data), head=data[:8])

    return Cr(IMAGE, entry=entry())
