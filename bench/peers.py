"""The same fan-out of a command tool through levrt and its peers, side by side.

    .venv/bin/python bench/peers.py [--runs 200] [--limit 16] [--rounds 3] [--sides LIST]
                                    [--image REF] [--json]

Every side runs ``--runs`` times the command ``true``, at most ``--limit`` at once, its output
piped and read:

- raw: ``asyncio.create_subprocess_exec`` bounded by ``asyncio.Semaphore(limit)``, the floor;
- raw-bwrap: the same, each ``true`` started through the very bubblewrap prefix the process
  executor's sandbox uses: the floor of a sandboxed run;
- process / process-unsandboxed / docker: ``Cr(image, cmd=["true"])`` started in
  ``Concurrent(limit=limit)`` inside one levrt job, through the process executor with its
  sandbox and without it (``sandbox = false``), and (when a Docker API answers) the docker one;
- prefect: one Prefect task per run, each running ``subprocess.run(["true"])``, submitted to a
  ``ThreadPoolTaskRunner(max_workers=limit)`` in one flow, against Prefect's own ephemeral
  server on 127.0.0.1. Prefect lives in bench/.venv-peers only, which this script creates on
  first use; its side runs in that environment's interpreter (this file again, with
  ``--prefect-side``), so nothing but the standard library is imported at the top.

Each side warms up first (one fan-out of ``limit`` runs: page cache, the store's first writes,
Prefect's server start), then runs ``--rounds`` timed fan-outs; the median counts. raw,
raw-bwrap and process alternate round by round in the same event loop. A benchmark, not a
test: it exits 0 whether the targets are met or not. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
COMMAND = ["true"]
SIDES = ("raw", "raw-bwrap", "process", "process-unsandboxed", "docker", "prefect")
LABELS = {"raw": "raw asyncio (Semaphore)", "raw-bwrap": "raw asyncio, same bwrap prefix"}
#: the Prefect release measured; pinned so that figures of different days compare
PREFECT_VERSION = "3.9.1"
PEERS_VENV = BENCH_DIR / ".venv-peers"
#: levrt's process side at most this many times raw's wall (raw-bwrap's, when measured: the
#: sandbox's own cost is bubblewrap's, not levrt's)
TARGET_RAW_RATIO = 2.0
#: Prefect's wall at least this many times levrt's process side
TARGET_PREFECT_RATIO = 30.0

Fanout = Callable[[int, int], Awaitable[None]]


def log(message: str) -> None:
    # Progress goes to stderr so that --json leaves stdout one parseable object.
    print(message, file=sys.stderr, flush=True)


def cpu_ms() -> tuple[float, float]:
    """CPU ms used so far by this process (all threads) and by its reaped children."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((own.ru_utime + own.ru_stime) * 1000.0, (kids.ru_utime + kids.ru_stime) * 1000.0)


class StoreClock:
    """Wall ms spent in a store's per-run writes, by method (they run on the event loop)."""

    WRITES = ("create_run", "finish_run", "set_job_progress", "append_logs", "merge_document")

    def __init__(self, store: Any) -> None:
        self.spent: dict[str, float] = {}
        for name in self.WRITES:
            setattr(store, name, self._timed(name, getattr(store, name)))

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + (time.perf_counter() - start) * 1e3

        return timed


class Rounds:
    """What each timed fan-out of one side cost: wall s, and per run CPU and store ms."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.host_cpu: list[float] = []
        self.child_cpu: list[float] = []
        self.store: list[dict[str, float]] = []

    def summary(self, count: int) -> dict[str, Any]:
        out: dict[str, Any] = {"wall_s": statistics.median(self.wall), "rounds_s": self.wall}
        if self.host_cpu:
            out["host_cpu_ms_per_run"] = statistics.median(self.host_cpu) / count
            out["child_cpu_ms_per_run"] = statistics.median(self.child_cpu) / count
        if any(self.store):
            out["store_ms_per_run"] = {
                name: statistics.median(r.get(name, 0.0) for r in self.store) / count
                for name in StoreClock.WRITES if any(name in r for r in self.store)}
        return out


async def timed_rounds(sides: dict[str, Fanout], count: int, limit: int, rounds: int,
                       clock: StoreClock | None = None) -> dict[str, Rounds]:
    """Warm each side up once, then time ``rounds`` fan-outs of each, alternating who leads."""
    for fanout in sides.values():
        await fanout(min(count, limit), limit)
    measured = {name: Rounds() for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            if clock is not None:
                clock.spent = {}
            host, child = cpu_ms()
            start = time.perf_counter()
            await sides[name](count, limit)
            wall = time.perf_counter() - start
            host_after, child_after = cpu_ms()
            side = measured[name]
            side.wall.append(wall)
            side.host_cpu.append(host_after - host)
            side.child_cpu.append(child_after - child)
            side.store.append(dict(clock.spent) if clock is not None else {})
            log(f"    round {r + 1}/{rounds}: {name} {wall:.2f} s")
    return measured


# -- raw asyncio -----------------------------------------------------------------


def raw_fanout(prefix: list[str]) -> Fanout:
    """``prefix`` + COMMAND, the raw way; an empty prefix is the plain command."""
    argv = [*prefix, *COMMAND]

    async def fanout(count: int, limit: int) -> None:
        slots = asyncio.Semaphore(limit)

        async def one() -> None:
            async with slots:
                proc = await asyncio.create_subprocess_exec(*argv, stdin=DEVNULL, stdout=PIPE,
                                                            stderr=PIPE)
                await proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"{argv} exited with {proc.returncode}")

        await asyncio.gather(*(one() for _ in range(count)))

    return fanout


# -- levrt -----------------------------------------------------------------------


def levrt_fanout(image: str) -> Fanout:
    import levrt

    async def fanout(count: int, limit: int) -> None:
        async with levrt.Concurrent(limit=limit) as group:
            tasks = [group.start(levrt.Cr(image, cmd=COMMAND)) for _ in range(count)]
        failed = [t.exception() for t in tasks if t.exception() is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} of {count} runs failed, first: {failed[0]}")

    return fanout


def make_executor(side: str) -> Any:
    """The executor of a levrt side: docker, or process with or without its sandbox."""
    import dataclasses

    from levrt._config import load_settings
    from levrt.executors import create
    from levrt.executors.process import ProcessExecutor

    if side == "docker":
        return create("docker")
    sandbox = side == "process"
    return ProcessExecutor(settings=dataclasses.replace(load_settings(), sandbox=sandbox))


def sandbox_prefix(executor: Any) -> list[str]:
    """The bubblewrap prefix the sandboxed process executor gives a run without files."""
    from levrt.executors.sandbox import bwrap_argv

    if executor.bwrap is None:
        raise RuntimeError("raw-bwrap needs bubblewrap (apt-get install bubblewrap)")
    return bwrap_argv({}, executor._keep, binary=executor.bwrap)


def bench_levrt(side: str, image: str, args: argparse.Namespace,
                raw_sides: list[str]) -> dict[str, Any]:
    """One job on levrt side ``side``; the ``raw_sides`` run in the same event loop."""
    import levrt
    from levrt.store import Store

    executor = make_executor(side)
    sides: dict[str, Fanout] = {side: levrt_fanout(image)}
    for name in raw_sides:
        sides[name] = raw_fanout(sandbox_prefix(executor) if name == "raw-bwrap" else [])
    log(f"levrt {executor.describe()}{''.join(', ' + n for n in raw_sides)}: warm-up, "
        f"then {args.rounds} round(s) of {args.runs} runs ...")
    store = Store(f"sqlite:///{os.environ['LEV_HOME']}/bench-{side}.db")
    try:
        measured = asyncio.run(levrt.arun(
            timed_rounds(sides, args.runs, args.limit, args.rounds, StoreClock(store)),
            f"bench-peers-{side}", store=store, executor=executor))
    finally:
        store.close()
    result = {name: rounds.summary(args.runs) for name, rounds in measured.items()}
    result[side]["label"] = f"levrt {executor.describe()}"
    for name in raw_sides:
        result[name]["label"] = LABELS[name]
        result[name].pop("store_ms_per_run", None)  # the store clock counts levrt's side
    return result


def bench_raw(args: argparse.Namespace, raw_sides: list[str]) -> dict[str, Any]:
    """The raw sides alone, without levrt."""
    prefix = sandbox_prefix(make_executor("process")) if "raw-bwrap" in raw_sides else []
    sides = {name: raw_fanout(prefix if name == "raw-bwrap" else []) for name in raw_sides}
    log(f"{', '.join(raw_sides)}: warm-up, then {args.rounds} round(s) of {args.runs} runs ...")
    measured = asyncio.run(timed_rounds(sides, args.runs, args.limit, args.rounds))
    return {name: {**rounds.summary(args.runs), "label": LABELS[name]}
            for name, rounds in measured.items()}


def docker_ready(image: str) -> str | None:
    """Why the docker side cannot run here, or None when it can."""
    try:
        from levrt.executors.docker import _docker, engine_url
    except ImportError as exc:
        return str(exc)
    url = engine_url()
    if url is None:
        return "no Docker API answers (set DOCKER_HOST)"
    client = _docker().DockerClient(base_url=url, timeout=10)
    try:
        client.images.get(image)
    except Exception as exc:  # noqa: BLE001 - any failure means the side is skipped
        return f"image {image} not found at {url} ({type(exc).__name__}); build it with " \
               "images/build-all.sh or pass --image"
    finally:
        client.close()
    os.environ["DOCKER_HOST"] = url  # the executor then uses the engine checked here
    return None


# -- Prefect ---------------------------------------------------------------------


def peers_python() -> Path:
    """bench/.venv-peers/bin/python with Prefect PREFECT_VERSION, installed on first use."""
    python = PEERS_VENV / "bin" / "python"
    check = [str(python), "-c", f"import prefect, sys; sys.exit(prefect.__version__ != "
             f"{PREFECT_VERSION!r})"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    log(f"installing Prefect {PREFECT_VERSION} into {PEERS_VENV} (a few minutes, once) ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    (PEERS_VENV / ".gitignore").write_text("*\n")  # a tool's environment, never committed
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"prefect=={PREFECT_VERSION}"],
                   check=True)
    return python


def prefect_env(home: str) -> dict[str, str]:
    """The environment of the Prefect side: its own home, its own server, nothing sent out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    loopback = "127.0.0.1,localhost"
    env.update({
        "PREFECT_HOME": home,  # a fresh database for the ephemeral server
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",  # no PREFECT_API_URL: a local server
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",  # the client's analytics
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",  # no line per task run on the console
        # The first start migrates the database; on a busy 2-CPU box that takes well over 20 s.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        # The client talks to its server over HTTP on 127.0.0.1: never through a proxy.
        "NO_PROXY": ",".join(filter(None, [env.get("NO_PROXY"), loopback])),
        "no_proxy": ",".join(filter(None, [env.get("no_proxy"), loopback])),
    })
    return env


def bench_prefect(args: argparse.Namespace) -> dict[str, Any]:
    python = peers_python()
    log(f"Prefect {PREFECT_VERSION}: server start and warm-up, then {args.rounds} round(s) "
        f"of {args.runs} runs ...")
    home = tempfile.mkdtemp(prefix="lev-bench-prefect-")
    try:
        with open(Path(home) / "stderr.txt", "w+") as errors:
            proc = subprocess.run(
                [str(python), str(BENCH_DIR / "peers.py"), "--prefect-side", "--runs",
                 str(args.runs), "--limit", str(args.limit), "--rounds", str(args.rounds)],
                stdout=PIPE, stderr=errors, text=True, env=prefect_env(home), cwd=home,
            )
            if proc.returncode != 0:
                errors.seek(0)
                tail = errors.read()[-3000:]
                raise RuntimeError(f"the Prefect side exited with {proc.returncode}:\n{tail}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    measured = json.loads(proc.stdout.splitlines()[-1])  # after anything Prefect printed
    rounds = Rounds()
    for r, wall in enumerate(measured["rounds_s"]):
        log(f"    round {r + 1}/{args.rounds}: prefect {wall:.2f} s")
        rounds.wall.append(wall)
    return {"prefect": {**rounds.summary(args.runs), "label": f"Prefect {measured['version']}",
                        "startup_s": measured["startup_s"]}}


def prefect_side(args: argparse.Namespace) -> int:
    """Runs in bench/.venv-peers: prints {"version", "startup_s", "rounds_s"} as JSON."""
    import prefect
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.futures import wait
    from prefect.task_runners import ThreadPoolTaskRunner

    @task(cache_policy=NO_CACHE, persist_result=False)
    def run_command() -> None:
        subprocess.run(COMMAND, stdin=subprocess.DEVNULL, capture_output=True, check=True)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=args.limit), persist_result=False)
    def fan_out(count: int) -> None:
        futures = [run_command.submit() for _ in range(count)]
        wait(futures)
        for future in futures:
            future.result()  # raises if a run failed

    start = time.perf_counter()
    fan_out(min(args.runs, args.limit))  # starts the ephemeral server too
    startup = time.perf_counter() - start
    rounds = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        fan_out(args.runs)
        rounds.append(time.perf_counter() - start)
    print(json.dumps({"version": prefect.__version__, "startup_s": startup, "rounds_s": rounds}))
    return 0


# -- report ----------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def summarize(result: dict[str, Any]) -> None:
    """Ratios to raw, levrt's process side against its floor, and Prefect against levrt."""
    sides = result["sides"]
    raw = sides.get("raw")
    for side in sides.values():
        side["runs_per_s"] = result["runs"] / side["wall_s"]
        if raw:
            side["x_raw"] = side["wall_s"] / raw["wall_s"]
    floors = {"process": sides.get("raw-bwrap") or raw, "process-unsandboxed": raw}
    for name, floor in floors.items():
        ours = sides.get(name)
        if ours and floor:
            ratio = ours["wall_s"] / floor["wall_s"]
            result.setdefault("target_raw", {})[name] = {
                "ratio": ratio, "against": floor["label"], "at_most": TARGET_RAW_RATIO,
                "pass": ratio <= TARGET_RAW_RATIO}
    prefect = sides.get("prefect")
    ours = sides.get("process") or sides.get("process-unsandboxed")
    if ours and prefect:
        faster = prefect["wall_s"] / ours["wall_s"]
        result["target_prefect"] = {"ratio": faster, "against": ours["label"],
                                    "at_least": TARGET_PREFECT_RATIO,
                                    "pass": faster >= TARGET_PREFECT_RATIO}


def render(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        f"levrt peers benchmark - {env['date']} - {env['cpus']} CPUs, Python {env['python']}, "
        f"{env['platform']}",
        f"load average (1 min) before the start: {env['loadavg_1m']:.1f}",
        "",
        f"{result['runs']} runs of `{' '.join(COMMAND)}`, at most {result['limit']} at once; "
        f"median of {result['rounds']} round(s) after a warm-up",
        f"    {'side':<46}{'wall s':>8}{'runs/s':>9}{'x raw':>8}   rounds s",
    ]
    for side in result["sides"].values():
        x_raw = f"{side['x_raw']:7.2f}x" if "x_raw" in side else " " * 8
        rounds = "/".join(f"{w:.2f}" for w in side["rounds_s"])
        lines.append(f"    {side['label']:<46}{side['wall_s']:8.2f}{side['runs_per_s']:9.0f}"
                     f"{x_raw}   {rounds}")
    for name, why in result["skipped"].items():
        lines.append(f"    {name:<46}skipped: {why}")
    cpu = [side for side in result["sides"].values() if "host_cpu_ms_per_run" in side]
    if cpu:
        lines += ["per run, median round: host and child = CPU ms of this process and of what it "
                  "started; store = wall ms in levrt's store writes (on the event loop's thread)",
                  f"    {'side':<46}{'host':>8}{'child':>8}{'store':>8}   store writes"]
        for side in cpu:
            store = side.get("store_ms_per_run", {})
            parts = ", ".join(f"{name} {ms:.2f}" for name, ms in store.items())
            total = f"{sum(store.values()):8.2f}" if store else " " * 8
            lines.append(f"    {side['label']:<46}{side['host_cpu_ms_per_run']:8.2f}"
                         f"{side['child_cpu_ms_per_run']:8.2f}{total}   {parts}")
    for name, target in result.get("target_raw", {}).items():
        label = result["sides"][name]["label"]
        lines.append(f"{label} / {target['against']}: {target['ratio']:.2f}x "
                     f"(target <= {target['at_most']:.0f}x)  {verdict(target['pass'])}")
    target = result.get("target_prefect")
    if target:
        startup = result["sides"]["prefect"]["startup_s"]
        lines.append(f"Prefect / {target['against']}: {target['ratio']:.1f}x, levrt is that "
                     f"much faster (target >= {target['at_least']:.0f}x)  "
                     f"{verdict(target['pass'])}; Prefect's server start and warm-up took "
                     f"{startup:.1f} s more")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def side_list(text: str) -> list[str]:
    sides = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(sides) - set(SIDES))
    if unknown or not sides:
        raise argparse.ArgumentTypeError(f"choose among {','.join(SIDES)}, not {text!r}")
    return sides


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=positive, default=200, help="runs per fan-out (200)")
    parser.add_argument("--limit", type=positive, default=16, help="runs at once (16)")
    parser.add_argument("--rounds", type=positive, default=3,
                        help="timed fan-outs per side; the median counts (3)")
    parser.add_argument("--sides", type=side_list, default=list(SIDES),
                        help=f"comma-separated, among {','.join(SIDES)} (all)")
    parser.add_argument("--image", default="localhost/lev-base:bookworm",
                        help="the image of the docker side; it needs `true` on its PATH")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--prefect-side", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prefect_side:
        return prefect_side(args)
    sys.path.insert(0, str(BENCH_DIR))
    from runtime import isolate  # the same throwaway LEV_HOME as the runtime benchmark

    result: dict[str, Any] = {
        "environment": {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "loadavg_1m": os.getloadavg()[0],
        },
        "runs": args.runs, "limit": args.limit, "rounds": args.rounds,
        "sides": {}, "skipped": {},
    }
    sides, skipped = result["sides"], result["skipped"]
    raw_sides = [name for name in ("raw", "raw-bwrap") if name in args.sides]
    home = isolate()
    try:
        # The raw sides share the sandboxed side's job and loop, or the unsandboxed one's.
        levrt_sides = [name for name in ("process", "process-unsandboxed") if name in args.sides]
        for side in levrt_sides:
            sides.update(bench_levrt(side, args.image, args, raw_sides))
            raw_sides = []
        if raw_sides:
            sides.update(bench_raw(args, raw_sides))
        if "docker" in args.sides:
            why = docker_ready(args.image)
            if why:
                skipped["levrt docker"] = why
            else:
                sides.update(bench_levrt("docker", args.image, args, []))
        if "prefect" in args.sides:
            sides.update(bench_prefect(args))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    sides = {name: sides[name] for name in SIDES if name in sides}  # a fixed order
    result["sides"] = sides
    summarize(result)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
