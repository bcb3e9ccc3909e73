"""The Temporal dev server the agent tests stand on answers a client."""

from temporalio.client import Client


async def test_dev_server_answers(temporal_server):
    client = await Client.connect(temporal_server.address)
    # The session's server: other tests' workflows may be there, but not this id.
    assert [w async for w in client.list_workflows("WorkflowId = 'no-such-workflow'")] == []
