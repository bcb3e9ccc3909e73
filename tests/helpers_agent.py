"""Processes of a small cluster for the agent tests: ``lev serve`` on one address and ``lev
agent`` processes (optionally inside a network namespace), each with a LEV_HOME of its own,
and waiting for what they report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from helpers_temporal import free_port

from levrt.server.dispatch import deployment_key, device_queue, pool_queue
from levrt.store import Store

PASSWORD = "correct horse battery"
T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, what: str, step: float = 0.2) -> T:
    """``check()``'s first truthy answer within ``timeout`` seconds, else AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} within {timeout} s (last: {found!r})"
        time.sleep(step)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LEV_", "PYTEST"))}
    return {**env, "LEV_HOME": str(home), "LEV_SERVER_EXECUTOR": "process", **extra}


def _stop(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


@dataclass
class LevServer:
    """``lev serve`` in a process of its own, with user ``alice`` and her API token."""

    url: str
    process: subprocess.Popen[bytes]
    token: str
    log: Path
    env: dict[str, str]

    @classmethod
    def start(cls, home: Path, temporal: str, ip: str = "127.0.0.1",
              db_url: str | None = None) -> LevServer:
        """The server, its store ``db_url`` (default a SQLite file in ``home``)."""
        home.mkdir(parents=True, exist_ok=True)
        db_url = db_url or f"sqlite:///{home / 'levrt.db'}"
        with Store(db_url) as store:
            store.create_user("alice", PASSWORD)
            token = store.create_token("alice", "tests")["token"]
        port = free_port(ip)
        log = home / "serve.log"
        env = _env(home, LEV_DB_URL=db_url)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "levrt", "serve", "--host", ip, "--port", str(port),
                 "--temporal", temporal], env=env, stdout=out, stderr=subprocess.STDOUT)
        server = cls(f"http://{ip}:{port}", process, token, log, env)
        try:
            wait_for(server._healthy, 30, f"lev serve at {server.url}")
        except BaseException:
            server.stop()
            raise
        return server

    def _healthy(self) -> bool:
        assert self.process.poll() is None, self.log.read_text(errors="replace")[-2000:]
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def queue(self, kind: str, owner: str, name: str) -> str:
        """The Temporal task queue of ``owner``'s device (``kind`` ``device``) or pool
        ``name``, as this server names it."""
        key = deployment_key((Path(self.env["LEV_HOME"]) / "web-secret").read_bytes().strip())
        return (device_queue if kind == "device" else pool_queue)(key, owner, name)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30,
                             **kwargs)

    def add_device(self, name: str, pools: list[str] | None = None) -> str:
        """A new device of alice's; its enrolment code."""
        answer = self.api("POST", "/api/devices", json={"name": name, "pools": pools or []})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["code"])

    def device(self, name: str) -> dict[str, Any] | None:
        devices = self.api("GET", "/api/devices").json()
        return next((d for d in devices if d["kind"] == "agent" and d["name"] == name), None)

    def status(self, name: str) -> str | None:
        device = self.device(name)
        return None if device is None else str(device["status"])

    def stop(self) -> None:
        _stop(self.process)

    def restart(self, down: Callable[[], object] = lambda: None) -> None:
        """Stop the server, call ``down()``, and start it again on the same address and
        store."""
        self.stop()
        down()
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.process.args, env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT)
        wait_for(self._healthy, 30, f"lev serve at {self.url} again")


@dataclass
class AgentProcess:
    """``lev agent`` in a process of its own (inside ``netns`` when given)."""

    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, home: Path, server: str, *, code: str | None = None,
              netns: str | None = None, extra: tuple[str, ...] = ()) -> AgentProcess:
        home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "levrt", "agent", "--server", server, "--slots", "2",
                *(["--enrol", code] if code else []), *extra]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        log = home / "agent.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(argv, env=_env(home), stdout=out,
                                       stderr=subprocess.STDOUT)
        return cls(home, process, log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        return _stop(self.process)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
