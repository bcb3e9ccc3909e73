"""A tool that writes many results beside a heavy log: the case where Podman's follow
stream lost results and log lines (issue 10, item 2)."""

from __future__ import annotations

import sys
import threading

from levrt import Cr, ctx, remote


@remote
def entry(sets: int, lines: int) -> None:
    def noise() -> None:
        for i in range(lines):
            print("line", i, file=sys.stderr)

    thread = threading.Thread(target=noise)
    thread.start()
    for i in range(sets):
        ctx.set({f"k{i}": i, "last": i})
    thread.join()


def chatty(image: str, sets: int, lines: int) -> Cr:
    return Cr(image, entry=entry(sets, lines))
