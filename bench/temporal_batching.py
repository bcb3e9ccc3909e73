"""What one workflow per activity costs the Temporal dev server, beside batches of activities.

    .venv/bin/python bench/temporal_batching.py [--activities 400] [--sizes 1,8,50]

A spread fan-out starts one workflow per run today (``levrt.run``: one activity). This starts
``--activities`` activities that sleep 50 ms, once per batch size: size 1 is one workflow per
activity, as levrt does; size N is one workflow per N activities, all started at once. It
prints each side's wall and the dev server's CPU per activity (from ``/proc``). The worker
runs in this process, unsandboxed, like an agent's. A benchmark, not a test: see
bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers_temporal import TemporalServer  # noqa: E402
from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import UnsandboxedWorkflowRunner, Worker  # noqa: E402

# As levrt.agent._workflows schedules a run's activity.
_OPTIONS = {"start_to_close_timeout": timedelta(seconds=60),
            "heartbeat_timeout": timedelta(seconds=30)}


@activity.defn(name="bench.nap")
async def _nap() -> int:
    await asyncio.sleep(0.05)
    return 0


@workflow.defn(name="bench.batch", sandboxed=False)
class _Batch:
    @workflow.run
    async def run(self, size: int) -> list[int]:
        return list(await asyncio.gather(*(
            workflow.execute_activity("bench.nap", activity_id=str(i), **_OPTIONS)
            for i in range(size))))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(address: str, pid: int, activities: int,
                   sizes: list[int]) -> list[tuple[int, float, float]]:
    client = await Client.connect(address)
    queue = f"bench-{uuid.uuid4().hex}"
    found = []
    async with Worker(client, task_queue=queue, workflows=[_Batch], activities=[_nap],
                      max_concurrent_activities=64,
                      workflow_runner=UnsandboxedWorkflowRunner()):
        for size in sizes:
            cpu, wall = _cpu_seconds(pid), time.perf_counter()
            handles = [await client.start_workflow("bench.batch", size, task_queue=queue,
                                                   id=f"bench-{uuid.uuid4().hex}")
                       for _ in range(max(1, activities // size))]
            await asyncio.gather(*(handle.result() for handle in handles))
            found.append((size, time.perf_counter() - wall, _cpu_seconds(pid) - cpu))
    return found


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activities", type=int, default=400)
    parser.add_argument("--sizes", type=_sizes, default=[1, 8, 50],
                        help="activities per workflow, comma-separated (1: one each)")
    args = parser.parse_args()
    temporal = TemporalServer.start(persistent=False)
    try:
        found = asyncio.run(_measure(temporal.address, temporal.process.pid, args.activities,
                                     args.sizes))
    finally:
        temporal.stop()
    print(f"{args.activities} activities of 50 ms, Temporal dev server in memory:")
    for size, wall, cpu in found:
        label = "one workflow each" if size == 1 else f"{size} per workflow"
        print(f"  {label:20s} wall {wall:6.2f} s   server CPU {1000 * cpu / args.activities:5.1f}"
              " ms per activity")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
