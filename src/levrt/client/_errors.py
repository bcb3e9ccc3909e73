"""What a :class:`~levrt.client.Client` raises when the server refuses or does not answer."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "ApiUnreachable", "CredentialsError", "LoginRequired", "one_line"]


def one_line(detail: Any) -> str:
    """A refusal's ``detail`` on one line: a validation error's items as ``field: why``.

    FastAPI's 422 lists ``{"loc": [where, *field], "msg": ...}``; ``where`` (``body``,
    ``query``, ``path``) is dropped, so ``["body", "params", "port"]`` reads ``params.port``."""
    if isinstance(detail, list) and detail and all(isinstance(item, dict) for item in detail):
        return "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', [])[1:]) or 'request'}: "
            f"{item.get('msg', '')}" for item in detail)
    return " ".join(str(detail).split())


class ApiError(Exception):
    """The server answered with an HTTP error (4xx or 5xx).

    ``status`` is the HTTP status, ``detail`` the answer's ``detail`` as sent (a string, or
    for 422 a list of ``{"loc", "msg", "type"}``), ``str(exc)`` one line naming what to fix."""

    def __init__(self, status: int, detail: Any, message: str | None = None) -> None:
        super().__init__(message if message is not None else one_line(detail))
        self.status = status
        self.detail = detail


class ApiUnreachable(ApiError):
    """No answer: connection refused, unknown host, TLS failure or timeout. ``status`` is 0;
    ``url`` is what was asked and ``reason`` why there was no answer; ``sent`` is False when
    no connection was made, so the server cannot have acted on the request."""

    def __init__(self, url: str, reason: str, *, sent: bool = True) -> None:
        super().__init__(0, reason, f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason
        self.sent = sent


class LoginRequired(ApiError):
    """No saved login for the server asked (``lev login`` makes one). ``status`` is 401, as
    the server would answer a request without a token."""

    def __init__(self, message: str) -> None:
        super().__init__(401, message, message)


class CredentialsError(ValueError):
    """The saved logins file cannot be read or is not one; the message names the file."""
