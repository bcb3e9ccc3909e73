"""``Cr``: the description of one container run, and ``Task``: a started run."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import shlex
import sys
from collections.abc import Awaitable, Callable, Generator, Sequence
from pathlib import Path
from typing import Any

from ._context import collection_name, current_namespace
from ._document import Collection, Document
from ._job import Job, RunInfo, current_job
from ._remote import Call, pack
from .annot._meta import check_keys, declared_keys
from .executors import RunSpec

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LOG_TAIL = 20
# When a run's ctx writes held in memory are stored (see _Recorder).
_CTX_FLUSH_SECONDS = 0.2
_CTX_FLUSH_KEYS = 20_000


class TaskFailed(Exception):
    """A run exited non-zero. ``exit_code`` is negative when a signal killed it."""

    def __init__(self, name: str, run_id: int, exit_code: int, log_tail: list[str],
                 error: str | None = None) -> None:
        self.name = name
        self.run_id = run_id
        self.exit_code = exit_code
        self.log_tail = log_tail
        self.error = error
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with {exit_code}"
        message = f"run {run_id} ({name}) {how}"
        if error:
            message += f": {error}"
        if log_tail:
            message += "\n  " + "\n  ".join(log_tail)
        super().__init__(message)


class File:
    """A file kept in the store, known by its sha256 digest (a ``File`` parameter's value)."""

    def __init__(self, digest: str, name: str | None = None, size: int | None = None) -> None:
        if not _DIGEST.match(digest):
            raise ValueError(f"not a file digest: {digest!r} (expected sha256:<64 hex>)")
        self.digest = digest
        self.name = name
        self.size = size

    def __repr__(self) -> str:
        return f"File({self.digest!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)


def _check_files(files: dict[str, Any] | None) -> dict[str, bytes | File]:
    out: dict[str, bytes | File] = {}
    for path, content in (files or {}).items():
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"files: {path!r} must be an absolute path in the container")
        if isinstance(content, (bytes, bytearray)):
            out[path] = bytes(content)
        elif isinstance(content, File):
            out[path] = content
        elif isinstance(content, str):
            out[path] = File(content) if _DIGEST.match(content) else content.encode()
        elif isinstance(content, Path):
            try:
                out[path] = content.read_bytes()
            except OSError as exc:
                raise ValueError(
                    f"files: {path!r}: cannot read {content}: {exc.strerror}"
                ) from None
        else:
            raise ValueError(
                f"files: {path!r} has a {type(content).__name__} value; give bytes, str (the "
                "text itself), a pathlib.Path to read, or a stored file's digest"
            )
    return out


def _check_env(env: list[str] | dict[str, str] | None) -> dict[str, str]:
    if env is None:
        return {}
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items()}
    out = {}
    for item in env:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"env: {item!r} is not of the form 'KEY=VALUE'")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def _run_name(entry: Call | None, cmd: list[str] | None, image: str) -> str:
    if entry is not None:
        return entry.func.__qualname__.replace(".<locals>", "")
    if cmd:
        return str(cmd[0])
    return image


class Cr:
    """One container run; nothing happens until it is awaited or started."""

    def __init__(self, image: str, schema: str | None = None, host: bool = False,
                 entry: Call | Callable[[], Call] | None = None, cmd: list[Any] | str | None = None,
                 env: list[str] | dict[str, str] | None = None,
                 files: dict[str, Any] | None = None, links: dict[str, str] | None = None,
                 ports: list[int] | None = None, services: dict[str, Cr] | None = None,
                 keys: Sequence[str] | None = None) -> None:
        if not isinstance(image, str) or not image:
            raise ValueError(f"image: expected an image reference, got {image!r}")
        if schema is not None and (not isinstance(schema, str) or "|" in schema):
            raise ValueError(f"schema: expected a collection name without '|', got {schema!r}")
        if callable(entry) and hasattr(entry, "__lev_remote__"):
            # The original's docs also pass the @remote function itself: Cr(..., entry=entry).
            try:
                inspect.signature(entry.__lev_remote__).bind()
            except TypeError:
                raise TypeError(f"entry: {entry.__name__} takes arguments; pass its call, "
                                f"entry={entry.__name__}(...)") from None
            entry = entry()
        if entry is not None and not isinstance(entry, Call):
            raise TypeError(f"entry: expected the call of a @remote function, got {entry!r}")
        if entry is not None and cmd is not None:
            raise ValueError("give either entry= or cmd=, not both")
        if services is not None and not isinstance(services, dict):
            raise TypeError(f"services: expected {{name: Cr}}, got {type(services).__name__} "
                            f"{services!r}")
        for name, cr in (services or {}).items():
            if not isinstance(cr, Cr):
                raise TypeError(f"services: {name!r} must be a Cr, not {type(cr).__name__}")
        self.image = image
        self.schema = schema
        self.host = host
        self.entry = entry
        self.cmd = shlex.split(cmd) if isinstance(cmd, str) else (
            [str(a) for a in cmd] if cmd is not None else None)
        self.env = _check_env(env)
        self.files = _check_files(files)
        self.links = dict(links or {})
        self.ports = [int(p) for p in ports or []]
        self.services = dict(services or {})
        self.payload = pack(entry) if entry is not None else None
        self.name = _run_name(entry, self.cmd, image)
        # Without keys of its own, those of the @annot.meta tool function that builds it.
        self.keys = check_keys(keys, "Cr") if keys is not None else (
            declared_keys(sys._getframe(1).f_code) or [])

    def __repr__(self) -> str:
        return f"Cr({self.image!r}, {self.schema!r}, name={self.name!r})"

    def spec(self, job: Job, run_id: int) -> RunSpec:
        return RunSpec(
            job_id=job.id,
            run_id=run_id,
            name=self.name,
            image=self.image,
            schema=self.schema,
            host_network=self.host,
            payload=self.payload,
            cmd=self.cmd,
            env=self.env,
            files={p: job.store.get_file(c.digest) if isinstance(c, File) else c
                   for p, c in self.files.items()},
            links=self.links,
            ports=self.ports,
            services={n: s.spec(job, run_id) for n, s in self.services.items()},
        )

    async def start(self) -> Task:
        """Start the run; returns once it runs (and its ``ports`` accept)."""
        job = current_job()
        run_id = job.next_run_id()
        namespace = current_namespace()
        coll = collection_name(self.schema, namespace)
        spec = self.spec(job, run_id)
        info = RunInfo(run_id, self.name, self.image, coll)
        earlier = job.earlier_run(run_id, spec.fingerprint(), coll)
        if earlier is not None:
            info.status, info.exit_code = "done", earlier["exit_code"]
            job.log(None, "job", [f"run {run_id} ({self.name}) finished in an earlier attempt "
                                  "of this job: its document stands, it is not run again"])
            return Task(job, info, None, None)
        summary = spec.summary()
        if self.keys:
            summary["keys"] = self.keys
        await job.create_run(run_id, name=self.name, image=self.image, schema=self.schema,
                             coll=coll, spec=summary, namespace=list(namespace))
        recorder = _Recorder(job, info)
        job.notify("run_started", info)
        try:
            handle = await job.executor.start(spec, recorder)
        except BaseException as exc:
            recorder.finish("cancelled" if isinstance(exc, asyncio.CancelledError) else "failed",
                            None, f"{type(exc).__name__}: {exc}")
            raise
        recorder.attach(handle)
        task = Task(job, info, handle, recorder)
        job.track(run_id, task)
        return task

    async def done(self) -> Document:
        """Run to the end and return the run's document."""
        task = await self.start()
        return await task.done()

    def __await__(self) -> Generator[Any, None, Document]:
        return self.done().__await__()


class _Recorder:
    """Receives a run's output for the job: log lines, document writes, its error.

    ``ctx`` writes are merged in memory and stored together, at most ``_CTX_FLUSH_SECONDS``
    after the first of them (sooner past ``_CTX_FLUSH_KEYS`` keys) and when the run ends:
    one transaction per batch, not per write, keeps 10,000 one-key writes as cheap as one
    write of 10,000 keys. What a run wrote in its last fraction of a second is lost only
    with the driver itself, and then the run fails with it (its sandbox dies too).
    """

    def __init__(self, job: Job, info: RunInfo) -> None:
        self.job = job
        self.info = info
        self._pending: dict[str, Any] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: the first write that failed (the store's StoreWriteError, or anything recording
        #: raised): the run is stopped, and fails with it
        self.broken: Exception | None = None
        self._handle: Any = None

    def attach(self, handle: Any) -> None:
        """The started run, to stop when the store cannot keep what it sends."""
        self._handle = handle
        if self.broken is not None:
            asyncio.ensure_future(handle.kill())

    def _broke(self, exc: Exception) -> None:
        # A write that failed must not stop reading the run's output: the tool would block
        # on a full pipe for ever. Stop the run instead; its end reports the cause. Hence
        # every exception, not only the store's: none may escape into the executor.
        if self.broken is None:
            self.broken = exc
            if self._handle is not None:
                asyncio.ensure_future(self._handle.kill())

    def on_log(self, stream: str, lines: list[str]) -> None:
        if self.broken is not None:
            return
        try:
            self.job.log(self.info.run_id, stream, lines)
        except Exception as exc:  # noqa: BLE001 - see _broke
            self._broke(exc)

    def on_ctx(self, data: dict[str, Any]) -> None:
        self._pending.update(data)  # a later write of a key wins, as in the store
        if len(self._pending) >= _CTX_FLUSH_KEYS:
            self._flush_now()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(_CTX_FLUSH_SECONDS,
                                                                self._flush_now)

    def _flush_now(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - see _broke
            self._broke(exc)

    def flush(self) -> None:
        """Store the ``ctx`` writes still held in memory."""
        pending = self._take()
        if pending and self.broken is None:
            self.job.store.merge_document(self.info.coll, self.job.id, self.info.run_id, pending)

    def _take(self) -> dict[str, Any]:
        """The ``ctx`` writes held, which are no longer held."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        return pending

    def on_error(self, kind: str, message: str) -> None:
        self.info.error = f"{kind}: {message}" if message else kind

    def finish(self, status: str, exit_code: int | None, error: str | None = None) -> None:
        """Record the run's end, with the ``ctx`` writes still held, in one transaction."""
        pending = self._take()
        info = self.info
        info.status, info.exit_code = status, exit_code
        info.error = error or info.error
        self.job.track(info.run_id, None)
        if self._handle is None or not self._handle.recorded:
            self.job.store.finish_run(self.job.id, info.run_id, status=status,
                                      exit_code=exit_code, error=info.error, coll=info.coll,
                                      data=pending if self.broken is None else None)
        self.job.notify("run_finished", info)


class Task:
    """A started run. ``await task`` waits for it and returns its ``Document``."""

    def __init__(self, job: Job, info: RunInfo, handle: Any,
                 recorder: _Recorder | None) -> None:
        # Without a handle, the run finished in an earlier attempt of the job.
        self.id = info.run_id
        self.host = None if handle is None else handle.host
        self.name = info.name
        self._job = job
        self._info = info
        self._handle = handle
        self._recorder = recorder
        self._outcome: asyncio.Future[Document] = asyncio.ensure_future(self._finish())

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.name} {self._info.status}>"

    async def _finish(self) -> Document:
        if self._handle is None:
            return Document(Collection(self._info.coll, self._job.store), self._job.id,
                            self._info.run_id)
        assert self._recorder is not None
        try:
            code = await self._handle.wait()
        except asyncio.CancelledError:
            await self._record_cancel()
            raise
        job, info = self._job, self._info
        broken = self._recorder.broken
        if broken is not None:
            # The store may refuse this too; the run is over either way.
            with contextlib.suppress(Exception):
                self._recorder.finish("failed", code, str(broken))
            raise broken
        self._recorder.finish("done" if code == 0 else "failed", code)
        if code != 0:
            tail = job.store.log_tail(job.id, info.run_id, _LOG_TAIL)
            raise TaskFailed(info.name, info.run_id, code, tail, info.error)
        return Document(Collection(info.coll, job.store), job.id, info.run_id)

    async def signal(self, signal: str = "SIGINT") -> None:
        """Send a signal (``"SIGINT"``, ``"SIGTERM"``, ...) to the run's main process."""
        if self._handle is not None:
            await self._handle.signal(signal)

    async def cancel(self) -> None:
        """Kill the run and wait until it is recorded as cancelled."""
        self._outcome.cancel()
        await asyncio.gather(self._outcome, return_exceptions=True)
        await self._record_cancel()  # in case it was cancelled before it began to wait

    async def _record_cancel(self) -> None:
        if self._info.status == "running" and self._recorder is not None:
            await self._handle.kill()
            self._recorder.finish("cancelled", None, "cancelled")

    async def done(self) -> Document:
        return await self._outcome

    def __call__(self) -> Awaitable[Document]:
        """``await task()``, a form of the original's docs: the same as ``await task.done()``."""
        return self.done()

    def __await__(self) -> Generator[Any, None, Document]:
        return self.done().__await__()


async def run_recorded(store: Any, executor: Any, spec: RunSpec, coll: str,
                       beat: Callable[[], None], every: float = 2.0) -> dict[str, Any]:
    """Run ``spec`` (a run the job's driver recorded) with ``executor`` and record its log,
    ``ctx`` writes and end in ``store``, as its driver would: how an agent runs one run of a
    job whose runs are spread over a pool (:mod:`levrt.executors.temporal`). ``beat()`` is
    called every ``every`` seconds while it goes. Answers ``{"exit_code", "error"}``; a
    cancellation kills the run, records it cancelled, and is raised again."""
    job = Job(spec.job_id, spec.name, store, executor)
    info = RunInfo(spec.run_id, spec.name, spec.image, coll)
    recorder = _Recorder(job, info)
    try:
        handle = await executor.start(spec, recorder)
    except Exception as exc:  # the run never started: its end says why
        recorder.finish("failed", None, f"{type(exc).__name__}: {exc}")
        return {"exit_code": 1, "error": info.error}
    recorder.attach(handle)
    ended = asyncio.ensure_future(handle.wait())
    try:
        # The first beat after ``every`` seconds, not at once: a short run then costs its
        # Temporal server no heartbeat at all.
        while not (await asyncio.wait({ended}, timeout=every))[0]:
            beat()
    except asyncio.CancelledError:
        await handle.kill()
        recorder.finish("cancelled", None, "cancelled")
        raise
    code = ended.result()
    if recorder.broken is not None:
        recorder.finish("failed", code, str(recorder.broken))
        # Recorded failed: the driver, which does not record it again, must read it so.
        code = code or 1
    else:
        recorder.finish("done" if code == 0 else "failed", code)
    return {"exit_code": code, "error": info.error}
