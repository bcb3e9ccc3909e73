"""A task sent to an agent through Temporal, beside a bare Temporal activity doing the same.

    .venv/bin/python bench/dispatch.py [--tasks 10] [--json]

Starts what a distributed levrt needs on this machine (a Temporal dev server, ``lev serve``,
one ``lev agent`` with the process executor: the processes of tests/helpers_agent.py), then,
one at a time, ``--tasks`` times each:

- dispatched: ``POST /api/tasks`` of a published tool whose one run is ``cmd=["true"]``, sent
  to the agent's device, until its job's workflow ends (then the task must read ``done``) —
  the agent claims the job, fetches its wheel (once), hands the job to its ``lev run``
  started ahead, which runs ``true`` in the sandbox and records it through the API;
- bare: a Temporal workflow whose one activity runs ``true`` as a subprocess, in a worker of
  this process: what Temporal itself costs for the same work.

Prints the median wall of each, their ratio (target: dispatched at most 2x bare), and the
latency from submitting a task to its job starting on the idle agent (the job's
``started_at - created_at``). A benchmark, not a test: it exits 0 whether the target is met or
not. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers_agent import AgentProcess, LevServer, wait_for  # noqa: E402
from helpers_temporal import TemporalServer  # noqa: E402
from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from levrt.client import Client as LevClient  # noqa: E402

TARGET_RATIO = 2.0
TARGET_SPEEDUP = 1.8
TOOL = "lev.alice.truth:truth"
FAN = "lev.alice.truth:fan"
PACKAGE = '''"""One run of `true`; a fan-out of runs that sleep."""
from levrt import Concurrent, Cr, annot


def truth() -> Cr:
    return Cr("localhost/test:latest", cmd=["true"])


async def fan(runs: int, seconds: str):
    async with Concurrent() as c:
        for _ in range(runs):
            c.start(Cr("localhost/test:latest", cmd=["sleep", seconds]))


__lev__ = annot.meta([truth, fan])
'''


def _publish(home: Path, hub: Path) -> None:
    folder = hub / "alice.truth"
    (folder / "lev" / "alice" / "truth").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "lev.alice.truth"\nversion = "1.0"\ndependencies = ["levrt"]\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["lev"]\n')
    (folder / "lev" / "alice" / "truth" / "__init__.py").write_text(PACKAGE)
    env = {**os.environ, "LEV_DB_URL": f"sqlite:///{home / 'levrt.db'}"}
    subprocess.run([sys.executable, "-m", "levrt", "hub", "load", str(hub)], check=True,
                   env=env, capture_output=True)


async def _dispatched(server: LevServer, address: str,
                      tasks: int) -> tuple[list[float], list[float]]:
    """Each task's wall, from its POST to the end of its job's workflow (its agent's
    activity returned: ``lev run`` has exited), as the bare side's is measured; and its
    submit-to-start latency. Waiting on Temporal, not polling the task, leaves the server's
    CPU to the task (polling its whole record every 20 ms took half of it)."""
    client = await Client.connect(address)
    walls, latencies = [], []
    for _ in range(tasks):
        started = time.perf_counter()
        answer = await asyncio.to_thread(server.api, "POST", "/api/tasks",
                                         json={"target": TOOL, "device": "box"})
        answer.raise_for_status()
        job_id = answer.json()["id"]
        await client.get_workflow_handle(f"lev-job-{job_id}").result()
        walls.append(time.perf_counter() - started)
        job = (await asyncio.to_thread(server.api, "GET", f"/api/tasks/{job_id}")).json()["job"]
        if job["status"] != "done":
            raise SystemExit(f"task {job_id} {job['status']}: {job['error']}")
        latencies.append((datetime.fromisoformat(job["started_at"])
                          - datetime.fromisoformat(job["created_at"])).total_seconds())
    return walls, latencies


@activity.defn(name="bench.true")
async def _run_true() -> int:
    process = await asyncio.create_subprocess_exec(
        "true", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await process.communicate()
    return int(process.returncode or 0)


@workflow.defn(name="bench.flow", sandboxed=False)
class _Flow:
    @workflow.run
    async def run(self) -> int:
        return int(await workflow.execute_activity(
            "bench.true", start_to_close_timeout=timedelta(seconds=60)))


async def _bare(address: str, tasks: int) -> list[float]:
    client = await Client.connect(address)
    queue = f"bench-{uuid.uuid4().hex}"
    walls = []
    async with Worker(client, task_queue=queue, workflows=[_Flow], activities=[_run_true]):
        for _ in range(tasks):
            started = time.perf_counter()
            await client.execute_workflow("bench.flow", id=f"bench-{uuid.uuid4().hex}",
                                          task_queue=queue)
            walls.append(time.perf_counter() - started)
    return walls


def _fanout(server: LevServer, runs: int, seconds: float) -> float:
    """Wall of one job whose ``runs`` runs of ``sleep seconds`` spread over the pool."""
    started = time.perf_counter()
    answer = server.api("POST", "/api/tasks", json={
        "target": FAN, "params": {"runs": runs, "seconds": str(seconds)}, "pool": "fan",
        "spread": True})
    answer.raise_for_status()
    job_id = answer.json()["id"]
    # The task's event stream, not polling its whole record (every run, document and log
    # line): that polling took a quarter of the server's CPU from the runs measured.
    with LevClient(server.url, server.token, timeout=60) as client:
        end = next(data for event, data in client.task_events(job_id) if event == "end")
    if end["status"] != "done":
        raise SystemExit(f"fan-out {job_id} {end['status']}: {end['error']}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--fanout", type=int, default=200, metavar="RUNS",
                        help="runs of the fan-out (0: leave it out)")
    parser.add_argument("--seconds", type=float, default=0.5, help="each run's sleep")
    parser.add_argument("--slots", type=int, default=8, help="slots of each agent")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lev-bench-dispatch-"))
    # In memory, as `temporal server start-dev` runs by default: with its SQLite file it
    # spends most of the machine's CPU syncing that file, which the agents would share.
    temporal = TemporalServer.start(persistent=False)
    server = agent = None
    try:
        server = LevServer.start(root / "server", temporal.address)
        _publish(root / "server", root / "hub")
        agent = AgentProcess.start(root / "box", server.url, code=server.add_device("box"),
                                   extra=("--executor", "process", "--slots", "2"))
        wait_for(lambda: server.status("box") == "online", 60, "the agent online")
        asyncio.run(_dispatched(server, temporal.address, 1))  # warm-up: the wheel fetched
        asyncio.run(_bare(temporal.address, 1))
        walls, latencies = asyncio.run(_dispatched(server, temporal.address, args.tasks))
        bare = asyncio.run(_bare(temporal.address, args.tasks))
        fan: dict[str, float] = {}
        if args.fanout:
            agent.stop()
            fans = [AgentProcess.start(root / f"fan{n}", server.url,
                                       code=server.add_device(f"fan{n}", ["fan"]),
                                       extra=("--executor", "process", "--slots",
                                              str(args.slots)))
                    for n in (1, 2)]
            wait_for(lambda: all(server.status(f"fan{n}") == "online" for n in (1, 2)), 60,
                     "the fan-out agents online")
            fans[1].stop()
            _fanout(server, args.slots, args.seconds)  # warm-up
            fan["one_agent_s"] = _fanout(server, args.fanout, args.seconds)
            fans[1] = AgentProcess.start(root / "fan2", server.url,
                                         extra=("--executor", "process", "--slots",
                                                str(args.slots)))
            wait_for(lambda: server.status("fan2") == "online", 60, "fan2 online again")
            fan["two_agents_s"] = _fanout(server, args.fanout, args.seconds)
            for each in fans:
                each.stop()
    finally:
        if agent is not None:
            agent.stop()
        if server is not None:
            server.stop()
        temporal.stop()
        shutil.rmtree(root, ignore_errors=True)
    figures: dict[str, Any] = {
        "tasks": args.tasks,
        "dispatched_median_s": statistics.median(walls),
        "bare_activity_median_s": statistics.median(bare),
        "submit_to_start_median_s": statistics.median(latencies),
    }
    figures["ratio"] = figures["dispatched_median_s"] / figures["bare_activity_median_s"]
    if fan:
        figures.update(fan, fanout_runs=args.fanout, fanout_speedup=fan["one_agent_s"]
                       / fan["two_agents_s"])
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{args.tasks} tasks, one at a time, each one run of `true` (medians):")
    print(f"  dispatched to an agent   {figures['dispatched_median_s'] * 1000:8.1f} ms")
    print(f"  bare Temporal activity   {figures['bare_activity_median_s'] * 1000:8.1f} ms")
    print(f"  ratio                    {figures['ratio']:8.1f}x (target <= {TARGET_RATIO:g}x)")
    print(f"  submit to start (idle)   {figures['submit_to_start_median_s'] * 1000:8.1f} ms")
    if fan:
        print(f"fan-out of {args.fanout} runs of `sleep {args.seconds:g}`, {args.slots} slots "
              "per agent, spread over a pool:")
        print(f"  one agent                {fan['one_agent_s']:8.2f} s")
        print(f"  two agents               {fan['two_agents_s']:8.2f} s")
        print(f"  speed-up                 {figures['fanout_speedup']:8.2f}x (target >= "
              f"{TARGET_SPEEDUP:g}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
