"""levrt.testing: record a job's runs once, replay them without tools."""

import asyncio

import helpers_tools as tools
import pytest

from levrt import Concurrent, TaskFailed, lev, testing
from levrt.executors import ExecutorError
from levrt.testing import Reply


async def fan_out(names):
    found = []
    with lev / "fan":
        async with Concurrent(limit=4) as c:
            tasks = [c.start(tools.tagged(n)) for n in names]
    for t in tasks:
        found.append((await (await t).get())["name"])
    return found


def test_record_then_replay_with_no_process(tmp_path, monkeypatch):
    path = tmp_path / "rec.json"
    assert testing.record(fan_out(["h1", "h2", "x3"]), path) == ["h1", "h2", "x3"]

    async def no_processes(*args, **kwargs):
        raise AssertionError("replay must not start processes")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", no_processes)
    assert testing.replay(fan_out(["h1", "h2", "x3"]), path) == ["h1", "h2", "x3"]


def test_replay_refuses_runs_that_were_not_recorded(tmp_path):
    path = tmp_path / "rec.json"
    testing.record(fan_out(["h1"]), path)
    with pytest.raises(ExecutorError, match="no recorded run matches"):
        testing.replay(fan_out(["other"]), path)


def test_replay_from_a_mapping_and_a_handler():
    assert testing.replay(fan_out(["a", "b"]), {"tagged.entry": {"name": "fake"}}) == [
        "fake", "fake"]
    assert testing.replay(fan_out(["a"]), lambda spec: {"name": spec.schema}) == ["test/tag@1.0"]


def test_replayed_failures_raise_task_failed():
    async def main():
        await tools.failing(5)

    reply = Reply(log=[("stderr", "boom")], exit_code=5)
    with pytest.raises(TaskFailed) as info:
        testing.replay(main(), lambda spec: reply)
    assert info.value.exit_code == 5 and info.value.log_tail == ["boom"]


def test_replay_handler_without_answer_is_an_error():
    with pytest.raises(ExecutorError, match="no reply"):
        testing.replay(fan_out(["a"]), lambda spec: None)


def test_bad_recording_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ExecutorError, match="not a levrt recording"):
        testing.replay(fan_out(["a"]), bad)


async def test_areplay_inside_an_event_loop():
    assert await testing.areplay(fan_out(["a"]), {"tagged.entry": {"name": "z"}}) == ["z"]
