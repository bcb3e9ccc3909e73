"""Starting a child process from async code so that a cancellation cannot leave it half
started.

``asyncio.create_subprocess_exec`` cancelled while it connects the child's pipes can wait
for ever for pipes it never connected (CPython gh-103847, gh-145541; Python 3.11 and 3.12
have it): a ``lev run`` cancelled (SIGINT) just as it started a run hung until its runner
killed it, and its job ended failed instead of cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

__all__ = ["spawn"]


async def spawn(*argv: str, **options: Any) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec(*argv, **options)``, whole or not at all.

    A cancellation that comes while the child is being started waits for the start to
    end, kills the child (its process group, with ``start_new_session=True``), waits for
    it and is raised again. Raises what ``create_subprocess_exec`` raises (``OSError`` when
    the program cannot be run).
    """
    starting = asyncio.ensure_future(asyncio.create_subprocess_exec(*argv, **options))
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        while not starting.done():
            # A second cancellation must not leave the child behind either.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({starting})
        if starting.cancelled() or starting.exception() is not None:
            raise
        process = starting.result()
        with contextlib.suppress(ProcessLookupError):
            if options.get("start_new_session"):
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        await process.wait()
        raise
