"""Agents in network namespaces of their own: ``lev serve`` and a relay to the session's
Temporal dev server on the lab's hub address, and two agents, each in its namespace, that
enrol, show online and answer through Temporal; one killed with -9 shows offline, the other
stays online. Nothing but the hub address and the namespaces' own is contacted."""

import asyncio
import os
import socket
import subprocess
import sys
import time

import helpers_netns
import pytest
from helpers_agent import AgentProcess, LevServer, wait_for

from levrt.server.devices import ask_device


@pytest.fixture
def lab():
    problem = helpers_netns.missing()
    if problem is not None:
        message = f"the network namespace tests need {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    made = helpers_netns.NetnsLab()
    try:
        yield made
    finally:
        made.close()


CONNECT = ("import socket, sys\n"
           "try:\n"
           "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
           "except OSError as exc:\n"
           "    sys.exit(str(exc))\n")


def connects(netns, ip, port):
    done = subprocess.run(netns.argv(sys.executable, "-c", CONNECT, ip, str(port)),
                          capture_output=True, text=True, timeout=30)
    return done.returncode == 0


def test_the_lab_isolates(lab):
    one, two, three = lab.add(), lab.add(), lab.add()
    with socket.socket() as hub, socket.socket() as other:
        hub.bind((lab.hub, 0))
        other.bind((three.host_ip, 0))
        hub.listen()
        other.listen()
        port = hub.getsockname()[1]
        assert connects(one, lab.hub, port) and connects(two, lab.hub, port)
        # The second namespace reaches the hub and nothing else of the host's.
        assert not connects(two, three.host_ip, other.getsockname()[1])
        assert not connects(two, "127.0.0.1", port)


def test_two_agents_in_namespaces(lab, tmp_path, temporal_server):
    one, two = lab.add(), lab.add()
    temporal = helpers_netns.Relay(lab.hub, temporal_server.address)
    server = agents = None
    try:
        server = LevServer.start(tmp_path / "server", temporal.address, ip=lab.hub)
        agents = {
            netns.name: AgentProcess.start(tmp_path / name, server.url,
                                           code=server.add_device(name), netns=netns.name)
            for name, netns in (("one", one), ("two", two))}
        for name in ("one", "two"):
            wait_for(lambda name=name: server.status(name) == "online", 60, f"{name} online")
        # Each agent runs in its own namespace, and answers from there through Temporal.
        for name, netns in (("one", one), ("two", two)):
            pid = agents[netns.name].process.pid
            assert os.stat(f"/proc/{pid}/ns/net").st_ino == netns.inode()
            facts = asyncio.run(ask_device(temporal.address, server.queue("device", "alice", name),
                                           "agent.facts"))
            assert facts == server.device(name)["facts"]
        agents[one.name].kill()
        killed = time.monotonic()
        wait_for(lambda: server.status("one") == "offline", 30, "one offline")
        assert time.monotonic() - killed < 30  # promised: 30 s (OFFLINE_AFTER is 15 s)
        assert server.status("two") == "online"
    finally:
        for agent in (agents or {}).values():
            agent.stop()
        if server is not None:
            server.stop()
        temporal.close()
