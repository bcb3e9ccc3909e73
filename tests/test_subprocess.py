"""levrt._subprocess.spawn: a child process started whole or not at all, whenever the
cancellation comes."""

import asyncio
import os
import uuid

import helpers_tools as tools
import pytest

from levrt._subprocess import spawn

PIPE = asyncio.subprocess.PIPE


def _cancel_after(task: asyncio.Future, turns: int) -> None:
    if turns:
        asyncio.get_running_loop().call_soon(_cancel_after, task, turns - 1)
    else:
        task.cancel()


@pytest.mark.parametrize("session", [True, False])
async def test_a_cancelled_start_leaves_no_child(session):
    # Cancelled after every number of event loop turns the start takes, and past it.
    marker = f"30.{uuid.uuid4().int % 10**9}"
    outcomes = set()
    for turns in range(15):
        starting = asyncio.ensure_future(spawn("sleep", marker, stdin=PIPE, stdout=PIPE,
                                               stderr=PIPE, start_new_session=session))
        _cancel_after(starting, turns)
        try:
            process = await asyncio.wait_for(asyncio.shield(starting), 10)
        except asyncio.CancelledError:
            outcomes.add("cancelled")
        else:
            outcomes.add("started")  # the cancellation came after the start
            process.kill()
            await process.wait()
        assert not tools.processes("sleep", marker)
    assert "cancelled" in outcomes


async def test_a_program_that_cannot_run_raises_as_asyncio_does(tmp_path):
    with pytest.raises(FileNotFoundError):
        await spawn(str(tmp_path / "nothing"))
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o600)
    with pytest.raises(PermissionError):
        await spawn(str(script))
