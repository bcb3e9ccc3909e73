"""Docker executor overhead against raw Docker SDK calls, side by side in one run.

    .venv/bin/python bench/containers.py [--image REF] [--runs N] [--fanout N] [--limit N]
        [--nopython-image REF] [--sets N] [--lines N] [--json]

(a) a no-op entry awaited N times in a row through the docker executor, against
    ``client.containers.run(image, ["python3", "-c", "pass"], remove=True)`` of the
    same image N times; sides alternate run by run.
(b) N no-op runs under ``Concurrent(limit=L)`` against N raw ``containers.run``
    calls on L threads.
(c) the no-op entry N times on an image without python3 (the bundled Python through its
    own loader) against (a)'s runs on an image with python3; its first run (the PATH
    lookup, and the volume check or fill) is shown apart.
(d) the loss case: S single-key ctx.set calls beside L stderr lines, run once; results
    and log lines lost, repeated and out of order are counted (all must be 0), and the
    throughput in log lines per second is shown.
Target for (a) and (b): ours at most 1.15x raw. A benchmark, not a test: it always exits 0.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET = 1.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="localhost/lev-nmap:test")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--fanout", type=int, default=20)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--nopython-image", default="localhost/lev-nopython:bookworm")
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=20000)
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
    from levrt import Concurrent, Cr
    from levrt.executors.docker import DockerExecutor, engine_url
    from levrt.store import Store

    url = engine_url()
    if url is None:
        print("no Docker API answers here: nothing to measure", file=sys.stderr)
        return
    client = docker.DockerClient(base_url=url, timeout=300)
    from chatty_tool import chatty
    from noop_tool import entry, noop

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

        start = time.perf_counter()
        await Cr(args.nopython_image, entry=entry())
        times["nopython_first"] = [time.perf_counter() - start]
        times["nopython"] = []
        for _ in range(args.runs):
            start = time.perf_counter()
            await Cr(args.nopython_image, entry=entry())
            times["nopython"].append(time.perf_counter() - start)

        start = time.perf_counter()
        task = await chatty(args.image, args.sets, args.lines).start()
        await task
        times["loss_case"] = [time.perf_counter() - start, task.id]
        job_ids.append(levrt.lev.job_id)
        return times

    store = Store(f"sqlite:///{home}/bench.db")
    job_ids: list[str] = []
    try:
        times = levrt.run(job(), store=store, executor=DockerExecutor(url), echo=False)
        loss = _loss_counts(store, job_ids[0], int(times["loss_case"][1]), args.sets,
                            args.lines)
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
        "nopython_ms": {"first": times["nopython_first"][0] * 1e3,
                        "median": statistics.median(times["nopython"]) * 1e3,
                        "ratio": statistics.median(times["nopython"]) / ours},
        "loss_case": {"sets": args.sets, "lines": args.lines, "s": times["loss_case"][0],
                      "lines_per_s": args.lines / times["loss_case"][0], **loss},
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
    nopy = result["nopython_ms"]
    print(f"(c) no python3 in the image: median {nopy['median']:.0f} ms per run, "
          f"{nopy['ratio']:.2f}x (a)'s {ours * 1e3:.0f} ms; first run {nopy['first']:.0f} ms")
    case = result["loss_case"]
    verdict = "PASS" if not any(case[k] for k in _LOSS_KEYS) else "MISS"
    print(f"(d) {args.sets} ctx.set beside {args.lines} log lines: {case['s']:.1f} s, "
          f"{case['lines_per_s']:.0f} lines/s; " +
          ", ".join(f"{k.replace('_', ' ')} {case[k]}" for k in _LOSS_KEYS) + f"   {verdict}")


_LOSS_KEYS = ("results_lost", "lines_lost", "lines_repeated", "lines_out_of_order")


def _loss_counts(store: Any, job_id: str, run_id: int, sets: int,
                 lines: int) -> dict[str, int]:
    """What the loss case's run stored, against what it wrote."""
    (document,) = store.find_documents(job_id=job_id, run_id=run_id)
    results = [k for k in document["data"] if k.startswith("k")]
    numbers = [int(r["text"].split()[1]) for r in store.get_logs(job_id, run_id=run_id)
               if r["text"].startswith("line ")]
    return {"results_lost": sets - len(results),
            "lines_lost": lines - len(set(numbers)),
            "lines_repeated": len(numbers) - len(set(numbers)),
            "lines_out_of_order": sum(
                b < a for a, b in zip(numbers, numbers[1:], strict=False))}


if __name__ == "__main__":
    main()
