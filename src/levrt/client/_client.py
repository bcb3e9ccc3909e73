"""The HTTP client of a levrt server's JSON API, on httpx: one method per route the
``lev`` commands use, answering the server's JSON as plain dicts and lists."""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from .._status import JobStatus
from ._credentials import saved_login, server_url
from ._errors import ApiError, ApiUnreachable

__all__ = ["Client"]

# Long enough for a 20 MiB upload on a slow link; a hung server still ends the call.
CONFIG_TIMEOUT = 300.0


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context, made once per process: loading the CA certificates takes
    tens of milliseconds, which each new client paid (an agent makes one per spread run)."""
    return httpx.create_ssl_context()


def _refusal(response: httpx.Response) -> ApiError:
    """The ApiError for an error answer: its JSON ``detail``, else the start of its text."""
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        detail = response.text.strip()[:200] or response.reason_phrase
    return ApiError(response.status_code, detail)


class Client:
    """A levrt server's API as one user (or device, or job) sees it through its token.

    ``base_url`` is the server's root (``http://127.0.0.1:8765``), ``token`` an API token sent
    as ``Authorization: Bearer``; ``timeout`` in seconds applies to connecting and to each
    read; ``transport`` replaces the network (an ``httpx.MockTransport`` in tests).
    ``patience`` is how long (seconds) a request the server did not act on is sent again:
    one that never reached it (restarting), or one answered 503 with ``Retry-After`` (its
    store was unavailable for a moment: nothing was written). Thread safe as httpx's client
    is; close it (or use ``with``) to free its connections."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, patience: float = 0.0) -> None:
        self.base_url = server_url(base_url)
        self.token = token
        self.patience = patience
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                  transport=transport, verify=_tls())

    @classmethod
    def from_config(cls, server: str | None = None) -> Client:
        """A client for ``server`` (default: the last ``lev login``) with the token ``lev
        login`` saved for it in ``$LEV_HOME/credentials.json``.

        Raises LoginRequired when there is no such login, CredentialsError when the file
        cannot be read, ValueError when ``server`` is not an http(s) URL."""
        url, token = saved_login(server)
        return cls(url, token, timeout=CONFIG_TIMEOUT)

    def request(self, method: str, path: str, *, patience: float | None = None,
                **kwargs: Any) -> httpx.Response:
        """Send ``method`` to ``path`` (relative to ``base_url``; ``kwargs`` as httpx's
        ``Client.request``) and return the answer, read whole.

        Raises ApiError for a 4xx or 5xx answer, ApiUnreachable when none came (each after
        ``patience`` seconds, default :attr:`patience`, of sending again what the server
        did not act on)."""
        deadline = time.monotonic() + (self.patience if patience is None else patience)
        pause = 0.1
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                failure: ApiError = ApiUnreachable(self.url(path), _reason(exc), sent=sent)
                again = not sent
            else:
                if not response.is_error:
                    return response
                failure = _refusal(response)
                again = response.status_code == 503 and "retry-after" in response.headers
            if not again or time.monotonic() + pause > deadline:
                raise failure
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of a request; ApiError when the answer is not JSON."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, response.text[:200],
                           f"{self.url(path)} did not answer with JSON: is it a levrt "
                           "server?") from None

    # -- users and tokens ------------------------------------------------------------------

    def login(self, user: str, password: str, token_name: str | None = None) -> dict[str, Any]:
        """Trade a user name and password for a new API token (``POST /api/login``); answers
        ``{"user", "token", "token_id", "token_name"}``. The client keeps its own token: make
        a new Client with the answer's. ApiError 401 for a wrong password, 429 after too many.
        """
        body: dict[str, Any] = {"user": user, "password": password}
        if token_name is not None:
            body["token_name"] = token_name
        answer: dict[str, Any] = self._json("POST", "/api/login", json=body)
        return answer

    def me(self) -> dict[str, Any]:
        """The token's user (``name``, ``is_admin``, ...) and the ``namespaces`` they may
        publish in."""
        answer: dict[str, Any] = self._json("GET", "/api/me")
        return answer

    def namespaces(self) -> list[str]:
        """The namespaces the token's user may publish in (``lev.NAMESPACE.*``)."""
        names: list[str] = self.me()["namespaces"]
        return names

    def create_token(self, name: str) -> dict[str, Any]:
        """A new API token for the caller: ``{"id", "name", "token", ...}``; the secret
        ``token`` is in this answer only."""
        answer: dict[str, Any] = self._json("POST", "/api/tokens", json={"name": name})
        return answer

    def list_tokens(self) -> list[dict[str, Any]]:
        """The caller's tokens, without their secrets."""
        answer: list[dict[str, Any]] = self._json("GET", "/api/tokens")
        return answer

    def revoke_token(self, token_id: int) -> None:
        """Revoke one of the caller's tokens (the one in use too); ApiError 404 if not theirs."""
        self.request("DELETE", f"/api/tokens/{int(token_id)}")

    # -- packages --------------------------------------------------------------------------

    def upload_package(self, wheel: Path, manifest: dict[str, Any]) -> dict[str, Any]:
        """Publish the wheel file ``wheel`` with its ``manifest``; answers the version as
        stored, with its ``url``. ApiError 409 when the version exists, 403 when the
        namespace is not the caller's, 400/413/415 for a refused upload."""
        files = {"wheel": (wheel.name, wheel.read_bytes(), "application/octet-stream"),
                 "manifest": ("manifest.json", json.dumps(manifest).encode(),
                              "application/json")}
        answer: dict[str, Any] = self._json("POST", "/api/packages/upload", files=files)
        return answer

    def list_packages(self, q: str | None = None, *, kind: str | None = None,
                      owner: str | None = None, page: int = 1,
                      limit: int = 100) -> list[dict[str, Any]]:
        """One page (from 1) of packages by name with their latest version's exports;
        ``q`` searches names and descriptions, ``kind`` is ``tool`` or ``workflow``."""
        params = _present(q=q, kind=kind, owner=owner, page=page, limit=limit)
        answer: list[dict[str, Any]] = self._json("GET", "/api/packages", params=params)
        return answer

    def get_package(self, name: str) -> dict[str, Any]:
        """A package and its ``versions``, newest first; ApiError 404 when there is none."""
        answer: dict[str, Any] = self._json("GET", f"/api/packages/{_segment(name)}")
        return answer

    def get_version(self, name: str, version: str = "latest") -> dict[str, Any]:
        """A version of a package and its ``manifest`` (``latest``: the newest release)."""
        answer: dict[str, Any] = self._json(
            "GET", f"/api/packages/{_segment(name)}/{_segment(version)}")
        return answer

    def list_package_files(self, name: str, version: str = "latest") -> list[dict[str, Any]]:
        """The files of a version's wheel: ``path``, ``size``, ``sha256``, ..."""
        answer: list[dict[str, Any]] = self._json(
            "GET", f"/api/packages/{_segment(name)}/{_segment(version)}/files")
        return answer

    def read_package_file(self, name: str, version: str, path: str) -> bytes:
        """The bytes of one file of a version's wheel (``path`` as listed)."""
        return self.request(
            "GET", f"/api/packages/{_segment(name)}/{_segment(version)}/files/"
            f"{quote(path, safe='/')}").content

    # -- tasks -----------------------------------------------------------------------------

    def submit_task(self, target: str, params: dict[str, Any] | None = None, *,
                    name: str | None = None, version: str | None = None,
                    device: str | None = None, pool: str | None = None,
                    spread: bool = False) -> dict[str, Any]:
        """Launch ``target`` (a published tool mode or workflow) with ``params``, on the
        server's runner or on one of the caller's devices (``device``) or pools (``pool``);
        answers ``{"id", "status"}``. ApiError 422 names each parameter (``params.NAME``)
        or field that the server refused; 503 when the server cannot reach Temporal.
        ``spread`` (with ``pool``) spreads the job's runs over the pool's agents too."""
        body = {"target": target, "params": params or {},
                **_present(name=name, version=version, device=device, pool=pool),
                **({"spread": True} if spread else {})}
        answer: dict[str, Any] = self._json("POST", "/api/tasks", json=body)
        return answer

    def upload_file(self, path: Path) -> dict[str, Any]:
        """Keep the local file ``path`` on the server for a ``File`` parameter; answers
        ``{"digest", "name", "size"}``, ``digest`` being the parameter's value. OSError when
        the file cannot be read."""
        files = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
        answer: dict[str, Any] = self._json("POST", "/api/tasks/files", files=files)
        return answer

    def list_tasks(self, *, status: JobStatus | None = None, q: str | None = None, page: int = 1,
                   limit: int = 50) -> list[dict[str, Any]]:
        """One page (from 1) of the caller's tasks (an administrator's: everyone's), newest
        first; ``status`` one of :data:`JOB_STATUSES`, ``q`` text in name or target."""
        params = _present(status=status, q=q, page=page, limit=limit)
        answer: list[dict[str, Any]] = self._json("GET", "/api/tasks", params=params)
        return answer

    def get_task(self, task_id: str) -> dict[str, Any]:
        """The task as ``lev show --json`` prints a job: ``job``, ``runs``, ``documents``,
        the log's tail (``log``, ``log_more``), ``result``. ApiError 404 for an unknown id."""
        answer: dict[str, Any] = self._json("GET", _task_path(task_id))
        return answer

    def task_logs(self, task_id: str, *, after: int = 0,
                  limit: int | None = None) -> list[dict[str, Any]]:
        """One page of log rows with ``seq`` after ``after``, oldest first (``seq``, ``ts``,
        ``run_id``, ``stream``, ``text``); an empty page is the end so far."""
        params = _present(after=after, limit=limit)
        answer: list[dict[str, Any]] = self._json("GET", _task_path(task_id, "/logs"),
                                                  params=params)
        return answer

    def iter_task_logs(self, task_id: str, *, after: int = 0) -> Iterator[dict[str, Any]]:
        """Every log row after ``after`` so far, fetched page by page as they are read."""
        while rows := self.task_logs(task_id, after=after):
            yield from rows
            after = rows[-1]["seq"]

    def task_events(self, task_id: str, *, after: int = 0) -> Iterator[tuple[str, Any]]:
        """The task's server-sent events as ``(event, data)`` until ``end``: ``status``
        ({id, status, progress}), ``runs`` ({runs, finished}), ``log`` (a log row with
        ``seq`` after ``after``), ``end`` ({status, error}). Each read waits up to the
        client's timeout (the server sends a keepalive every 15 s). ApiError 429 when the
        user has too many streams open; ApiUnreachable when the stream breaks."""
        path = _task_path(task_id, "/events")
        try:
            with self._http.stream("GET", path, params={"after": after},
                                   headers={"Accept": "text/event-stream"}) as response:
                if response.is_error:
                    response.read()
                    raise _refusal(response)
                yield from _server_sent(response.iter_lines())
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.url(path), _reason(exc)) from None

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        """Cancel a queued or running task; answers ``{"id", "status"}`` at that moment.
        ApiError 409 when it has ended already or another server runs it."""
        answer: dict[str, Any] = self._json("POST", _task_path(task_id, "/cancel"))
        return answer

    # -- devices ---------------------------------------------------------------------------

    def list_devices(self) -> list[dict[str, Any]]:
        """The devices tasks run on: ``name``, ``kind``, ``status``, ``executor``,
        ``running``, ``queued``, ..."""
        answer: list[dict[str, Any]] = self._json("GET", "/api/devices")
        return answer

    # -- schedules -------------------------------------------------------------------------

    def add_schedule(self, name: str, target: str, params: dict[str, Any] | None = None, *,
                     cron: str | None = None, interval: int | None = None,
                     timezone: str = "UTC", version: str | None = None,
                     device: str | None = None, pool: str | None = None,
                     spread: bool = False) -> dict[str, Any]:
        """A schedule ``name`` firing ``target`` with ``params`` at each slot of ``cron``
        (five fields, read in ``timezone``) or every ``interval`` seconds, its tasks placed
        as :meth:`submit_task` places one; answers it with its ``next_fire`` and
        ``placement``. ApiError 422 names the refused field, 409 when the name is taken."""
        body = {"name": name, "target": target, "params": params or {}, "timezone": timezone,
                **_present(cron=cron, interval=interval, version=version, device=device,
                           pool=pool), **({"spread": True} if spread else {})}
        answer: dict[str, Any] = self._json("POST", "/api/schedules", json=body)
        return answer

    def list_schedules(self) -> list[dict[str, Any]]:
        """The caller's schedules by name."""
        answer: list[dict[str, Any]] = self._json("GET", "/api/schedules")
        return answer

    def get_schedule(self, name: str) -> dict[str, Any]:
        """A schedule with its latest ``fires``, ``hooks`` and ``deliveries``."""
        answer: dict[str, Any] = self._json("GET", f"/api/schedules/{_segment(name)}")
        return answer

    def pause_schedule(self, name: str, paused: bool = True) -> dict[str, Any]:
        """Pause (or, with ``paused=False``, resume) a schedule; ApiError 404 if not theirs."""
        action = "pause" if paused else "resume"
        answer: dict[str, Any] = self._json("POST", f"/api/schedules/{_segment(name)}/{action}")
        return answer

    def remove_schedule(self, name: str) -> None:
        """Remove a schedule and its notifications (its jobs stay)."""
        self.request("DELETE", f"/api/schedules/{_segment(name)}")

    def add_hook(self, kind: str, url: str, events: list[str] | None = None, *,
                 schedule: str | None = None, task_id: str | None = None) -> dict[str, Any]:
        """Notify ``url`` (``kind`` ``webhook`` or ``apprise``) on ``events`` of a schedule's
        jobs or of one task; a webhook's answer holds its signing ``secret``, shown once."""
        path = (f"/api/schedules/{_segment(schedule)}/hooks" if schedule is not None
                else _task_path(task_id or "", "/hooks"))
        body = {"kind": kind, "url": url, **_present(events=events)}
        answer: dict[str, Any] = self._json("POST", path, json=body)
        return answer

    # -- plumbing --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        return f"{self.base_url}{path}" if path.startswith("/") else f"{self.base_url}/{path}"

    def close(self) -> None:
        """Close the connections; the client cannot be used after."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _segment(text: str) -> str:
    return quote(text, safe="")


def _task_path(task_id: str, rest: str = "") -> str:
    return f"/api/tasks/{_segment(task_id)}{rest}"


def _present(**values: Any) -> dict[str, Any]:
    """``values`` without those that are None: the server's defaults apply to them."""
    return {key: value for key, value in values.items() if value is not None}


def _server_sent(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """``(event, JSON data)`` of a text/event-stream, comments (keepalives) skipped."""
    kind, data = "message", ""
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


def _reason(exc: httpx.TransportError) -> str:
    """Why no answer came, in words: httpx's message, else the kind of failure."""
    text = str(exc).strip()
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({text or type(exc).__name__})"
    return text or type(exc).__name__
