"""A job's store as its driver reaches it: the server's driver routes, with the job's token.

:class:`JobStore` has the names and shapes of the :class:`~levrt.store.Store` methods the
job runtime calls (``levrt.arun(..., store=JobStore(...))``), each one request to
``/api/driver/jobs/{job}/...``; it can touch its own job and nothing else. Log lines are
held and sent together, at most :data:`LOG_FLUSH_SECONDS` after the first of them (sooner
past :data:`LOG_FLUSH_LINES`), and before any other write, so they stay in order with it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import EllipsisType, TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from .._job_json import to_json
from ..shim.entry import decode
from ._client import Client
from ._errors import ApiError

__all__ = ["JobStore"]

# Held log lines are sent this often (seconds), or at once when this many are held.
LOG_FLUSH_SECONDS = 0.25
LOG_FLUSH_LINES = 2000
# Nor more than this many bytes of them: a request stays well under the server's body cap.
LOG_FLUSH_BYTES = 4 * 1024 * 1024
# How long a driver waits for a server it cannot connect to (restarting) before its job fails.
RECONNECT_SECONDS = 120.0


def _revived(row: Any) -> Any:
    """A row as the store answers it: its ``*_at`` times as datetimes, its data decoded."""
    if isinstance(row, list):
        return [_revived(item) for item in row]
    if not isinstance(row, dict):
        return row
    out = dict(row)
    for key, value in row.items():
        if (key.endswith("_at") or key == "ts") and isinstance(value, str):
            out[key] = datetime.fromisoformat(value)
        elif key in ("data", "params", "result", "spec"):
            out[key] = decode(value)
    return out


class JobStore:
    """One job's store, through the server's driver routes.

    ``base_url`` is the server's root, or ``socket`` the path of a server's Unix socket (the
    local runner's); ``token`` the job token, ``job_id`` its job. The store raises
    :class:`~levrt.client.ApiError` for a refusal (401 once the job has ended, 403 for
    another job than its own), :class:`~levrt.client.ApiUnreachable` without an answer."""

    def __init__(self, job_id: str, token: str, *, base_url: str = "http://driver",
                 socket: str | None = None, timeout: float = 60.0) -> None:
        transport = httpx.HTTPTransport(uds=socket) if socket else None
        self.job_id = job_id
        self.url = base_url if socket is None else f"unix:{socket}"
        self._client = Client(base_url, token, timeout=timeout, transport=transport,
                              patience=RECONNECT_SECONDS)
        self._base = f"/api/driver/jobs/{quote(job_id, safe='')}"
        self._held: list[tuple[int | None, str, str]] = []
        self._held_bytes = 0
        self._held_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._wake = threading.Condition(self._held_lock)
        self._closed = False
        self._failed: Exception | None = None
        self._flusher = threading.Thread(target=self._flush_loop, name="lev-job-log",
                                         daemon=True)
        self._flusher.start()

    @classmethod
    def from_env(cls, job_id: str) -> JobStore:
        """The store of ``job_id`` from ``LEV_JOB_TOKEN`` and ``LEV_API_SOCKET`` (or
        ``LEV_API_URL``), as the server's runner sets them. The token leaves the environment:
        the job's tools inherit it, and have no use for it. ValueError names what is
        missing."""
        token = os.environ.pop("LEV_JOB_TOKEN", None)
        socket = os.environ.get("LEV_API_SOCKET")
        url = os.environ.get("LEV_API_URL")
        if not token or not (socket or url):
            raise ValueError("a job driver needs LEV_JOB_TOKEN and LEV_API_SOCKET or "
                             "LEV_API_URL, as the server's runner sets them")
        if socket:
            return cls(job_id, token, socket=socket)
        assert url is not None
        return cls(job_id, token, base_url=url)

    def _check(self, job_id: str) -> None:
        if job_id != self.job_id:
            raise KeyError(f"this store is job {self.job_id}'s only, not job {job_id}'s")

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.flush()
        return self._request(method, path, **kwargs)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, sent again for up to :data:`RECONNECT_SECONDS` while the server
        does not act on it (restarting, or its store unavailable: see
        :class:`~levrt.client.Client`'s ``patience``)."""
        return self._client.request(method, self._base + path, **kwargs)

    def _read(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params).json()

    # -- the job -----------------------------------------------------------------------------

    def start_job(self, job_id: str, *, executor: str | None, driver: str | None = None) -> None:
        """Mark the queued job running; the driver id the server recorded becomes this
        process's (``LEV_DRIVER_ID``), for the containers it labels."""
        self._check(job_id)
        answer = self._call("POST", "/start", json={"executor": executor,
                                                    "driver": driver}).json()
        if answer.get("driver"):
            os.environ["LEV_DRIVER_ID"] = answer["driver"]

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        self._check(job_id)
        job: dict[str, Any] | None = _revived(self._read(""))
        return job

    def previous_documents(self, job_id: str) -> dict[str, Any] | None:
        self._check(job_id)
        found: dict[str, Any] | None = self._read("/previous")
        if found is not None:
            found = {**_revived(found), "documents": _revived(found["documents"])}
        return found

    def set_job_progress(self, job_id: str, progress: float) -> None:
        self._check(job_id)
        self._call("POST", "/progress", json={"value": min(1.0, max(0.0, float(progress)))})

    def finish_job(self, job_id: str, status: str, *, error: str | None = None,
                   result: Any = None) -> None:
        """End the job; a result that is not JSON data is kept as its ``repr``."""
        self._check(job_id)
        try:
            kept = to_json(result)
        except TypeError:
            kept = repr(result)
        self._call("POST", "/finish", json={"status": status, "error": error, "result": kept})

    # -- runs and documents --------------------------------------------------------------

    def create_runs(self, job_id: str, runs: Sequence[Mapping[str, Any]]) -> None:
        """Record runs as running, all or none, in one request, with the errors of
        :meth:`levrt.store.Store.create_runs`: ValueError when the server refuses them (a
        run id taken, a field out of bounds)."""
        self._check(job_id)
        try:
            self._call("POST", "/runs", json={"runs": [
                {**run, "spec": to_json(run.get("spec"))} for run in runs]})
        except ApiError as exc:
            if exc.status in (409, 422):
                raise ValueError(str(exc)) from None
            raise

    def finish_run(self, job_id: str, run_id: int, *, status: str, exit_code: int | None,
                   error: str | None = None, coll: str | None = None,
                   data: dict[str, Any] | None = None) -> None:
        self._check(job_id)
        self._call("POST", f"/runs/{run_id}/finish", json={
            "status": status, "exit_code": exit_code, "error": error, "coll": coll,
            "data": to_json(dict(data)) if data else None})

    def discard_run(self, job_id: str, run_id: int, *, keep_run: bool = False) -> None:
        self._check(job_id)
        self._call("DELETE", f"/runs/{run_id}", params={"keep_run": keep_run})

    def list_runs(self, job_id: str) -> list[dict[str, Any]]:
        self._check(job_id)
        runs: list[dict[str, Any]] = _revived(self._read("/runs"))
        return runs

    def merge_document(self, coll: str, job_id: str, run_id: int | None,
                       data: dict[str, Any]) -> None:
        self._check(job_id)
        self._call("POST", "/documents", json={"coll": coll, "run_id": run_id,
                                               "data": to_json(dict(data))})

    def find_documents(self, *, coll: str | None = None, job_id: str | None = None,
                       run_id: int | None | EllipsisType = ...,
                       coll_prefix: str | None = None) -> list[dict[str, Any]]:
        """The job's own documents matching the filters (a driver sees no other job's)."""
        if job_id is not None:
            self._check(job_id)
        params: dict[str, Any] = {}
        if coll is not None:
            params["coll"] = coll
        if run_id is not ...:
            params["run"] = "job" if run_id is None else str(run_id)
        rows: list[dict[str, Any]] = _revived(self._read("/documents", **params))
        if coll_prefix is not None:
            rows = [row for row in rows if row["coll"].startswith(coll_prefix)]
        return rows

    def list_documents(self, job_id: str) -> list[dict[str, Any]]:
        return self.find_documents(job_id=job_id)

    # -- logs ----------------------------------------------------------------------------

    def run_log(self, job_id: str, run_id: int | None, max_bytes: int) -> _RunLog:
        """A writer of one run's log; the server keeps it within its own ``log_max_bytes``
        whatever ``max_bytes`` says."""
        self._check(job_id)
        return _RunLog(self, run_id)

    def append_logs(self, job_id: str, run_id: int | None,
                    entries: list[tuple[str, str]]) -> None:
        self.run_log(job_id, run_id, 0).append(entries)

    def _hold(self, run_id: int | None, entries: Iterable[tuple[str, str]]) -> None:
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        with self._held_lock:
            first = not self._held
            for stream, line in entries:
                self._held.append((run_id, stream, line))
                self._held_bytes += len(line)
            full = len(self._held) >= LOG_FLUSH_LINES or self._held_bytes >= LOG_FLUSH_BYTES
            if first:
                self._wake.notify()
        if full:
            self.flush()

    def _flush_loop(self) -> None:
        while True:
            with self._held_lock:
                while not self._held and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                self._wake.wait(LOG_FLUSH_SECONDS)
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the next append raises it
                self._failed = exc

    def flush(self) -> None:
        """Send the log lines held, in one request."""
        with self._send_lock:
            with self._held_lock:
                held, self._held, self._held_bytes = self._held, [], 0
            if not held:
                return
            batches: list[dict[str, Any]] = []
            for run_id, stream, line in held:
                if not batches or batches[-1]["run_id"] != run_id:
                    batches.append({"run_id": run_id, "entries": []})
                batches[-1]["entries"].append([stream, line])
            self._request("POST", "/logs", json={"batches": batches})

    def get_logs(self, job_id: str, *, after: int = 0, limit: int | None = None,
                 max_bytes: int | None = None, last: bool = False) -> list[dict[str, Any]]:
        self._check(job_id)
        params: dict[str, Any] = {"after": after, "limit": limit or 10_000, "last": last}
        if max_bytes is not None:
            params["max_bytes"] = max_bytes
        rows: list[dict[str, Any]] = _revived(self._read("/logs", **params))
        return rows

    def log_tail(self, job_id: str, run_id: int, lines: int = 20) -> list[str]:
        self._check(job_id)
        texts: list[str] = self._read(f"/runs/{run_id}/log-tail", lines=lines)
        return texts

    # -- files ---------------------------------------------------------------------------

    def has_file(self, digest: str) -> bool:
        """Whether the job's owner has the file ``digest``."""
        return bool(self._read(f"/files/{quote(digest, safe='')}/exists")["exists"])

    def get_file(self, digest: str) -> bytes:
        """A file of the job's owner; ApiError 404 for any other."""
        return self._call("GET", f"/files/{quote(digest, safe='')}").content

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is held and free the connection."""
        try:
            self.flush()
        finally:
            with self._held_lock:
                self._closed = True
                self._wake.notify()
            self._client.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JobStore({self.job_id!r} at {self.url})"


class _RunLog:
    """One run's log lines (``run_id`` None: the job's own), held by the store to send."""

    def __init__(self, store: JobStore, run_id: int | None) -> None:
        self._store = store
        self.run_id = run_id

    def append(self, entries: Iterable[tuple[str, str]]) -> None:
        self._store._hold(self.run_id, entries)
