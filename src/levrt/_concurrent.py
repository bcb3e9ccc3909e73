"""``Concurrent``: fan-out with a bound on how many children are alive at once.

Failure policy (as the original): a child that fails does not stop its
siblings; its exception is re-raised where its task is awaited, and noted in
the job log. Leaving the block waits for every child. If the block itself is
left by an exception or a cancellation, every child still going is cancelled
(its runs killed) before the exception goes on, so nothing is left running.

Progress (the finished children's share of the weights) reaches the job at most
every ``PROGRESS_INTERVAL`` seconds, and its last value when the block is left:
a store write per finished child cost a fan-out of short runs ~0.5 ms a run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ._job import Job, current_job

#: seconds between two progress writes of one Concurrent
PROGRESS_INTERVAL = 0.2


class Concurrent:
    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive int or None, not {limit!r}")
        self.limit = limit
        self._slots = asyncio.Semaphore(limit) if limit else None
        self._tasks: list[asyncio.Task[Any]] = []
        self._weights: list[float] = []
        self._finished = 0.0
        self._total = 0.0
        self._pending: asyncio.TimerHandle | None = None
        self._job: Job | None = None

    def __call__(self, *weights: float) -> Concurrent:
        """Set progress weights of the children, in the order they are started."""
        if any(not isinstance(w, (int, float)) or w < 0 for w in weights):
            raise ValueError(f"weights must be non-negative numbers, not {weights!r}")
        self._weights = [float(w) for w in weights]
        self._total = sum(self._weight(i) for i in range(len(self._tasks)))
        return self

    def _weight(self, index: int) -> float:
        return self._weights[index] if index < len(self._weights) else 1.0

    async def __aenter__(self) -> Concurrent:
        return self

    def start(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        """Start a child (a ``Cr`` or a coroutine) and return its ``asyncio.Task``."""
        if not hasattr(coroutine, "__await__"):
            raise TypeError(f"Concurrent.start() takes a Cr or a coroutine, not {coroutine!r}")
        task = asyncio.ensure_future(self._child(coroutine, len(self._tasks)))
        self._total += self._weight(len(self._tasks))
        self._tasks.append(task)
        return task

    async def _child(self, awaitable: Awaitable[Any], index: int) -> Any:
        try:
            if self._slots is None:
                return await awaitable
            async with self._slots:
                return await awaitable
        finally:
            self._finished += self._weight(index)
            self._report()

    def _report(self) -> None:
        if self._pending is not None or not self._total:
            return  # a write is due already, and it takes the value of its time
        try:
            self._job = current_job()
        except LookupError:
            return
        loop = asyncio.get_running_loop()
        self._pending = loop.call_later(PROGRESS_INTERVAL, self._flush_progress)

    def _flush_progress(self) -> None:
        if self._pending is None or self._job is None:
            return
        self._pending.cancel()  # when the block is left before the timer fires
        self._pending = None
        self._job.set_progress(self._finished / self._total)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: Any) -> None:
        try:
            try:
                if exc is None and self._tasks:
                    await asyncio.wait(self._tasks)
            except BaseException:
                await self._cancel_all()
                raise
            if exc is not None:
                await self._cancel_all()
                return
        finally:
            self._flush_progress()
        self._note_failures()

    async def _cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for task in self._tasks:
            if not task.cancelled():
                task.exception()  # seen: a cancelled block reports its own exception

    def _note_failures(self) -> None:
        failed = [(i, t.exception()) for i, t in enumerate(self._tasks)
                  if not t.cancelled() and t.exception() is not None]
        if not failed:
            return
        try:
            job = current_job()
        except LookupError:
            return
        job.log(None, "job", [f"child {i} failed: {_first_line(e)}" for i, e in failed])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
