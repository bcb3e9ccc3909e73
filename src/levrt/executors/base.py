"""The executor protocol: how one ``Cr`` becomes a running sandbox.

An executor turns a :class:`RunSpec` into a :class:`RunHandle`; while the run
goes it reports log output and ``ctx`` writes to a :class:`RunObserver`. The
job runtime owns the store: executors never touch it.
"""

from __future__ import annotations

import abc
import ast
import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._text import LOG_ROW_BYTES, utf8_pieces
from ..shim.entry import LOG_END, decode


class ExecutorError(RuntimeError):
    """A run cannot be started by this executor; the message says what to do instead."""


@dataclass
class RunSpec:
    """Everything an executor needs for one run, with files already resolved to bytes."""

    job_id: str
    run_id: int
    name: str
    image: str
    host_network: bool = False
    payload: dict[str, Any] | None = None
    cmd: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)
    services: dict[str, RunSpec] = field(default_factory=dict)
    schema: str | None = None

    def fingerprint(self) -> str:
        """Identifies what the run does, not which run it is: equal specs, equal prints."""
        body = {
            "image": self.image,
            "schema": self.schema,
            "payload": _without_files(self.payload),
            "cmd": self.cmd,
            "env": self.env,
            "files": {p: hashlib.sha256(c).hexdigest() for p, c in self.files.items()},
            "services": {n: s.fingerprint() for n, s in self.services.items()},
        }
        blob = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The whole spec as JSON data (files in base64), for an executor on another machine;
        :meth:`from_json` reads it back."""
        return {**{name: getattr(self, name) for name in _PLAIN_FIELDS},
                "files": {path: base64.b64encode(content).decode()
                          for path, content in self.files.items()},
                "services": {name: spec.to_json() for name, spec in self.services.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**{name: data[name] for name in _PLAIN_FIELDS},
                   files={path: base64.b64decode(text) for path, text in data["files"].items()},
                   services={name: cls.from_json(spec)
                             for name, spec in data["services"].items()})

    def summary(self) -> dict[str, Any]:
        """What the store records about the spec (no file contents, no payload source)."""
        return {
            "image": self.image,
            "host_network": self.host_network,
            "cmd": self.cmd,
            "entry": self.payload["entry"]["name"] if self.payload else None,
            "arg": main_argument(self.payload, self.cmd),
            "env": sorted(self.env),
            "files": sorted(self.files),
            "links": self.links,
            "ports": self.ports,
            "services": sorted(self.services),
            "fingerprint": self.fingerprint(),
        }


def _without_files(payload: Any) -> Any:
    """A payload without the source files its code came from: they serve tracebacks, and
    differ where a package is unpacked (on each agent) while the run does the same."""
    if not isinstance(payload, dict):
        return payload
    return {**payload, "entry": _strip_file(payload.get("entry")),
            "modules": _strip_file(payload.get("modules"))}


def _strip_file(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strip_file(item) for key, item in value.items() if key != "file"}
    if isinstance(value, list):
        return [_strip_file(item) for item in value]
    return value


_PLAIN_FIELDS = ("job_id", "run_id", "name", "image", "host_network", "payload", "cmd", "env",
                 "links", "ports", "schema")


# How much of a run's main argument its summary keeps, in characters.
_ARG_CHARS = 80
_TARGET_NAMES = ("argv", "ip", "ips", "host", "hosts", "target", "targets", "url", "urls",
                 "domain", "domains", "network", "cidr", "address")


def _plain_text(value: Any) -> str | None:
    """``value`` as words when it is plain text, a number or a (nested) list of them."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list):
        # "--" ends a command's options: nothing a person reads.
        parts = [_plain_text(item) for item in value if item != "--"]
        return " ".join(p for p in parts if p) if all(p is not None for p in parts) else None
    return None


def main_argument(payload: dict[str, Any] | None, cmd: list[str] | None) -> str | None:
    """What a run works on, in words, for people reading its row (``127.0.0.1`` of
    ``port_os("127.0.0.1")``): the entry's first argument, or else the first plain value its
    closure holds (a mode's own parameters), or else the command's arguments; at most
    ``_ARG_CHARS`` characters, None when there is nothing plain to show."""
    if payload is None:
        return _clip(" ".join(cmd[1:])) if cmd and len(cmd) > 1 else None
    closure = payload["entry"].get("closure") or {}
    # A closure's order is the compiler's: a target's usual names go first, then text.
    named = sorted(closure, key=lambda name: (name not in _TARGET_NAMES,
                                              not isinstance(closure[name], str)))
    for value in [*(payload.get("args") or []), *(closure[name] for name in named)]:
        text = _plain_text(value)
        if text:
            return _clip(text)
    return None


def _clip(text: str) -> str:
    return text if len(text) <= _ARG_CHARS else text[:_ARG_CHARS - 1] + "…"


class RunObserver(Protocol):
    def on_log(self, stream: str, lines: list[str]) -> None:
        """Complete lines the run wrote to ``stream`` ("stdout" or "stderr")."""

    def on_ctx(self, data: dict[str, Any]) -> None:
        """One ``ctx.set`` of the entry, already decoded."""

    def on_error(self, kind: str, message: str) -> None:
        """The entry raised ``kind`` with ``message`` (reported before it exits)."""


class RunHandle(abc.ABC):
    """A started run."""

    #: the name other runs can reach this one by
    host: str = "localhost"
    #: whether the run's end is in the store already, recorded where the run ran (a run on a
    #: pool's agent that finished it): the job then only tells its listeners
    recorded: bool = False

    @abc.abstractmethod
    async def wait(self) -> int:
        """Wait for the run to end and return its exit code (negative: killed by signal)."""

    @abc.abstractmethod
    async def signal(self, sig: str) -> None:
        """Send a signal by name (``"SIGINT"``) to the run."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """Stop the run now and release everything it holds; safe to call twice."""


END_MARK = LOG_END.encode()

#: how long ``ports`` may take to accept before the run counts as failed to start
PORT_TIMEOUT = 30.0


class Executor(abc.ABC):
    name: str = ""
    #: why this executor was picked, when it was not named explicitly
    chosen_by: str = ""
    #: the folder of a `levrt._debug.DebugRelay` (``lev run --debug``): runs mount it at
    #: ``levrt._debug.SANDBOX_DIR`` and their breakpoints talk to the user's terminal
    debug_dir: str | None = None

    def describe(self) -> str:
        """A line for the job log: which executor, and where it runs things."""
        return self.name

    @abc.abstractmethod
    async def start(self, spec: RunSpec, observer: RunObserver) -> RunHandle:
        """Start the run; return once it counts as started (its ``ports`` accept)."""

    async def aclose(self) -> None:  # noqa: B027 - most executors hold nothing
        """Release what the executor holds; called when the job ends."""


class LineSplitter:
    """Cuts a byte stream into complete text lines for the log, in time linear in its size.

    A line longer than ``limit`` bytes is handed on in ``limit``-byte pieces as it comes
    (``None``: whole lines, however long), so that nothing waits for a newline that may never
    come. A carriage return not followed by a newline starts the line over, as on a terminal:
    a progress bar redrawn in place keeps only its last state.

    ``ended`` turns true when the shim marks the end of its output on the stream: what
    came before is complete, whatever the transport did with the stream's tail.
    """

    def __init__(self, stream: str, observer: RunObserver,
                 limit: int | None = LOG_ROW_BYTES) -> None:
        self._stream = stream
        self._observer = observer
        self._limit = limit
        # The unfinished line, kept in pieces: joining only once it ends keeps feeding linear.
        self._parts: list[bytes] = []
        self._size = 0
        self.ended = False

    def feed(self, data: bytes) -> None:
        *complete, tail = data.split(b"\n")
        if complete:
            complete[0] = self._take(complete[0])
            self.emit(complete)
        self._keep(tail)

    def close(self) -> None:
        if self._size:
            self.emit([self._take(b"")])

    def _take(self, end: bytes) -> bytes:
        line = b"".join([*self._parts, end])
        self._parts, self._size = [], 0
        return line

    def _keep(self, piece: bytes) -> None:
        if not piece:
            return
        # A CR before more text on the same line: what came before it was drawn over.
        if self._parts and self._parts[-1].endswith(b"\r"):
            self._parts, self._size = [], 0
        redrawn = piece.rfind(b"\r", 0, len(piece) - 1)
        if redrawn >= 0:
            self._parts, self._size = [], 0
            piece = piece[redrawn + 1:]
        self._parts.append(piece)
        self._size += len(piece)
        if self._limit is not None and self._size >= self._limit:
            pieces = utf8_pieces(self._take(b""), self._limit)
            rest = pieces.pop() if len(pieces[-1]) < self._limit else b""
            self.emit(pieces)
            self._keep(rest)

    def emit(self, lines: list[bytes]) -> None:
        if END_MARK in lines:
            self.ended = True
            lines = [line for line in lines if line != END_MARK]
        texts = []
        for line in lines:
            # The text after the last CR is what a terminal would show of the line.
            shown = line.rstrip(b"\r").rpartition(b"\r")[2]
            pieces = [shown] if self._limit is None else utf8_pieces(shown, self._limit)
            texts.extend(_text(piece) for piece in pieces)
        self._observer.on_log(self._stream, texts)


class ChannelReader(LineSplitter):
    """Reads the shim's result channel: one literal per line, numbered from 0.

    Numbers let the host tell a complete channel from one that lost or repeated messages
    on the way: :meth:`unverified` says what is wrong once the input has ended.
    """

    def __init__(self, observer: RunObserver) -> None:
        # A message is one line however long: a big ctx.set must arrive whole.
        super().__init__("stdout", observer, limit=None)
        self.received = 0  # the number the next message should carry
        self.missing = 0

    def emit(self, lines: list[bytes]) -> None:
        for line in lines:
            if line.strip():
                self._dispatch(line)

    def _dispatch(self, line: bytes) -> None:
        try:
            message = ast.literal_eval(line.decode("utf-8"))
            op = message["op"]
            number = int(message.get("n", self.received))
        except (ValueError, KeyError, TypeError, AttributeError, SyntaxError, MemoryError,
                RecursionError):
            # Not ours: something wrote to the channel behind the shim's back; keep it as log.
            super().emit([line])
            return
        if number < self.received:
            return  # a repeat: applied once already
        self.missing += number - self.received
        self.received = number + 1
        if op == "set":
            self._observer.on_ctx(decode(message["data"]))
        elif op == "error":
            self._observer.on_error(str(message.get("type")), str(message.get("message")))
        elif op == "end":
            self.ended = True

    def unverified(self) -> str | None:
        """Why the messages read cannot be the entry's complete results; None when they are."""
        if self.missing:
            return (f"{self.missing} of the run's {self.received} result messages never "
                    "arrived")
        if not self.ended:
            return (f"the result channel ended without the shim's end mark after "
                    f"{self.received} messages")
        return None


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace")


def stdout_reader(spec: RunSpec, observer: RunObserver) -> LineSplitter:
    """An entry's stdout is the result channel; a plain command's stdout is log."""
    return ChannelReader(observer) if spec.payload is not None else LineSplitter("stdout", observer)


async def wait_for_ports(name: str, address: str, ports: list[int],
                         ended: Callable[[], bool]) -> None:
    """Wait until every TCP port accepts on ``address``; fail if the run ends or time runs out."""
    deadline = time.monotonic() + PORT_TIMEOUT
    for port in ports:
        while not await _accepts(address, port):
            if ended() or time.monotonic() > deadline:
                raise ExecutorError(f"run {name!r}: port {port} did not accept on {address} "
                                    f"within {PORT_TIMEOUT:.0f}s")
            await asyncio.sleep(0.05)


async def _accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True
