"""Jobs: one invocation of an exported function, with its runs, log and documents.

``levrt.run(coro)`` makes a job record, runs the coroutine with the job as the
current context, and marks the job done, failed or cancelled. Everything the
workflow prints, and everything logged to the ``"lev"`` logger, goes to the
job's log; runs still alive when the job ends are killed.

What the coroutine returns is awaited in turn while it is awaitable (a ``Cr``, a
coroutine): a mode written ``async def m() -> Cr: return Cr(...)`` runs its ``Cr``.
``exit()`` / ``sys.exit(n)`` end the job: code ``None`` or 0 is ``done``, anything else
``failed`` with that code.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import logging
import sys
import threading
from collections.abc import Awaitable, Coroutine, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ._config import load_settings
from ._document import Document
from ._driver import driver_id
from ._text import LOG_ROW_BYTES

if TYPE_CHECKING:
    from ._cr import Task
    from .executors import Executor
    from .store import Store
    from .store._logs import RunLog

_current: ContextVar[Job] = ContextVar("lev_job")
#: the most runs recorded in one store call (the server's driver route takes as many)
RECORD_BATCH = 1000


def current_job() -> Job:
    try:
        return _current.get()
    except LookupError:
        raise LookupError(
            "no levrt job is running here: start the workflow with levrt.run(...) or `lev run`"
        ) from None


@dataclass
class RunInfo:
    """What listeners learn about a run."""

    run_id: int
    name: str
    image: str
    coll: str
    status: str = "running"
    exit_code: int | None = None
    error: str | None = None


class JobListener(Protocol):
    """Follows a job as it goes (the CLI's live display, the echo of ``levrt.run``)."""

    def run_started(self, run: RunInfo) -> None: ...
    def run_finished(self, run: RunInfo) -> None: ...
    def log(self, run_id: int | None, stream: str, lines: list[str]) -> None: ...
    def progress(self, value: float) -> None: ...


class Job:
    def __init__(self, job_id: str, name: str, store: Store, executor: Executor,
                 listeners: Iterable[JobListener] = (), echo: bool = False,
                 earlier: Iterable[dict[str, Any]] = ()) -> None:
        self.id = job_id
        self.name = name
        self.store = store
        self.executor = executor
        self.listeners = list(listeners)
        self.echo = echo
        self._next_run = 0
        self._live: dict[int, Task] = {}
        self._lock = threading.Lock()
        self._log_max_bytes = load_settings().log_max_bytes
        self._logs: dict[int | None, RunLog] = {}
        # Runs of an earlier attempt of this job (its driver was lost), by number.
        self._earlier = {run["run_id"]: run for run in earlier}
        # The runs to record at the end of this loop turn, each with the end of its record.
        self._recording: list[tuple[dict[str, Any], asyncio.Future[None]]] = []

    def next_run_id(self) -> int:
        with self._lock:
            run_id, self._next_run = self._next_run, self._next_run + 1
            return run_id

    def earlier_run(self, run_id: int, fingerprint: str, coll: str) -> dict[str, Any] | None:
        """Run ``run_id`` as an earlier attempt of the job recorded it, when it finished
        ``done`` doing the same (same spec ``fingerprint``, same ``coll``): its document
        stands, and the run is not done again. Any other earlier run of that number is
        forgotten, to be run again."""
        with self._lock:
            run = self._earlier.pop(run_id, None)
        if run is None:
            return None
        if (run["status"] == "done" and run["coll"] == coll
                and (run["spec"] or {}).get("fingerprint") == fingerprint):
            return run
        self.store.discard_run(self.id, run_id)
        return None

    async def create_run(self, run_id: int, **fields: Any) -> None:
        """Record run ``run_id`` running (``fields``: the store's ``create_run`` keywords).
        The runs recorded in one turn of the event loop, a fan-out's, go to the store
        together, :data:`RECORD_BATCH` at a time (one transaction; for a driver, one
        request) instead of one each. When the store refuses some of them (ValueError: a
        name too long, a run id taken), each is tried alone, so that a run's error is its
        own; other errors (the store unreachable) are raised in each. A cancellation records
        the run cancelled."""
        loop = asyncio.get_running_loop()
        if not self._recording:
            loop.call_soon(self._record_runs)
        recorded: asyncio.Future[None] = loop.create_future()
        self._recording.append(({"run_id": run_id, **fields}, recorded))
        try:
            await asyncio.shield(recorded)
        except asyncio.CancelledError:
            await asyncio.wait({recorded})
            if recorded.exception() is None:
                self.store.finish_run(self.id, run_id, status="cancelled", exit_code=None,
                                      error="cancelled")
            raise

    def _record_runs(self) -> None:
        pending, self._recording = self._recording, []
        for first in range(0, len(pending), RECORD_BATCH):
            chunk = pending[first:first + RECORD_BATCH]
            try:
                self.store.create_runs(self.id, [run for run, _ in chunk])
            except ValueError as exc:
                if len(chunk) == 1:
                    chunk[0][1].set_exception(exc)
                else:
                    for run, recorded in chunk:
                        self._record_alone(run, recorded)
            except Exception as exc:  # noqa: BLE001 - each run's start raises it
                for _, recorded in chunk:
                    recorded.set_exception(exc)
            else:
                for _, recorded in chunk:
                    recorded.set_result(None)

    def _record_alone(self, run: dict[str, Any], recorded: asyncio.Future[None]) -> None:
        try:
            self.store.create_runs(self.id, [run])
        except Exception as exc:  # noqa: BLE001 - its start raises it
            recorded.set_exception(exc)
        else:
            recorded.set_result(None)

    def track(self, run_id: int, task: Task | None) -> None:
        if task is None:
            self._live.pop(run_id, None)
        else:
            self._live[run_id] = task

    def log(self, run_id: int | None, stream: str, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            writer = self._logs.get(run_id)
            if writer is None:
                writer = self._logs[run_id] = self.store.run_log(self.id, run_id,
                                                                 self._log_max_bytes)
        writer.append([(stream, line) for line in lines])
        for listener in self.listeners:
            listener.log(run_id, stream, lines)

    def notify(self, event: str, *args: Any) -> None:
        for listener in self.listeners:
            getattr(listener, event)(*args)

    def set_progress(self, value: float) -> None:
        value = min(max(value, 0.0), 1.0)
        self.store.set_job_progress(self.id, value)
        self.notify("progress", value)

    async def cancel_live_runs(self) -> None:
        """Stop runs still going when the job ends: started, but never awaited to the end."""
        while self._live:
            await self._live.popitem()[1].cancel()


class _JobStdout(io.TextIOBase):
    """Sends what a job's code prints to its log; other output passes through."""

    def __init__(self, original: TextIO) -> None:
        self.original = original
        self._partial: dict[str, str] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        job = _current.get(None)
        if job is None:
            return self.original.write(text)
        pending = self._partial.pop(job.id, "") + text
        *lines, rest = pending.split("\n")
        if len(rest) >= LOG_ROW_BYTES:
            # Printed without a newline for a long while: store it, never wait for the end.
            lines.append(rest)
            rest = ""
        if rest:
            self._partial[job.id] = rest
        job.log(None, "job", lines)
        if job.echo:
            self.original.write(text)
        return len(text)

    def flush_job(self, job: Job) -> None:
        rest = self._partial.pop(job.id, "")
        if rest:
            job.log(None, "job", [rest])

    def flush(self) -> None:
        self.original.flush()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")

    def isatty(self) -> bool:
        return self.original.isatty()


class _JobLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        job = _current.get(None)
        if job is not None:
            job.log(None, "job", self.format(record).splitlines())


_install_lock = threading.Lock()
_installed = 0
_log_handler = _JobLogHandler()
_log_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


def _install_capture() -> None:
    global _installed
    with _install_lock:
        if _installed == 0:
            sys.stdout = _JobStdout(sys.stdout)
            logger = logging.getLogger("lev")
            logger.addHandler(_log_handler)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)
        _installed += 1


def _uninstall_capture(job: Job) -> None:
    global _installed
    with _install_lock:
        if isinstance(sys.stdout, _JobStdout):
            sys.stdout.flush_job(job)
        _installed -= 1
        if _installed == 0:
            if isinstance(sys.stdout, _JobStdout):
                sys.stdout = sys.stdout.original
            logging.getLogger("lev").removeHandler(_log_handler)


def _discard(coro: Awaitable[Any]) -> None:
    """Close a coroutine that will never run, so Python does not warn it was never awaited."""
    close = getattr(coro, "close", None)
    if close is not None:
        close()


async def settle(outcome: Any) -> Any:
    """``outcome`` awaited while it is awaitable: a coroutine that returns a ``Cr`` gives
    that run's document, as if the caller had awaited the ``Cr`` too. A document, awaitable
    itself for the original's ``await doc``, is the result and is not read."""
    while inspect.isawaitable(outcome) and not isinstance(outcome, Document):
        outcome = await outcome
    return outcome


def exit_failure(exc: SystemExit) -> str | None:
    """Why a job whose code raised ``exc`` (``exit()``, ``sys.exit(n)``) failed, or None:
    code None or 0 ends the job ``done``."""
    if exc.code is None or exc.code == 0:
        return None
    if isinstance(exc.code, int):
        return f"exited with code {exc.code}"
    return f"exited: {exc.code}"


def _kept_result(result: Any) -> Any:
    """What the store keeps of a workflow's return value: a run's document (a tool mode's
    result) as a pointer to it, ``{"$document": {"coll": ..., "run": ...}}``, since the
    store has it already; anything else as it is."""
    if isinstance(result, Document):
        return {"$document": {"coll": result.coll.name, "run": result.filter["run"]}}
    return result


def _job_name(coro: Awaitable[Any]) -> str:
    name = getattr(coro, "__qualname__", None) or type(coro).__name__
    return name.replace(".<locals>", "")


async def arun(coro: Awaitable[Any], db: str | None = None, *, store: Store | None = None,
               executor: Executor | str | None = None, listeners: Iterable[JobListener] = (),
               echo: bool = False, target: str | None = None,
               params: dict[str, Any] | None = None, job_id: str | None = None) -> Any:
    """Run ``coro`` as a job from async code; see :func:`run`. With ``job_id``, the job is
    that queued job of the store (the server's runner queued it), not a new record."""
    from . import executors

    own_store = store is None
    name = db or _job_name(coro)
    try:
        if store is None:
            # Only here: a driver given a JobStore (an API client) must not pay for
            # SQLAlchemy's import, about half a second of each dispatched job's start.
            from .store import Store

            store = Store.open()
        if executor is None or isinstance(executor, str):
            executor = executors.create(executor)
        if job_id is None:
            job_id = store.create_job(name, target=target, params=params, executor=executor.name,
                                      driver=driver_id())
            earlier: list[dict[str, Any]] = []
        else:
            store.start_job(job_id, executor=executor.name, driver=driver_id())
            earlier = store.list_runs(job_id)  # of an attempt whose driver was lost
    except BaseException:
        _discard(coro)
        if own_store and store is not None:
            store.close()
        raise
    job = Job(job_id, name, store, executor, listeners, echo, earlier)
    token = _current.set(job)
    _install_capture()
    status, error, kept = "failed", None, None
    try:
        why = f" ({executor.chosen_by})" if executor.chosen_by else ""
        job.log(None, "job", [f"job {job_id} started with the {executor.describe()} executor{why}"])
        try:
            result = await settle(coro)
        except SystemExit as exc:
            error = exit_failure(exc)
            if error is not None:
                raise
            result = None
        status, kept = "done", _kept_result(result)
        job.set_progress(1.0)
        return result
    except asyncio.CancelledError:
        status, error = "cancelled", "cancelled"
        raise
    except SystemExit:
        raise  # error says the exit code
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _uninstall_capture(job)
        await job.cancel_live_runs()
        await executor.aclose()
        if error:
            from .store import StoreError

            # The job's end matters more than its last log line: on a full disk the line
            # may not fit, and the end must still be tried.
            line = f"job {status}" if error == status else f"job {status}: {error}"
            with contextlib.suppress(StoreError):
                job.log(None, "job", line.splitlines())
        store.finish_job(job_id, status, error=error, result=kept)
        _current.reset(token)
        if own_store:
            store.close()


def run(coro: Coroutine[Any, Any, Any], db: str | None = None, **options: Any) -> Any:
    """Run ``coro`` as a job: record it, run it, mark it done or failed, return its result.

    ``db`` names the job (default: the coroutine's name). Options (ours):
    ``store``, ``executor`` (an :class:`~levrt.executors.Executor` or its name),
    ``listeners``, ``echo`` (also print what the workflow prints; default on).

    The workflow's exception is re-raised. ``exit()`` / ``sys.exit(0)`` in it end the job
    ``done`` and ``run`` returns None; ``sys.exit(n)`` with any other code fails the job and
    re-raises that ``SystemExit``, so the script exits with ``n`` unless it catches it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # the job runs below, outside this block: its errors are not chained to this one
    else:
        _discard(coro)
        raise RuntimeError("levrt.run() cannot be called from a running event loop: "
                           "use `await levrt.arun(...)`")
    options.setdefault("echo", True)
    return asyncio.run(arun(coro, db, **options))
