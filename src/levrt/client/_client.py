"""The HTTP client of a levrt server's JSON API, on httpx."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from ._credentials import saved_login, server_url
from ._errors import ApiError, ApiUnreachable

# Long enough for a 20 MiB upload on a slow link; a hung server still ends the call.
CONFIG_TIMEOUT = 300.0


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
    read; ``transport`` replaces the network (an ``httpx.MockTransport`` in tests). Thread
    safe as httpx's client is; close it (or use ``with``) to free its connections."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = server_url(base_url)
        self.token = token
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                  transport=transport)

    @classmethod
    def from_config(cls, server: str | None = None) -> Client:
        """A client for ``server`` (default: the last ``lev login``) with the token ``lev
        login`` saved for it in ``$LEV_HOME/credentials.json``.

        Raises LoginRequired when there is no such login, CredentialsError when the file
        cannot be read, ValueError when ``server`` is not an http(s) URL."""
        url, token = saved_login(server)
        return cls(url, token, timeout=CONFIG_TIMEOUT)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send ``method`` to ``path`` (relative to ``base_url``; ``kwargs`` as httpx's
        ``Client.request``) and return the answer, read whole.

        Raises ApiError for a 4xx or 5xx answer, ApiUnreachable when none came."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.url(path), _reason(exc)) from None
        if response.is_error:
            raise _refusal(response)
        return response

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


def _reason(exc: httpx.TransportError) -> str:
    """Why no answer came, in words: httpx's message, else the kind of failure."""
    text = str(exc).strip()
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({text or type(exc).__name__})"
    return text or type(exc).__name__
