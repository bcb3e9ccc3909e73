"""The quick start's demo (``scripts/demo.sh``): something to find, found twice, and what
changed in between.

For its own duration it serves two small services on 127.0.0.1 (an HTTP server and a
listener that greets with an SSH banner), runs the seed's workflow ``server_port`` on them,
starts a third (a listener with an SMTP banner), runs the workflow again, and ends with the
rows found (``lev show JOB --table``) and the difference (``lev diff JOB_A JOB_B``).

Only 127.0.0.1 is scanned, and only a window of ``WIDTH`` ports that began free: the
services take its first three ports, nmap reports the others closed (and leaves them out).

    python examples/demo.py [--width N]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "lev-hub" / "szczecin.nmap_python"
LEV = [sys.executable, "-m", "levrt"]
#: how many ports the scans cover: enough closed ones that nmap counts rather than lists them
WIDTH = 30
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
SMTP_BANNER = b"220 mail.demo.test ESMTP Postfix (Debian/GNU)\r\n"
PORT_OS = "szczecin/nmap.port_os@1.0"


def port_window(count: int, width: int = WIDTH) -> list[socket.socket]:
    """``count`` listening-ready sockets bound on 127.0.0.1 to consecutive ports, the first
    of a window of ``width`` free ports (tried again from another port when one is taken)."""
    for _ in range(50):
        first = socket.create_server(("127.0.0.1", 0))
        base = first.getsockname()[1]
        taken = [first]
        try:
            if base + width > 65536:
                raise OSError("window past the last port")
            for port in range(base + 1, base + width):
                probe = socket.socket()
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))
                taken.append(probe)
        except OSError:
            for sock in taken:
                sock.close()
            continue
        for sock in taken[count:]:
            sock.close()
        return taken[:count]
    raise RuntimeError(f"found no {width} free consecutive ports on 127.0.0.1")


class Banner:
    """Greets every connection to ``sock`` with ``banner``, on a thread, until closed."""

    def __init__(self, sock: socket.socket, banner: bytes) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.banner = banner
        sock.listen()
        sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._greet, args=(conn,), daemon=True).start()

    def _greet(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.sendall(self.banner)
            conn.settimeout(2)
            conn.recv(1024)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # nmap's probes would fill the demo's output


@contextlib.contextmanager
def http_server(sock: socket.socket) -> Iterator[int]:
    """Python's HTTP file server on ``sock`` (serving an empty folder's listing)."""
    empty = HERE / "lev-hub" / "szczecin.alive" / "lev"
    server = http.server.ThreadingHTTPServer(
        sock.getsockname(), lambda *args: _Quiet(*args, directory=str(empty)),
        bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def services(width: int = WIDTH) -> Iterator[tuple[str, socket.socket]]:
    """The demo's services on a fresh window of ports: yields the nmap port range and the
    third port's socket, bound but not listening (closed) until :class:`Banner` takes it."""
    web, ssh, third = port_window(3, width)
    base = web.getsockname()[1]
    with http_server(web):
        greeter = Banner(ssh, SSH_BANNER)
        try:
            yield f"{base}-{base + width - 1}", third
        finally:
            greeter.close()
            third.close()


def lev(*args: str, capture: bool = False) -> str:
    """Run ``lev ARGS``; its output is printed, or returned with ``capture``."""
    if not capture:
        print(f"\n$ lev {' '.join(args)}", flush=True)
    done = subprocess.run([*LEV, *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


def scan(ports: str) -> str:
    """``server_port`` on 127.0.0.1 and ``ports`` as a job; the job's id."""
    lev("run", f"{PACKAGE}:server_port", "--ip", "127.0.0.1", "--ports", ports)
    newest: list[dict] = json.loads(lev("jobs", "--limit", "1", "--json", capture=True))
    return str(newest[0]["id"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=WIDTH, help="ports scanned (default 30)")
    args = parser.parse_args(argv)
    os.environ.setdefault("LEV_EXECUTOR", "process")
    with services(args.width) as (ports, third):
        print(f"demo: an HTTP server and an SSH-like listener on 127.0.0.1, ports {ports}",
              flush=True)
        first = scan(ports)
        smtp = Banner(third, SMTP_BANNER)
        try:
            print(f"\ndemo: one more service, an SMTP-like listener on port {smtp.port}; "
                  "scanning again", flush=True)
            second = scan(ports)
        finally:
            smtp.close()
    print("\ndemo: the ports found the second time, one row each:")
    lev("show", second, "--table", "--coll", PORT_OS)
    print("\ndemo: what changed from the first scan to the second:")
    lev("diff", first, second)
    return 0


if __name__ == "__main__":
    sys.exit(main())
