"""Test workflows without tools: record a job's runs once, then replay them.

::

    from levrt import testing
    testing.record(server_port("127.0.0.1"), "tests/server_port.json")   # once, with nmap
    result = testing.replay(server_port("127.0.0.1"), "tests/server_port.json")

    # or answer runs by hand, like httpx.MockTransport:
    result = testing.replay(server_port("127.0.0.1"), {
        "alive.entry": {"alive": ["127.0.0.1"]},
        "port_os.entry": {"ports": [{"port": 22, "state": "open"}]},
    })

Replayed jobs use a throwaway in-memory store unless ``store=`` is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

from . import executors
from ._job import _discard, arun
from .executors.replay import RecordingExecutor, ReplayExecutor, Reply
from .store import Store

__all__ = ["RecordingExecutor", "ReplayExecutor", "Reply", "arecord", "areplay", "record",
           "replay"]


async def arecord(coro: Awaitable[Any], path: str | Path, *,
                  executor: executors.Executor | str | None = None, **options: Any) -> Any:
    """Run ``coro`` as a job with a real executor and save its runs to ``path``."""
    inner = executor if isinstance(executor, executors.Executor) else executors.create(executor)
    return await arun(coro, executor=RecordingExecutor(inner, path), **options)


async def areplay(coro: Awaitable[Any], source: str | Path | Mapping[str, Any] | Any, *,
                  store: Store | None = None, **options: Any) -> Any:
    """Run ``coro`` as a job whose runs are answered by ``source`` (see ReplayExecutor)."""
    try:
        executor = ReplayExecutor(source)
    except BaseException:
        _discard(coro)
        raise
    own = store is None
    store = store or Store("sqlite://")
    try:
        return await arun(coro, executor=executor, store=store, **options)
    finally:
        if own:
            store.close()


def record(coro: Awaitable[Any], path: str | Path, **options: Any) -> Any:
    return asyncio.run(arecord(coro, path, **options))


def replay(coro: Awaitable[Any], source: str | Path | Mapping[str, Any] | Any,
           **options: Any) -> Any:
    return asyncio.run(areplay(coro, source, **options))
