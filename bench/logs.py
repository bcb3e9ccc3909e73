"""What a run's output costs the store: log throughput and ``ctx.set`` linearity.

    .venv/bin/python bench/logs.py [--mb N] [--keys N] [--json]

(a) log throughput: a ``cmd`` run writes N MB (default 100) to stdout, once in 1 KB lines and
    once as one line with no newline at all; both through ``levrt.run`` with the process
    executor and the default ``log_max_bytes``. Linear splitting makes the two take about
    the same time (before: one 40 MB line took 20 s, the same bytes in lines 1.5 s).
(b) ctx.set linearity: an entry stores K hosts (default 10,000) with K one-key ``ctx.set``
    calls, and once with one call of all K. Target: the K calls within 2x the one call
    (before: 151 s for 8,000 calls against 1.5 s for one).

A benchmark, not a test: it exits 0 whether the targets are met or not. Nothing touches
your data: ``LEV_HOME`` points at a fresh temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

#: the one-line side at most this many times the lines side in (a)
TARGET_LOG_RATIO = 2.0
#: K one-key calls at most this many times one call of K keys in (b)
TARGET_CTX_RATIO = 2.0

WRITER = """
import sys
mb, lines = int(sys.argv[1]), sys.argv[2] == "lines"
block = (b"x" * 1023 + b"\\n") * 1024 if lines else b"x" * 1048576
out = sys.stdout.buffer
for _ in range(mb):
    out.write(block)
out.flush()
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed_job(coro: Any) -> tuple[float, str]:
    import levrt
    from levrt.store import Store

    started = time.perf_counter()
    levrt.run(coro, executor="process", echo=False)
    elapsed = time.perf_counter() - started
    with Store.open() as store:
        return elapsed, store.list_jobs(limit=1)[0]["id"]


def log_side(mb: int, shape: str) -> dict[str, Any]:
    from levrt import Cr
    from levrt.store import Store

    async def main() -> None:
        await Cr("python", cmd=[sys.executable, "-c", WRITER, str(mb), shape])

    elapsed, job_id = timed_job(main())
    with Store.open() as store:
        rows = [row for rows in store.log_pages(job_id) for row in rows if row["run_id"] == 0]
    return {"seconds": round(elapsed, 3), "mb_per_s": round(mb / elapsed, 1),
            "rows": len(rows), "longest_row": max(len(row["text"]) for row in rows),
            "kept_mb": round(sum(len(row["text"]) for row in rows) / 2**20, 1)}


def ctx_side(keys: int, one_call: bool) -> dict[str, Any]:
    from levrt import Cr, ctx, remote

    def setter() -> Cr:
        @remote
        def entry():
            hosts = {f"host{n}": {"ip": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
                                  "open": [22, 80]} for n in range(keys)}
            if one_call:
                ctx.set(hosts)
            else:
                for name, value in hosts.items():
                    ctx.set({name: value})
        return Cr("python", entry=entry())

    async def main() -> None:
        doc = await setter()
        assert len(await doc.get()) == keys

    elapsed, _ = timed_job(main())
    return {"seconds": round(elapsed, 3), "calls": 1 if one_call else keys}


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="MB written per side in (a)")
    parser.add_argument("--keys", type=int, default=10_000, help="hosts stored per side in (b)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    for name in [name for name in os.environ if name.startswith("LEV_")]:
        del os.environ[name]
    home = tempfile.mkdtemp(prefix="lev-bench-logs-")
    os.environ["LEV_HOME"] = home
    try:
        log(f"(a) {args.mb} MB in 1 KB lines ...")
        lines = log_side(args.mb, "lines")
        log(f"(a) {args.mb} MB in one line ...")
        one_line = log_side(args.mb, "one")
        log(f"(b) {args.keys} keys in one ctx.set ...")
        one_call = ctx_side(args.keys, True)
        log(f"(b) {args.keys} one-key ctx.set calls ...")
        many_calls = ctx_side(args.keys, False)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    log_ratio = one_line["seconds"] / lines["seconds"]
    ctx_ratio = many_calls["seconds"] / one_call["seconds"]
    figures = {
        "log": {"mb": args.mb, "lines": lines, "one_line": one_line,
                "ratio": round(log_ratio, 2), "target": TARGET_LOG_RATIO},
        "ctx": {"keys": args.keys, "one_call": one_call, "many_calls": many_calls,
                "ratio": round(ctx_ratio, 2), "target": TARGET_CTX_RATIO},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"(a) log throughput, {args.mb} MB through the process executor")
    print(f"    {'':14} {'seconds':>8} {'MB/s':>7} {'rows':>7} {'longest':>8} {'kept MB':>8}")
    for label, side in (("1 KB lines", lines), ("one line", one_line)):
        print(f"    {label:14} {side['seconds']:8.2f} {side['mb_per_s']:7.1f} {side['rows']:7d} "
              f"{side['longest_row']:8d} {side['kept_mb']:8.1f}")
    print(f"    one line / lines = {log_ratio:.2f} (target <= {TARGET_LOG_RATIO}) "
          f"{verdict(log_ratio, TARGET_LOG_RATIO)}")
    print(f"(b) ctx.set linearity, {args.keys} hosts")
    print(f"    {'one call':14} {one_call['seconds']:8.2f} s")
    print(f"    {f'{args.keys} calls':14} {many_calls['seconds']:8.2f} s")
    print(f"    calls / one call = {ctx_ratio:.2f} (target <= {TARGET_CTX_RATIO}) "
          f"{verdict(ctx_ratio, TARGET_CTX_RATIO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
