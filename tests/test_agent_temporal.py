"""The Temporal dev server the agent tests stand on answers a client; the temporal executor
connects to it once, puts the runs of one loop turn in one workflow and ends each run as its
activity ends. Here the activity ``agent.run_cr`` is a stand-in in a worker of the test's
own, to check the executor's logic; the real one, on real agents, is test_dispatch.py's."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from levrt._temporal import workflow_runner
from levrt.agent._workflows import RunSpecsOnAgents
from levrt.executors import RunSpec
from levrt.executors import temporal as temporal_executor
from levrt.executors.temporal import TemporalExecutor


async def test_dev_server_answers(temporal_server):
    client = await Client.connect(temporal_server.address)
    # The session's server: other tests' workflows may be there, but not this id.
    assert [w async for w in client.list_workflows("WorkflowId = 'no-such-workflow'")] == []


async def test_the_runs_of_a_fan_out_share_one_connection(temporal_server):
    # A fan-out's runs all start at once: each used to open a connection of its own, which
    # cost a 96-run fan-out 0.36 s before its first run and Temporal's CPU beside.
    executor = TemporalExecutor(temporal_server.address, "lev-test-unused")
    clients = await asyncio.gather(*(executor._temporal() for _ in range(20)))
    assert all(client is clients[0] for client in clients)
    await executor.aclose()


class _Observer:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def on_log(self, stream, lines):
        pass

    def on_ctx(self, data):
        pass

    def on_error(self, kind, message):
        self.errors.append(kind)


class _Agent:
    """A stand-in ``agent.run_cr``: a spec's ``cmd`` says what it does. ``["exit", N]``
    answers exit code N; ``["fail", TEXT]`` raises; ``["hang"]`` heartbeats until it is
    cancelled. Records which workflow each run came in and which were cancelled."""

    def __init__(self) -> None:
        self.workflows: dict[int, str] = {}
        self.cancelled: set[int] = set()
        self.hanging: set[int] = set()

    @activity.defn(name="agent.run_cr")
    async def run_cr(self, spec, coll):
        run_id = spec["run_id"]
        self.workflows[run_id] = activity.info().workflow_id
        what = spec["cmd"]
        if what[0] == "fail":
            raise ApplicationError(what[1], type="JobRefused", non_retryable=True)
        if what[0] == "hang":
            self.hanging.add(run_id)
            try:
                while True:
                    activity.heartbeat()
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                self.cancelled.add(run_id)
                raise
        return {"exit_code": int(what[1]), "error": None}


@pytest.fixture
async def pool(temporal_server):
    """(executor, agent): a temporal executor for a job of its own and one worker polling
    its queue with the stand-in activity."""
    queue = f"lev-test-runs-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(temporal_server.address)
    agent = _Agent()
    executor = TemporalExecutor(temporal_server.address, queue)
    async with Worker(client, task_queue=queue, workflows=[RunSpecsOnAgents],
                      activities=[agent.run_cr], workflow_runner=workflow_runner(),
                      max_heartbeat_throttle_interval=timedelta(seconds=0.2)):
        yield executor, agent
        await executor.aclose()


def _spec(job_id, run_id, *cmd):
    return RunSpec(job_id=job_id, run_id=run_id, name=f"run{run_id}", image="none",
                   cmd=list(cmd))


async def _started(executor, specs):
    observers = [_Observer() for _ in specs]
    handles = await asyncio.gather(*(executor.start(spec, observer)
                                     for spec, observer in zip(specs, observers, strict=True)))
    return handles, observers


async def test_the_runs_of_one_loop_turn_share_a_workflow(pool):
    executor, agent = pool
    job = uuid.uuid4().hex
    handles, _ = await _started(executor, [_spec(job, n, "exit", str(n % 3))
                                           for n in range(30)])
    codes = await asyncio.gather(*(handle.wait() for handle in handles))
    assert codes == [n % 3 for n in range(30)]
    # Their agent recorded their ends: the driver does not record them again.
    assert all(handle.recorded for handle in handles)
    assert set(agent.workflows.values()) == {f"lev-runs-{job}-0"}
    # Runs started one after another each go in a workflow of their own.
    for n in (30, 31):
        [handle], _ = await _started(executor, [_spec(job, n, "exit", "0")])
        assert await handle.wait() == 0
    assert agent.workflows[30] == f"lev-runs-{job}-30" and agent.workflows[31].endswith("-31")


async def test_a_workflow_carries_at_most_its_share_of_runs(pool, monkeypatch):
    monkeypatch.setattr(temporal_executor, "MAX_BATCH_RUNS", 4)
    executor, agent = pool
    job = uuid.uuid4().hex
    handles, _ = await _started(executor, [_spec(job, n, "exit", "0") for n in range(10)])
    assert await asyncio.gather(*(handle.wait() for handle in handles)) == [0] * 10
    assert sorted(set(agent.workflows.values())) == [f"lev-runs-{job}-{n}" for n in (0, 4, 8)]


async def test_a_run_no_agent_finishes_fails_with_the_reason(pool):
    executor, _ = pool
    job = uuid.uuid4().hex
    handles, observers = await _started(executor, [
        _spec(job, 0, "fail", "the package is not there"), _spec(job, 1, "exit", "0")])
    assert await handles[0].wait() == 1
    assert await handles[1].wait() == 0
    assert not handles[0].recorded  # no agent did: the driver records it
    [error] = observers[0].errors
    assert error.startswith("no agent of the pool finished it: ")
    assert "the package is not there" in error
    assert observers[1].errors == []


async def test_killed_runs_are_cancelled_on_their_agent_and_only_they(pool):
    executor, agent = pool
    job = uuid.uuid4().hex
    specs = [_spec(job, n, "hang") for n in range(3)] + [_spec(job, 3, "exit", "0")]
    handles, observers = await _started(executor, specs)
    assert await handles[3].wait() == 0
    for _ in range(100):
        if agent.hanging == {0, 1, 2}:
            break
        await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(handles[0].kill(), handles[2].kill()), 30)
    assert agent.cancelled == {0, 2}
    assert await handles[0].wait() == 1 and observers[0].errors == ["cancelled"]
    assert not handles[0].recorded
    await handles[1].kill()
    assert agent.cancelled == {0, 1, 2}


async def test_a_run_whose_start_is_cancelled_does_not_go_on(pool):
    executor, agent = pool
    job = uuid.uuid4().hex
    starting = asyncio.ensure_future(executor.start(_spec(job, 0, "hang"), _Observer()))
    await asyncio.sleep(0)  # in the batch, whose workflow is not started yet
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    # Cancelled before or after its activity began: it is not left running.
    [handle], _ = await _started(executor, [_spec(job, 1, "exit", "0")])
    assert await handle.wait() == 0
    assert agent.hanging <= agent.cancelled


async def test_temporal_unreachable_fails_the_start_with_the_address():
    executor = TemporalExecutor("127.0.0.1:1", "lev-test-unused")
    with pytest.raises(temporal_executor.ExecutorError, match="127.0.0.1:1"):
        await executor.start(_spec("j", 0, "exit", "0"), _Observer())
    await executor.aclose()


@pytest.mark.parametrize("turns", [0, 1, 3])
async def test_a_start_whose_job_ends_first_fails_and_does_not_hang(pool, turns):
    executor, _ = pool
    starting = asyncio.ensure_future(executor.start(_spec(uuid.uuid4().hex, 0, "exit", "0"),
                                                    _Observer()))
    for _ in range(turns + 1):  # before the workflow's start began, or while it goes
        await asyncio.sleep(0)
    await executor.aclose()
    try:
        handle = await asyncio.wait_for(starting, 10)
    except temporal_executor.ExecutorError as exc:
        assert "the job ended before its runs were sent" in str(exc)
    else:  # it was started before the end: it still ends
        assert await asyncio.wait_for(handle.wait(), 10) in (0, 1)
