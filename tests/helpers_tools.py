"""Module-level tools for the runtime tests: entries must live in a real file."""

import os
import subprocess
import sys
import time

import levrt
from levrt import Cr, ctx, remote

GREETING = "hello"
LIMITS = {"low": 1, "high": [2, 3]}
BLOB = b"\x00\xffdata"


def double(x):
    return x * 2


def describe(x):
    return f"{GREETING}:{double(x)}"


def capture(s: str, i: int, f: float, b: bool, n, raw: bytes, items: list, mapping: dict) -> Cr:
    @remote
    def entry():
        ctx.set(s=s, i=i, f=f, b=b, n=n, raw=raw, items=items, mapping=mapping,
                helper=describe(i), const=GREETING, limits=LIMITS, blob=BLOB,
                py=list(sys.version_info[:2]))
    return Cr("localhost/test:latest", "test/capture@1.0", entry=entry())


def setter() -> Cr:
    @remote
    def entry():
        ctx.set(a=1, b=1)
        ctx.set({"b": 2, "c": 3})
        ctx.set({"d": "dict"}, d="kw")
        ctx.update({"e": 5, "a": 10})
        from levrt import ctx as imported
        imported.set(f=levrt.cli("scan", x=1, long_opt="v", flag=True, off=False, none=None))
    return Cr("localhost/test:latest", entry=entry())


def tagged(name: str, schema: str | None = "test/tag@1.0") -> Cr:
    @remote
    def entry():
        ctx.set(name=name, kind="host" if name.startswith("h") else "other")
    return Cr("localhost/test:latest", schema, entry=entry())


def sleeper(seconds: float) -> Cr:
    @remote
    def entry():
        start = time.time()
        time.sleep(seconds)
        ctx.set(slept=seconds, span=[start, time.time()])
    return Cr("localhost/test:latest", "test/sleep@1.0", entry=entry())


def failing(code: int) -> Cr:
    @remote
    def entry():
        print("about to fail", file=sys.stderr)
        sys.exit(code)
    return Cr("localhost/test:latest", entry=entry())


def raising() -> Cr:
    @remote
    def entry():
        raise RuntimeError("tool exploded")
    return Cr("localhost/test:latest", entry=entry())


def missing_binary() -> Cr:
    @remote
    def entry():
        subprocess.run(["lev-no-such-tool", "-x"], check=True)
    return Cr("localhost/test:latest", entry=entry())


def command(argv: list) -> Cr:
    return Cr("localhost/test:latest", cmd=argv)


def reader(paths: list, files: dict) -> Cr:
    @remote
    def entry():
        ctx.set(contents={p: open(p, "rb").read() for p in paths})
    return Cr("localhost/test:latest", entry=entry(), files=files)


def spawner(seconds: str) -> Cr:
    @remote
    def entry():
        subprocess.Popen(["sleep", seconds]).wait()
    return Cr("localhost/test:latest", entry=entry())


def processes(*argv: str) -> list:
    """Host pids of live processes whose command line is ``argv``: how a test finds what a
    sandboxed run started (its own pids are those of its PID namespace)."""
    found = []
    wanted = "\0".join(argv).encode() + b"\0"
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                if f.read() != wanted:
                    continue
            with open(f"/proc/{entry.name}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found
