"""Searches a corpus; its parameters share names with lev run's options.
Type: IMAGE-BASED
Version: v1.0.0
"""

from levrt import Cr, annot, ctx, remote

IMAGE = "localhost/lev-base:bookworm"


@annot.meta(desc="Search", params=[annot.Param("name", "corpus to search")])
def search(name: str = "default", json: bool = False, quiet: int = 0,
           executor: str = "none") -> Cr:
    """Echoes its parameters.
    ```
    await search(name="corpus")
    ```
    """

    @remote
    def entry():
        ctx.set(name=name, json=json, quiet=quiet, executor=executor)

    return Cr(IMAGE, entry=entry())
