"""The Temporal dev server the agent tests stand on answers a client; the temporal executor
connects to it once."""

import asyncio

from temporalio.client import Client

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
