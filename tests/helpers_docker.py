"""Tools for the container tests (they run in the localhost/lev-* test images)."""

import os
import sys
import time

from levrt import Cr, ctx, remote


def version(image: str) -> Cr:
    @remote
    def entry():
        ctx.set(py=list(sys.version_info[:2]), pid=os.getpid(), raw=b"\x00", t=(1, 2))
    return Cr(image, entry=entry())


def environment(image: str, env, files: dict, host: bool = False) -> Cr:
    paths = list(files)

    @remote
    def entry():
        import socket
        ctx.set(env={k: os.environ.get(k) for k in ("ALPHA", "BETA")},
                files={p: open(p, "rb").read() for p in paths},
                hostname=socket.gethostname(), hosts=open("/etc/hosts").read())
    return Cr(image, entry=entry(), env=env, files=files, host=host)


def http_server(image: str, port: int = 8000) -> Cr:
    return Cr(image, cmd=["python3", "-m", "http.server", str(port)], ports=[port])


def fetch(image: str, url: str, services: dict | None = None, links: dict | None = None) -> Cr:
    @remote
    def entry():
        import urllib.request
        ctx.set(status=urllib.request.urlopen(url, timeout=10).status)
    return Cr(image, entry=entry(), services=services, links=links)


def sleeper(image: str, seconds: float) -> Cr:
    @remote
    def entry():
        print("sleeping", file=sys.stderr, flush=True)
        time.sleep(seconds)
        ctx.set(slept=seconds)
    return Cr(image, entry=entry())


def noop(image: str, n: int) -> Cr:
    @remote
    def entry():
        ctx.set(n=n)
    return Cr(image, entry=entry())


def chatty(image: str, sets: int, lines: int) -> Cr:
    """``sets`` single-key ctx.set calls while a thread writes ``lines`` numbered log lines."""
    @remote
    def entry():
        import threading

        def noise():
            for i in range(lines):
                print("line", i, file=sys.stderr)

        thread = threading.Thread(target=noise)
        thread.start()
        for i in range(sets):
            ctx.set({f"k{i}": i, "last": i})
        thread.join()
    return Cr(image, entry=entry())


def shell(image: str, script: str) -> Cr:
    return Cr(image, cmd=["sh", "-c", script])


def vanishing(image: str) -> Cr:
    """Sets a value, then leaves without the shim's end mark (as a crash would)."""
    @remote
    def entry():
        ctx.set(a=1)
        os._exit(0)
    return Cr(image, entry=entry())
