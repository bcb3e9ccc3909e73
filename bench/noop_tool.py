"""A tool whose entry does nothing: what a run costs when the tool itself costs zero.

The entry sits at module level, as in a real tool package, so it travels as
plain source with no closure and no helpers: the smallest payload there is.
"""

from __future__ import annotations

from levrt import Cr, remote

IMAGE = "localhost/bench-noop:latest"


@remote
def entry() -> None:
    pass


def noop() -> Cr:
    """The no-op run, built fresh each time as a tool call would be."""
    return Cr(IMAGE, entry=entry())
