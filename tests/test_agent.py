"""``lev agent`` for real: a Temporal dev server, ``lev serve`` and agent processes. Enrolment
and the kept token, facts and heartbeats, online/offline after kill -9, the server asking a
device through Temporal, the CLI's device commands, a clean stop on SIGTERM."""

import asyncio
import json
import os
import stat
import time

import pytest
from helpers_agent import AgentProcess, LevServer, wait_for

from levrt import __version__
from levrt._cli import cli_main
from levrt.client._credentials import save_login
from levrt.server.devices import ask_device


@pytest.fixture
def server(tmp_path, temporal_server):
    started = LevServer.start(tmp_path / "server", temporal_server.address)
    yield started
    started.stop()


@pytest.fixture
def agents():
    started = []
    yield started
    for agent in started:
        agent.stop()


def test_enrol_report_ask_stop_restart_and_kill(server, agents, tmp_path, temporal_server):
    code = server.add_device("box", ["lab"])
    agent = AgentProcess.start(tmp_path / "box", server.url, code=code)
    agents.append(agent)
    wait_for(lambda: server.status("box") == "online", 30, "box online")
    device = server.device("box")
    facts = device["facts"]
    assert facts["version"] == __version__ and facts["cores"] >= 1 and facts["memory"] > 0
    assert "python3" in facts["tools"] and device["slots"] == 2 and device["running"] == 0
    kept = tmp_path / "box" / "device.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert json.loads(kept.read_text())["token"].startswith("levd_")

    # The server asks the device, and the pool, through Temporal.
    for queue in (server.queue("device", "alice", "box"), server.queue("pool", "alice", "lab")):
        answered = asyncio.run(ask_device(temporal_server.address, queue, "agent.facts"))
        assert answered["hostname"] == facts["hostname"] and answered["version"] == __version__

    # SIGTERM stops it cleanly; it starts again on the kept token, without a code.
    started = time.monotonic()
    assert agent.stop() == 0, agent.output()
    assert time.monotonic() - started < 15
    assert "Traceback" not in agent.output()
    again = AgentProcess.start(tmp_path / "box", server.url)
    agents.append(again)
    wait_for(lambda: "polling" in again.output(), 30, "the agent polling again")
    assert "enrolled" not in again.output().split("stopped")[-1]

    # Lost with kill -9: offline within 30 s.
    wait_for(lambda: server.status("box") == "online", 30, "box online")
    again.kill()
    killed = time.monotonic()
    wait_for(lambda: server.status("box") == "offline", 30, "box offline")
    assert time.monotonic() - killed < 30  # promised: 30 s (OFFLINE_AFTER is 15 s)


def test_used_code_unknown_server_and_no_temporal(server, agents, tmp_path):
    code = server.add_device("box")
    first = AgentProcess.start(tmp_path / "one", server.url, code=code)
    agents.append(first)
    wait_for(lambda: server.status("box") == "online", 30, "box online")
    second = AgentProcess.start(tmp_path / "two", server.url, code=code)
    assert second.process.wait(30) == 1
    assert "lev: error: cannot enrol: code: this enrolment code was used already" in \
        second.output()
    assert not (tmp_path / "two" / "device.json").exists()
    # Not enrolled here: told how.
    third = AgentProcess.start(tmp_path / "three", server.url)
    assert third.process.wait(30) == 1 and "lev device add" in third.output()
    # A removed device's agent stops, saying why.
    assert server.api("DELETE", "/api/devices/box").status_code == 204
    assert first.process.wait(30) == 1, first.output()
    assert "refuses this device" in first.output()


def test_device_commands(server, capsys):
    save_login(server.url, "alice", server.token)
    assert cli_main(["device", "add", "box", "--pool", "dmz", "--pool", "lab"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"lev agent --server {server.url} --enrol levc_")
    assert "pools dmz, lab" in err
    assert cli_main(["device", "add", "box"]) == 1
    assert "remove it first" in capsys.readouterr().err
    assert cli_main(["device", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "KIND", "STATUS", "POOLS", "EXECUTOR", "LOAD",
                                "LAST", "SEEN"]
    assert table[2].split()[:5] == ["box", "agent", "not", "enrolled", "dmz,lab"]
    assert cli_main(["device", "list", "--json"]) == 0
    assert [d["kind"] for d in json.loads(capsys.readouterr().out)] == ["local runner", "agent"]
    assert cli_main(["device", "remove", "box"]) == 0
    assert cli_main(["device", "remove", "box"]) == 1
    assert "you have no device 'box'" in capsys.readouterr().err


def test_agent_needs_a_server_url(capsys):
    assert cli_main(["agent", "--server", "ftp://x"]) == 2
    assert capsys.readouterr().err.startswith("lev: error: ")
    assert not os.path.exists(os.environ["LEV_HOME"] + "/device.json")


def test_temporal_unreachable(server, tmp_path):
    agent = AgentProcess.start(tmp_path / "box", server.url, code=server.add_device("box"),
                               extra=("--temporal", "127.0.0.1:1"))
    assert agent.process.wait(60) == 1, agent.output()
    assert ("lev: error: cannot reach Temporal at 127.0.0.1:1 (the address --temporal gave; "
            "is its frontend running and reachable from here?)") in agent.output()


async def test_heartbeats_carry_the_load(server, tmp_path, temporal_server):
    """The Agent API in process: a slow agent.facts is counted as running while it runs."""
    from levrt.agent import Agent, gather_facts
    from levrt.client import AgentClient

    enrolled = AgentClient(server.url).enrol(server.add_device("box"))
    calls = []

    def slow_facts():
        calls.append(time.monotonic())
        if len(calls) > 1:  # the answer to the server's question, not the report at start
            time.sleep(7)
        return gather_facts()

    with AgentClient(server.url, enrolled["token"]) as client:
        async with Agent(client, slots=3, facts=slow_facts) as agent:
            running = asyncio.create_task(agent.run())
            await asyncio.to_thread(wait_for, lambda: server.status("box") == "online", 30,
                                    "box online")
            asked = asyncio.create_task(ask_device(
                temporal_server.address, server.queue("device", "alice", "box"), "agent.facts"))
            shown = await asyncio.to_thread(
                wait_for, lambda: server.device("box")["running"] == 1, 15, "a run counted")
            assert shown and server.device("box")["slots"] == 3
            assert (await asked)["version"] == __version__
        await asyncio.wait_for(running, 30)  # shutdown() on leaving the block ends run()


def test_facts_leave_out_the_agents_own_virtualenv(monkeypatch, tmp_path):
    """The venv's ``httpx`` is the Python library's command: no scanner of that name."""
    import os
    import sys
    from pathlib import Path

    from levrt.agent import gather_facts

    own = Path(sys.prefix) / "bin"
    assert (own / "httpx").exists(), "the test extra installs httpx's command"
    scanner = tmp_path / "httpx"
    scanner.write_text("#!/bin/sh\n")
    scanner.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(own), os.environ["PATH"]]))
    assert "httpx" not in gather_facts()["tools"]
    monkeypatch.setenv("PATH", os.pathsep.join([str(own), str(tmp_path), os.environ["PATH"]]))
    assert gather_facts()["tools"]["httpx"] == str(scanner)


def test_an_agent_stops_at_once_while_its_server_is_down(server, agents, tmp_path):
    agent = AgentProcess.start(tmp_path / "box", server.url, code=server.add_device("box"))
    agents.append(agent)
    wait_for(lambda: "polling" in agent.output(), 30, "the agent polling")
    server.stop()
    # A beat to the stopped server: sent again for the client's patience (a minute), it held
    # the agent's stop, and its exit, for as long.
    wait_for(lambda: "heartbeat:" in agent.output(), 30, "a heartbeat that failed")
    started = time.monotonic()
    assert agent.stop() == 0, agent.output()
    assert time.monotonic() - started < 10, agent.output()


class _FlakyServer:
    """An agent client whose heartbeats are answered ``answers`` in turn (an exception is
    raised), then ``{}``; records each beat's patience."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.patience = []

    def heartbeat(self, *, running, slots, facts=None, patience=None):
        self.patience.append(patience)
        answer = self.answers.pop(0) if self.answers else {}
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_a_beat_the_server_cannot_take_is_tried_at_the_next_beat():
    # A 503 (its store restarting) is the server's trouble, not a refusal of the device:
    # the agent stopped, and cancelled its job, for one during a PostgreSQL restart.
    from levrt.agent import Agent
    from levrt.agent._enrolment import AgentError
    from levrt.client import ApiError, ApiUnreachable

    client = _FlakyServer(ApiError(503, "the store is unavailable"),
                          ApiUnreachable("http://server", "refused"))
    agent = Agent(client, slots=1, facts=dict)
    beating = asyncio.create_task(agent._heartbeats(0.01))
    await asyncio.to_thread(wait_for, lambda: len(client.patience) >= 4, 10, "four beats")
    agent.shutdown()
    await asyncio.wait_for(beating, 10)
    assert client.patience[:4] == [0, 0, 0, 0]  # each tried once: the next beat is the retry
    refused = _FlakyServer(ApiError(403, "no such device"))
    with pytest.raises(AgentError, match="refuses this device"):
        await Agent(refused, slots=1, facts=dict)._heartbeats(0.01)
