"""Workflows that end with exit() or sys.exit(code)."""

import sys

from levrt import annot, lev


@annot.meta(desc="Set the job's document, then exit",
            params=[annot.Param("code", "exit code (none: exit())")])
async def finish(code: int | None = None) -> None:
    """Stores ``seen`` then exits.
    ```
    await finish()
    ```
    """
    await lev.doc.set(seen=True)
    if code is None:
        exit()
    sys.exit(code)
    print("never printed")
