"""Docker executor overhead against raw Docker SDK calls, side by side in one run.

    .venv/bin/python bench/containers.py [--image REF] [--runs N] [--fanout N] [--limit N] [--json]

(a) a no-op entry awaited N times in a row through the docker executor, against
    ``client.containers.run(image, ["python3", "-c", "pass"], remove=True)`` of the
    same image N times; sides alternate run by run.
(b) N no-op runs under ``Concurrent(limit=L)`` against N raw ``containers.run``
    calls on L threads.
Target: ours at most 1.15x raw. A benchmark, not a test: it always exits 0.
Needs a Docker API (DOCKER_HOST or /run/podman.sock) and the image (images/build-all.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET = 1.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="localhost/lev-nmap:test")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--fanout", type=int, default=20)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name in [k for k in os.environ if k.startswith("LEV_")]:
        del os.environ[name]
    home = tempfile.mkdtemp(prefix="lev-bench-")
    os.environ["LEV_HOME"] = home
    from noop_tool import IMAGE  # the no-op tool's image is mapped to the one measured

    os.environ["LEV_IMAGE_ALIASES"] = json.dumps({IMAGE: args.image})

    import docker

    import levrt
    from levrt import Concurrent
    from levrt.executors.docker import DockerExecutor, engine_url
    from levrt.store import Store

    url = engine_url()
    if url is None:
        print("no Docker API answers here: nothing to measure", file=sys.stderr)
        return
    client = docker.DockerClient(base_url=url, timeout=300)
    from noop_tool import noop

    def raw_once() -> None:
        client.containers.run(args.image, ["python3", "-c", "pass"], remove=True)

    async def job() -> dict[str, list[float]]:
        loop = asyncio.get_running_loop()
        times: dict[str, list[float]] = {"ours": [], "raw": []}
        await noop()  # warm-up: the job's network, the image lookup
        await loop.run_in_executor(None, raw_once)
        for i in range(args.runs):
            for side in (("ours", "raw") if i % 2 else ("raw", "ours")):
                start = time.perf_counter()
                if side == "ours":
                    await noop()
                else:
                    await loop.run_in_executor(None, raw_once)
                times[side].append(time.perf_counter() - start)

        start = time.perf_counter()
        async with Concurrent(limit=args.limit) as c:
            for _ in range(args.fanout):
                c.start(noop())
        times["ours_fanout"] = [time.perf_counter() - start]
        start = time.perf_counter()
        with ThreadPoolExecutor(args.limit) as pool:
            list(pool.map(lambda _: raw_once(), range(args.fanout)))
        times["raw_fanout"] = [time.perf_counter() - start]
        return times

    store = Store(f"sqlite:///{home}/bench.db")
    try:
        times = levrt.run(job(), store=store, executor=DockerExecutor(url), echo=False)
    finally:
        store.close()
        client.close()
    ours, raw = statistics.median(times["ours"]), statistics.median(times["raw"])
    fan_ours, fan_raw = times["ours_fanout"][0], times["raw_fanout"][0]
    result = {
        "engine": url, "image": args.image, "runs": args.runs, "fanout": args.fanout,
        "limit": args.limit, "load": os.getloadavg()[0],
        "per_run_ms": {"ours": ours * 1e3, "raw": raw * 1e3, "ratio": ours / raw},
        "fanout_s": {"ours": fan_ours, "raw": fan_raw, "ratio": fan_ours / fan_raw},
        "target_ratio": TARGET,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"docker executor benchmark - {url}, image {args.image}, "
          f"load {result['load']:.1f}")
    print(f"{'':28}{'ours':>9}{'raw':>9}{'ratio':>8}   target")
    for label, (o, r, unit) in {
        f"(a) median per run ({args.runs})": (ours * 1e3, raw * 1e3, "ms"),
        f"(b) {args.fanout} runs, limit {args.limit}": (fan_ours, fan_raw, "s"),
    }.items():
        verdict = "PASS" if o / r <= TARGET else "MISS"
        print(f"{label:28}{o:8.2f}{unit[0]}{r:8.2f}{unit[0]}{o / r:7.2f}x   "
              f"<= {TARGET}x {verdict}")


if __name__ == "__main__":
    main()
