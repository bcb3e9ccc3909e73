"""Record a job's runs once, replay them with no tools installed.

:class:`RecordingExecutor` wraps a real executor and keeps what each run did
(its ``ctx`` writes, log and exit code) keyed by the run's fingerprint.
:class:`ReplayExecutor` answers runs from such a recording, or from a handler
function, the way ``httpx.MockTransport`` answers requests.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shim.entry import decode, encode
from .base import Executor, ExecutorError, RunHandle, RunObserver, RunSpec

RECORDING_VERSION = 1


@dataclass
class Reply:
    """What a replayed run does: its ``ctx.set`` calls, log lines and exit code."""

    sets: list[dict[str, Any]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    exit_code: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"sets": [encode(s) for s in self.sets], "log": [list(e) for e in self.log],
                "exit_code": self.exit_code, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reply:
        return cls([decode(s) for s in data["sets"]], [(s, t) for s, t in data["log"]],
                   int(data["exit_code"]), data.get("error"))


Handler = Callable[[RunSpec], "Reply | dict[str, Any] | None"]


class _ReplayHandle(RunHandle):
    def __init__(self, spec: RunSpec, reply: Reply, observer: RunObserver) -> None:
        self.host = f"replay-{spec.run_id}"
        self._reply = reply
        self._observer = observer

    async def wait(self) -> int:
        for stream, line in self._reply.log:
            self._observer.on_log(stream, [line])
        for data in self._reply.sets:
            self._observer.on_ctx(data)
        if self._reply.error:
            kind, _, message = self._reply.error.partition(": ")
            self._observer.on_error(kind, message)
        return self._reply.exit_code

    async def signal(self, sig: str) -> None:
        """Nothing runs, so there is nothing to signal."""

    async def kill(self) -> None:
        """Nothing runs, so there is nothing to kill."""


class ReplayExecutor(Executor):
    """Answers runs without running anything.

    ``source`` is a recording file written by :class:`RecordingExecutor`, a
    mapping from run name or schema to a reply, or a handler ``spec -> reply``.
    A reply is a :class:`Reply` or a plain dict (one ``ctx.set`` of that dict).
    """

    name = "replay"

    def __init__(self, source: str | Path | Mapping[str, Any] | Handler) -> None:
        self._recorded: dict[str, deque[Reply]] | None = None
        self._handler: Handler | None = None
        if isinstance(source, (str, Path)):
            self._recorded = _load(Path(source))
        elif isinstance(source, Mapping):
            table = dict(source)
            self._handler = lambda spec: table.get(spec.name, table.get(spec.schema or ""))
        elif callable(source):
            self._handler = source
        else:
            raise TypeError(f"ReplayExecutor takes a recording path, a mapping or a handler, "
                            f"not {source!r}")

    async def start(self, spec: RunSpec, observer: RunObserver) -> RunHandle:
        return _ReplayHandle(spec, self._reply(spec), observer)

    def _reply(self, spec: RunSpec) -> Reply:
        if self._recorded is not None:
            queue = self._recorded.get(spec.fingerprint())
            if not queue:
                raise ExecutorError(
                    f"no recorded run matches run {spec.run_id} ({spec.name}, image "
                    f"{spec.image}): its arguments or code changed since the recording; record "
                    "again with levrt.testing.record(...)"
                )
            return queue.popleft()
        assert self._handler is not None
        reply = self._handler(spec)
        if reply is None:
            raise ExecutorError(f"the replay handler has no reply for run {spec.run_id} "
                                f"({spec.name}, schema {spec.schema})")
        return reply if isinstance(reply, Reply) else Reply(sets=[dict(reply)])


def _load(path: Path) -> dict[str, deque[Reply]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExecutorError(f"cannot read recording {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ExecutorError(f"{path} is not a recording: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != RECORDING_VERSION:
        raise ExecutorError(f"{path} is not a levrt recording of version {RECORDING_VERSION}")
    table: dict[str, deque[Reply]] = defaultdict(deque)
    for run in data["runs"]:
        table[run["fingerprint"]].append(Reply.from_json(run))
    return table


class _Tee:
    """Passes a run's output on and keeps a copy for the recording."""

    def __init__(self, observer: RunObserver) -> None:
        self.observer = observer
        self.reply = Reply()

    def on_log(self, stream: str, lines: list[str]) -> None:
        self.reply.log.extend((stream, line) for line in lines)
        self.observer.on_log(stream, lines)

    def on_ctx(self, data: dict[str, Any]) -> None:
        self.reply.sets.append(data)
        self.observer.on_ctx(data)

    def on_error(self, kind: str, message: str) -> None:
        self.reply.error = f"{kind}: {message}"
        self.observer.on_error(kind, message)


class _RecordingHandle(RunHandle):
    def __init__(self, inner: RunHandle, tee: _Tee, done: Callable[[int], None]) -> None:
        self.host = inner.host
        self._inner = inner
        self._tee = tee
        self._done = done

    async def wait(self) -> int:
        code = await self._inner.wait()
        self._done(code)
        return code

    async def signal(self, sig: str) -> None:
        await self._inner.signal(sig)

    async def kill(self) -> None:
        await self._inner.kill()


class RecordingExecutor(Executor):
    """Runs everything through ``inner`` and writes what happened to ``path`` at the end."""

    def __init__(self, inner: Executor, path: str | Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self.name = inner.name
        self._runs: list[dict[str, Any]] = []

    async def start(self, spec: RunSpec, observer: RunObserver) -> RunHandle:
        tee = _Tee(observer)
        handle = await self.inner.start(spec, tee)

        def done(code: int) -> None:
            tee.reply.exit_code = code
            self._runs.append({"fingerprint": spec.fingerprint(), "name": spec.name,
                               "image": spec.image, "schema": spec.schema, **tee.reply.to_json()})

        return _RecordingHandle(handle, tee, done)

    async def aclose(self) -> None:
        await self.inner.aclose()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": RECORDING_VERSION, "runs": self._runs}
        self.path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
