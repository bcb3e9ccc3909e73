"""What a levrt run costs on top of the process it starts.

    .venv/bin/python bench/runtime.py [--runs N] [--fanout N] [--limit N] [--json]

(a) per-run overhead: a no-op ``@remote`` entry awaited N times in a row in
    one job (process executor), against a raw ``asyncio`` subprocess running
    ``python -u -c pass`` with its output piped and read. A third, diagnostic
    side runs the shim itself the raw way (payload piped in, no levrt on the
    host), which splits our overhead into the child's part and the host's.
(b) fan-out: F no-op runs in ``Concurrent(limit=L)`` in one job, against F raw
    subprocesses bounded by ``asyncio.Semaphore(L)``.
(c) the sandbox's cost: the same no-op entry, and ``cmd=["true"]``, started N
    times in a row through the process executor with the sandbox on and off,
    interleaved run by run.

A benchmark, not a test: it exits 0 whether the targets are met or not. See
bench/README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from levrt.store import Store

#: at most this many ms added per run, median of (a)
TARGET_ADDED_MS = 10.0
#: ours at most this many times the raw wall time in (b)
TARGET_FANOUT_RATIO = 2.0
#: the sandbox adds at most this many ms per run, median of (c)
TARGET_SANDBOX_MS = 10.0
#: runs in the cProfile pass and entries shown from it
PROFILE_RUNS = 20
PROFILE_TOP = 15
PROFILE_SHORT = 8

BENCH_DIR = Path(__file__).resolve().parent
RAW_ARGV = [sys.executable, "-u", "-c", "pass"]

Side = Callable[[], Awaitable[None]]


def log(message: str) -> None:
    # Progress goes to stderr so that --json leaves stdout one parseable object.
    print(message, file=sys.stderr, flush=True)


# -- the sides -----------------------------------------------------------------


async def raw_once() -> None:
    """The anchor: the least a fresh Python process costs, output piped and read to EOF."""
    proc = await asyncio.create_subprocess_exec(*RAW_ARGV, stdin=DEVNULL, stdout=PIPE,
                                                stderr=PIPE)
    await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"raw subprocess exited with {proc.returncode}")


def shim_side(payload: bytes) -> Side:
    """The shim started the raw way: the child's cost of a run without levrt's host side."""
    from levrt.shim import SHIM_PATH

    argv = [sys.executable, "-u", str(SHIM_PATH)]

    async def shim_once() -> None:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=PIPE, stdout=PIPE, stderr=PIPE)
        _, err = await proc.communicate(payload)
        if proc.returncode != 0:
            raise RuntimeError(f"shim exited with {proc.returncode}: {err.decode()[-500:]}")

    return shim_once


async def ours_once() -> None:
    """One no-op run the way a workflow does it: build the tool's Cr and await it."""
    import noop_tool

    await noop_tool.noop()


def cpu_ms() -> tuple[float, float]:
    """CPU ms used so far by this process (all threads) and by its reaped children.

    getrusage has microsecond resolution, unlike os.times' clock ticks, so one run's
    share can be read; children's time counts only our own, not other load on the box.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((own.ru_utime + own.ru_stime) * 1000.0, (kids.ru_utime + kids.ru_stime) * 1000.0)


class Sample:
    """Wall and CPU ms of one measured stretch: one run in (a), a whole fan-out in (b)."""

    def __init__(self) -> None:
        self.wall = self.host_cpu = self.child_cpu = 0.0

    async def measure(self, work: Awaitable[None]) -> Sample:
        host, child = cpu_ms()
        start = time.perf_counter()
        await work
        self.wall = (time.perf_counter() - start) * 1000.0
        host_after, child_after = cpu_ms()
        self.host_cpu, self.child_cpu = host_after - host, child_after - child
        return self


# -- (a) per-run overhead ------------------------------------------------------


async def sequential_job(runs: int, payload: bytes) -> dict[str, list[Sample]]:
    """All three sides in one job, rotated each round so that none always goes first."""
    sides: dict[str, Side] = {"ours": ours_once, "raw": raw_once, "shim": shim_side(payload)}
    for side in sides.values():  # warm-up: page cache, pyc files, the store's first writes
        await side()
    samples: dict[str, list[Sample]] = {name: [] for name in sides}
    names = list(sides)
    for i in range(runs):
        for name in names[i % 3:] + names[:i % 3]:
            samples[name].append(await Sample().measure(sides[name]()))
    return samples


def summarize(samples: list[Sample]) -> dict[str, float]:
    ms = [s.wall for s in samples]
    return {
        "mean_ms": statistics.fmean(ms),
        "median_ms": statistics.median(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "stdev_ms": statistics.stdev(ms) if len(ms) > 1 else 0.0,
        "host_cpu_ms": statistics.fmean(s.host_cpu for s in samples),
        "child_cpu_ms": statistics.fmean(s.child_cpu for s in samples),
    }


def bench_sequential(store: Store, runs: int, sandbox: bool) -> dict[str, Any]:
    import noop_tool

    import levrt
    from levrt._remote import pack
    from levrt.shim.entry import dumps

    payload = dumps(pack(noop_tool.entry())).encode()
    log(f"(a) {runs} sequential runs per side (ours, raw, shim), after one warm-up each ...")
    samples = asyncio.run(levrt.arun(sequential_job(runs, payload), "bench-sequential",
                                     store=store, executor=process_executor(sandbox)))
    stats = {name: summarize(ms) for name, ms in samples.items()}
    ours, raw, shim = stats["ours"], stats["raw"], stats["shim"]
    added = {
        "mean_ms": ours["mean_ms"] - raw["mean_ms"],
        "median_ms": ours["median_ms"] - raw["median_ms"],
    }
    return {
        "runs": runs,
        "ours": ours,
        "raw": raw,
        "shim": shim,
        "added": added,
        "ratio_median": ours["median_ms"] / raw["median_ms"],
        # Where the added time goes: the child (shim vs bare python) or the host (levrt).
        "split_median_ms": {
            "child": shim["median_ms"] - raw["median_ms"],
            "host": ours["median_ms"] - shim["median_ms"],
        },
        "target_added_ms": TARGET_ADDED_MS,
        "pass": added["median_ms"] <= TARGET_ADDED_MS,
    }


# -- (b) fan-out ---------------------------------------------------------------


async def ours_fanout(count: int, limit: int) -> None:
    import noop_tool

    import levrt

    async with levrt.Concurrent(limit=limit) as group:
        tasks = [group.start(noop_tool.noop()) for _ in range(count)]
    failed = [t.exception() for t in tasks if t.exception() is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} of {count} no-op runs failed, first: {failed[0]!r}")


async def raw_fanout(count: int, limit: int) -> None:
    slots = asyncio.Semaphore(limit)

    async def bounded() -> None:
        async with slots:
            await raw_once()

    await asyncio.gather(*(bounded() for _ in range(count)))


async def fanout_job(count: int, limit: int, rounds: int) -> dict[str, list[Sample]]:
    sides = {"ours": ours_fanout, "raw": raw_fanout}
    warm = min(count, limit)
    for side in sides.values():
        await side(warm, limit)
    samples: dict[str, list[Sample]] = {name: [] for name in sides}
    for r in range(rounds):
        # ABBA...: alternate who goes first so that drift in machine load hits both sides.
        for name in (["ours", "raw"] if r % 2 == 0 else ["raw", "ours"]):
            log(f"    round {r + 1}/{rounds}: {name} ...")
            samples[name].append(await Sample().measure(sides[name](count, limit)))
    return samples


def bench_fanout(store: Store, count: int, limit: int, rounds: int,
                 sandbox: bool) -> dict[str, Any]:
    import levrt

    log(f"(b) fan-out of {count} runs per side, limit {limit}, {rounds} round(s) per side ...")
    samples = asyncio.run(levrt.arun(fanout_job(count, limit, rounds), "bench-fanout",
                                     store=store, executor=process_executor(sandbox)))
    result: dict[str, Any] = {"runs": count, "limit": limit, "rounds": rounds}
    for name, side in samples.items():
        wall = statistics.fmean(s.wall for s in side) / 1000.0
        result[name] = {
            "wall_s": wall,
            "rounds_s": [s.wall / 1000.0 for s in side],
            "runs_per_s": count / wall,
            # Per run, to compare with (a): on a small box fan-out is CPU-bound, so the
            # CPU ratio predicts the wall ratio without the noise of other load.
            "host_cpu_ms_per_run": statistics.fmean(s.host_cpu for s in side) / count,
            "child_cpu_ms_per_run": statistics.fmean(s.child_cpu for s in side) / count,
        }
    ours, raw = result["ours"], result["raw"]
    ratio = ours["wall_s"] / raw["wall_s"]
    result.update({
        "ratio": ratio,
        "cpu_ratio": (ours["host_cpu_ms_per_run"] + ours["child_cpu_ms_per_run"])
        / (raw["host_cpu_ms_per_run"] + raw["child_cpu_ms_per_run"]),
        "target_ratio": TARGET_FANOUT_RATIO,
        "pass": ratio <= TARGET_FANOUT_RATIO,
    })
    return result


# -- (c) the sandbox's cost ------------------------------------------------------


def process_executor(sandbox: bool) -> Any:
    from levrt._config import load_settings
    from levrt.executors.process import ProcessExecutor

    return ProcessExecutor(settings=dataclasses.replace(load_settings(), sandbox=sandbox))


class _Discard:
    """An observer that drops what a run reports: (c) measures the executor alone."""

    def on_log(self, stream: str, lines: list[str]) -> None:
        pass

    def on_ctx(self, data: dict[str, Any]) -> None:
        pass

    def on_error(self, kind: str, message: str) -> None:
        raise RuntimeError(f"a no-op run failed: {kind}: {message}")


async def sandbox_job(runs: int) -> dict[str, dict[str, list[Sample]]]:
    import noop_tool

    from levrt._remote import pack
    from levrt.executors import RunSpec

    executors = {"on": process_executor(True), "off": process_executor(False)}
    specs = {
        "entry": RunSpec("bench", 0, "noop", "bench", payload=pack(noop_tool.entry())),
        "cmd": RunSpec("bench", 0, "true", "bench", cmd=["true"]),
    }

    async def once(side: str, spec: RunSpec) -> None:
        handle = await executors[side].start(spec, _Discard())
        code = await handle.wait()
        if code != 0:
            raise RuntimeError(f"a no-op {spec.name} run exited with {code} (sandbox {side})")

    samples: dict[str, dict[str, list[Sample]]] = {}
    for kind, spec in specs.items():
        for side in executors:  # warm-up: the sandbox's argv is built once per executor
            await once(side, spec)
        samples[kind] = {side: [] for side in executors}
        for i in range(runs):
            for side in (["on", "off"] if i % 2 == 0 else ["off", "on"]):
                samples[kind][side].append(await Sample().measure(once(side, spec)))
    return samples


def sandbox_cpu(runs: int) -> dict[str, Any]:
    """CPU ms of ``true`` run by the sandbox's bubblewrap command line and bare, with
    ``perf stat``: it counts every process of the command, bubblewrap's init included,
    which ``RUSAGE_CHILDREN`` never sees. Alternated, ``runs`` each in batches of 10;
    the median of the batches' means counts."""
    import subprocess

    from levrt.executors.sandbox import bwrap_argv

    perf = shutil.which("perf")
    executor = process_executor(True)
    if perf is None or executor.bwrap is None:
        return {"skipped": "needs perf (linux-perf) and bubblewrap"}
    argv = {"on": [*bwrap_argv({}, executor._keep, binary=executor.bwrap), "true"],
            "off": ["true"]}
    batches: dict[str, list[float]] = {side: [] for side in argv}
    for _ in range(max(1, runs // 10)):
        for side, command in argv.items():
            done = subprocess.run([perf, "stat", "-x,", "-e", "task-clock", "-r", "10",
                                   *command], capture_output=True, text=True)
            line = next((row for row in done.stderr.splitlines() if ",task-clock," in row), "")
            try:
                batches[side].append(float(line.split(",")[0]))
            except ValueError:
                return {"skipped": f"perf stat failed: {done.stderr.strip()[-200:]}"}
    on, off = statistics.median(batches["on"]), statistics.median(batches["off"])
    return {"on_ms": on, "off_ms": off, "added_ms": on - off,
            "pass": on - off <= TARGET_SANDBOX_MS}


def bench_sandbox(runs: int) -> dict[str, Any]:
    log(f"(c) the sandbox: {runs} sequential runs per side (on, off), entry and cmd ...")
    result: dict[str, Any] = {"runs": runs, "target_added_ms": TARGET_SANDBOX_MS}
    for kind, sides in asyncio.run(sandbox_job(runs)).items():
        on, off = summarize(sides["on"]), summarize(sides["off"])
        added = on["median_ms"] - off["median_ms"]
        result[kind] = {"on": on, "off": off, "added_median_ms": added,
                        "ratio_median": on["median_ms"] / off["median_ms"]}
    result["pass"] = all(result[k]["added_median_ms"] <= TARGET_SANDBOX_MS
                         for k in ("entry", "cmd"))
    log(f"(c) the sandbox's CPU: perf stat of `true` through bubblewrap and bare, {runs} each ...")
    result["cpu"] = sandbox_cpu(runs)
    return result


# -- profile -------------------------------------------------------------------


async def profiled_job(runs: int) -> None:
    for _ in range(runs):
        await ours_once()


def _where(filename: str, line: int, func: str, roots: dict[str, str]) -> str:
    """``file:line(function)`` with the file relative to levrt, bench/ or the stdlib."""
    for root, label in roots.items():
        if filename.startswith(root):
            filename = label + filename[len(root):]
            break
    return f"{filename}:{line}({func})" if line else func


def _roots() -> dict[str, str]:
    import levrt

    return {
        str(Path(levrt.__file__).parent) + os.sep: "levrt/",
        str(BENCH_DIR) + os.sep: "bench/",
        **{path + os.sep: "" for path in sorted(set(sysconfig.get_paths().values()),
                                                key=len, reverse=True)},
    }


def profile_ours(store: Store, runs: int) -> dict[str, Any]:
    """Our side alone under cProfile: where the parent process spends a run's time."""
    import levrt

    log(f"profile: {runs} runs of ours under cProfile ...")
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    asyncio.run(levrt.arun(profiled_job(runs), "bench-profile", store=store,
                           executor="process"))
    profiler.disable()
    wall = time.perf_counter() - start
    raw_stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    roots = _roots()
    rows = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in raw_stats.items():
        where = _where(filename, line, func, roots)
        rows.append({
            "function": where,
            "levrt": where.startswith("levrt/"),
            "ncalls": ncalls,
            "tottime_ms": tottime * 1000.0,
            "cumtime_ms": cumtime * 1000.0,
            "tot_ms_per_run": tottime * 1000.0 / runs,
            "cum_ms_per_run": cumtime * 1000.0 / runs,
        })
    rows.sort(key=lambda r: r["cumtime_ms"], reverse=True)
    # Time the loop spent blocked in epoll is the children working; the rest is the host.
    idle = sum(r["tottime_ms"] for r in rows if "select.epoll" in r["function"])
    return {
        "runs": runs,
        "wall_ms_per_run": wall * 1000.0 / runs,
        "idle_ms_per_run": idle / runs,
        "busy_ms_per_run": (wall * 1000.0 - idle) / runs,
        "top_cumulative": [_public(r) for r in rows[:PROFILE_TOP]],
        "top_levrt": [_public(r) for r in rows if r["levrt"]][:PROFILE_TOP],
        "top_own": [_public(r) for r in sorted(rows, key=lambda r: r["tottime_ms"], reverse=True)
                    if "select.epoll" not in r["function"]][:PROFILE_TOP],
    }


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "levrt"}


# -- report --------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _row(label: str, ours: float, raw: float, fmt: str, added: bool = True) -> str:
    # One figure: ours, the raw anchor, their ratio and (per run) what we add.
    row = f"    {label:<20}{ours:9{fmt}}{raw:9{fmt}}{ours / raw:7.2f}x"
    return row + (f"{ours - raw:+9{fmt}}" if added else " " * 9)


def render(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        f"levrt runtime benchmark - {env['date']} - {env['cpus']} CPUs, Python "
        f"{env['python']}, {env['platform']}",
        _load_line(env),
    ]
    if "sequential" in result:
        lines += _render_ab(result["sequential"], result["fanout"], env)
    c = result["sandbox"]
    lines += [
        "",
        f"(c) the sandbox: {c['runs']} sequential runs per side through the process "
        "executor, on and off interleaved",
        f"    {'':<20}{'on':>9}{'off':>9}{'ratio':>8}{'added':>9}   target",
    ]
    for kind in ("entry", "cmd"):
        on, off = c[kind]["on"], c[kind]["off"]
        lines += [
            _row(f"{kind} mean ms/run", on["mean_ms"], off["mean_ms"], ".1f"),
            _row(f"{kind} median ms/run", on["median_ms"], off["median_ms"], ".1f")
            + f"   <= {c['target_added_ms']:.0f} ms added  "
            f"{verdict(c[kind]['added_median_ms'] <= c['target_added_ms'])}",
            _row(f"{kind} child cpu ms", on["child_cpu_ms"], off["child_cpu_ms"], ".1f"),
        ]
    cpu = c["cpu"]
    if "skipped" in cpu:
        lines.append(f"    cmd cpu ms (perf stat)  skipped: {cpu['skipped']}")
    else:
        lines.append(_row("cmd cpu ms (perf stat)", cpu["on_ms"], cpu["off_ms"], ".2f")
                     + f"   <= {c['target_added_ms']:.0f} ms added  {verdict(cpu['pass'])}")
    profile = result.get("profile")
    if profile:
        lines += [
            "",
            f"profile hint (a target was missed): ours alone, {profile['runs']} sequential runs "
            "under cProfile, parent process only (the profiler inflates host times)",
            f"    {profile['wall_ms_per_run']:.1f} ms/run wall = "
            f"{profile['idle_ms_per_run']:.1f} ms blocked in epoll (waiting for the child) + "
            f"{profile['busy_ms_per_run']:.1f} ms busy on the host",
            f"    top {PROFILE_TOP} by cumulative time (a coroutine's ncalls counts resumptions):",
            *_profile_rows(profile["top_cumulative"]),
            "    the same, src/levrt functions only:",
            *_profile_rows(profile["top_levrt"][:PROFILE_SHORT]),
            "    by own time, waiting in epoll left out:",
            *_profile_rows(profile["top_own"][:PROFILE_SHORT]),
        ]
    return "\n".join(lines)


def _render_ab(a: dict[str, Any], b: dict[str, Any], env: dict[str, Any]) -> list[str]:
    header = f"    {'':<20}{'ours':>9}{'raw':>9}{'ratio':>8}{'added':>9}   target"
    ours_a, raw_a, shim = a["ours"], a["raw"], a["shim"]
    split = a["split_median_ms"]
    return [
        "",
        f"(a) per-run overhead: {a['runs']} sequential no-op runs per side in one job, "
        f"sides rotated, sandbox {env['sandbox']}",
        header,
        _row("mean ms/run", ours_a["mean_ms"], raw_a["mean_ms"], ".1f"),
        _row("median ms/run", ours_a["median_ms"], raw_a["median_ms"], ".1f")
        + f"   <= {a['target_added_ms']:.0f} ms added  {verdict(a['pass'])}",
        _row("child cpu ms/run", ours_a["child_cpu_ms"], raw_a["child_cpu_ms"], ".1f"),
        _row("host cpu ms/run", ours_a["host_cpu_ms"], raw_a["host_cpu_ms"], ".1f"),
        f"    diagnostic: the shim started the raw way (no levrt on the host) takes "
        f"{shim['median_ms']:.1f} ms median;",
        f"    of the {a['added']['median_ms']:.1f} ms added, {split['child']:.1f} ms is the "
        f"child's (shim startup), {split['host']:.1f} ms the host's (levrt).",
        "",
        f"(b) fan-out: {b['runs']} no-op runs per side, limit {b['limit']}, one job, "
        f"{b['rounds']} round(s) per side, alternating",
        header.replace("added", "     "),
        _row("wall s", b["ours"]["wall_s"], b["raw"]["wall_s"], ".2f", added=False)
        + f"   <= {b['target_ratio']:.0f}x           {verdict(b['pass'])}",
        _row("runs/s", b["ours"]["runs_per_s"], b["raw"]["runs_per_s"], ".0f", added=False),
        _row("child cpu ms/run", b["ours"]["child_cpu_ms_per_run"],
             b["raw"]["child_cpu_ms_per_run"], ".1f"),
        _row("host cpu ms/run", b["ours"]["host_cpu_ms_per_run"],
             b["raw"]["host_cpu_ms_per_run"], ".1f"),
        f"    rounds s: ours {_list(b['ours']['rounds_s'])}, raw {_list(b['raw']['rounds_s'])}; "
        f"cpu ratio {b['cpu_ratio']:.2f}x",
    ]


def _load_line(env: dict[str, Any]) -> str:
    load = env["loadavg_1m"]
    line = f"load average (1 min) before the start: {load:.1f}"
    if load > (env["cpus"] or 1):
        line += f", above {env['cpus']} CPUs: other work skews wall times, cpu ms/run much less"
    return line


def _list(values: list[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def _profile_rows(rows: list[dict[str, Any]]) -> list[str]:
    out = [f"    {'cum ms/run':>10} {'own ms/run':>10} {'ncalls':>7}  function"]
    for r in rows:
        out.append(f"    {r['cum_ms_per_run']:10.2f} {r['tot_ms_per_run']:10.2f} {r['ncalls']:7d}"
                   f"  {r['function']}")
    return out


# -- main ----------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=positive, default=50,
                        help="sequential runs per side in (a) (default 50)")
    parser.add_argument("--fanout", type=positive, default=1000,
                        help="runs per side in (b) (default 1000)")
    parser.add_argument("--limit", type=positive, default=64,
                        help="concurrency bound in (b) (default 64)")
    parser.add_argument("--rounds", type=positive, default=2,
                        help="fan-out rounds per side, alternating who goes first (default 2)")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile pass of ours: when a target is missed (default), "
                        "always or never")
    parser.add_argument("--sandbox", choices=("on", "off"), default="on",
                        help="the process executor's sandbox in (a) and (b) (default on)")
    parser.add_argument("--only", choices=("all", "sandbox"), default="all",
                        help="all sections (default) or only (c), the sandbox's cost")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def isolate() -> str:
    """A throwaway levrt home, so that nothing touches the user's store or settings."""
    home = tempfile.mkdtemp(prefix="lev-bench-")
    # LEV_* variables override settings (executor, database, ...): none of the user's apply.
    for name in [n for n in os.environ if n.startswith("LEV_")]:
        del os.environ[name]
    os.environ["LEV_HOME"] = home
    # The tool module lives next to this script; `python bench/runtime.py` puts it on
    # sys.path already, other ways of running it (runpy, -m) may not.
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return home


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = isolate()
    try:
        from levrt.store import Store

        store = Store(f"sqlite:///{home}/bench.db")
        try:
            sandbox = args.sandbox == "on"
            result: dict[str, Any] = {
                "environment": {
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(terse=True),
                    "executor": "process",
                    "sandbox": args.sandbox,
                    # Other load skews wall times (our CPU figures much less): show how busy
                    # the box was before we began; (b) itself drives the load up to ~limit.
                    "loadavg_1m": os.getloadavg()[0],
                },
            }
            if args.only == "all":
                result["sequential"] = bench_sequential(store, args.runs, sandbox)
                result["fanout"] = bench_fanout(store, args.fanout, args.limit, args.rounds,
                                                sandbox)
            result["sandbox"] = bench_sandbox(args.runs)
            missed = args.only == "all" and not (result["sequential"]["pass"]
                                                 and result["fanout"]["pass"])
            if args.profile == "always" or (args.profile == "auto" and missed):
                result["profile"] = profile_ours(store, PROFILE_RUNS)
        finally:
            store.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
