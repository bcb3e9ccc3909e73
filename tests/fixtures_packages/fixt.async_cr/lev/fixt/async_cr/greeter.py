"""Greets in a container; its mode is an async function that returns a Cr.
Type: IMAGE-BASED
Version: v1.0.0
"""

from levrt import Cr, annot, ctx, remote

IMAGE = "localhost/lev-base:bookworm"


@annot.meta(desc="Greet", params=[annot.Param("who", "whom to greet")])
async def greet(who: str = "there") -> Cr:
    """Sets ``msg``.
    ```
    await greet("you")
    ```
    """

    @remote
    def entry():
        ctx.set(msg=f"hey {who}")

    return Cr(IMAGE, entry=entry())
