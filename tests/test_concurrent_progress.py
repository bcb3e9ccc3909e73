"""Concurrent's progress: written at most every PROGRESS_INTERVAL, its last value on leaving."""

import asyncio

import pytest

import levrt
from levrt import Concurrent
from levrt._concurrent import PROGRESS_INTERVAL
from levrt.store import Store


def spy_progress(store, monkeypatch) -> list[float]:
    written: list[float] = []
    original = store.set_job_progress

    def recording(job_id: str, progress: float) -> None:
        written.append(progress)
        original(job_id, progress)

    monkeypatch.setattr(store, "set_job_progress", recording)
    return written


def progress(store: Store) -> float:
    return store.get_job(levrt.lev.job_id)["progress"]


def test_a_fan_out_writes_progress_a_few_times_and_its_last_value_on_leaving(store, monkeypatch):
    written = spy_progress(store, monkeypatch)

    async def quick(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def main():
        async with Concurrent(limit=8) as c:
            tasks = [c.start(quick(i)) for i in range(200)]
        at_exit = progress(store)  # before the job's own final write
        return [t.result() for t in tasks], at_exit, list(written)

    results, at_exit, during = levrt.run(main(), store=store, executor="process", echo=False)

    assert results == list(range(200))
    assert at_exit == 1.0
    assert during == [1.0]  # 200 children finished within one interval: one write


async def test_partial_progress_reaches_the_store_within_the_interval(store, monkeypatch):
    written = spy_progress(store, monkeypatch)
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    async def main():
        async with Concurrent()(1, 3) as c:
            c.start(asyncio.sleep(0))
            c.start(slow())
            await asyncio.sleep(PROGRESS_INTERVAL + 0.3)
            partial = progress(store)
            release.set()
        return partial, progress(store)

    partial, final = await levrt.arun(main(), store=store, executor="process")

    assert (partial, final) == (0.25, 1.0)
    assert written[:2] == [0.25, 1.0]


async def test_progress_is_written_when_the_block_is_left_by_an_exception(store, monkeypatch):
    written = spy_progress(store, monkeypatch)

    async def main():
        with pytest.raises(RuntimeError, match="stop"):
            async with Concurrent() as c:
                c.start(asyncio.sleep(0))
                c.start(asyncio.sleep(60))
                await asyncio.sleep(0.01)
                raise RuntimeError("stop")
        return progress(store)

    # The cancelled child counts as finished.
    assert await levrt.arun(main(), store=store, executor="process") == 1.0
    assert written[0] == 1.0
    assert len(written) <= 2  # that write, and the job's own at its end
