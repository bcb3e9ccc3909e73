"""Cookie sessions and CSRF tokens for the web pages.

A session is a signed cookie, no server-side row: itsdangerous' ``URLSafeTimedSerializer``
signs ``{"user", "csrf"}`` with the time it was made (HMAC-SHA256), and a cookie older than
:data:`MAX_AGE_SECONDS` or whose signature does not hold is no session. The secret is
random, generated once and kept in ``$LEV_HOME/web-secret`` (mode 0600): it survives
restarts, and deleting the file logs every browser out. A visitor who is not logged in gets
an anonymous session (``user`` None) too, so that the login form carries a CSRF token like
every other form.

The CSRF token lives inside the signed cookie and goes in each form as a hidden field; a
POST whose field does not equal its cookie's token is refused. A cross-site page can make a
browser send the cookie (where SameSite=Lax allows it) but cannot read it, so it cannot know
the token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from levrt.server.upload import limited_form
from levrt.store import Store, default_home

COOKIE = "lev_session"
CSRF_FIELD = "csrf_token"
# A working day: long enough not to interrupt a scan, short enough for a stolen cookie.
MAX_AGE_SECONDS = 12 * 3600
_SECRET_FILE = "web-secret"


@dataclass(frozen=True)
class Session:
    user: str | None
    csrf: str


def load_secret() -> bytes:
    """The signing secret in ``$LEV_HOME/web-secret``, created if missing."""
    path = default_home() / _SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two servers starting at once must not each write a different secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) < 32:
            raise RuntimeError(
                f"the web session secret {str(path)!r} is shorter than 32 bytes: delete it "
                "and restart the server to generate a new one"
            ) from None
        return secret
    secret = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
    return secret


def _app_secret(request: Request) -> bytes:
    # Read once per app: the file never changes while the server runs.
    secret: bytes | None = getattr(request.app.state, "session_secret", None)
    if secret is None:
        secret = load_secret()
        request.app.state.session_secret = secret
    return secret


def _serializer(secret: bytes) -> URLSafeTimedSerializer:
    # The salt keeps these signatures apart from any other use of the same secret.
    return URLSafeTimedSerializer(secret, salt="lev-session",
                                  signer_kwargs={"digest_method": hashlib.sha256})


def encode(secret: bytes, session: Session) -> str:
    """The cookie value of ``session``, signed now."""
    return _serializer(secret).dumps({"user": session.user, "csrf": session.csrf})


def decode(secret: bytes, cookie: str) -> Session | None:
    """The session in ``cookie`` when its signature holds and it is at most
    :data:`MAX_AGE_SECONDS` old."""
    try:
        data = _serializer(secret).loads(cookie, max_age=MAX_AGE_SECONDS)
        user, csrf = data["user"], data["csrf"]
    except (BadData, KeyError, TypeError):
        return None
    if not isinstance(csrf, str) or not (user is None or isinstance(user, str)):
        return None
    return Session(user, csrf)


def read(request: Request) -> Session | None:
    cookie = request.cookies.get(COOKIE)
    return None if cookie is None else decode(_app_secret(request), cookie)


def new_session(user: str | None) -> Session:
    # A fresh CSRF token at each login: a token seen before logging in is worth nothing after.
    return Session(user, secrets.token_urlsafe(32))


def set_cookie(request: Request, response: Response, session: Session) -> None:
    public_url = request.app.state.settings.public_url or ""
    response.set_cookie(
        COOKIE, encode(_app_secret(request), session), max_age=MAX_AGE_SECONDS, path="/",
        httponly=True, samesite="lax",
        # Plain HTTP on loopback by default; behind an https proxy the cookie must stay there.
        secure=public_url.startswith("https://"),
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/")


async def session_user(request: Request) -> dict[str, Any] | None:
    """The logged-in user of the request's session cookie, None without one. A user deleted
    since logging in has no session any more."""
    session = read(request)
    if session is None or session.user is None:
        return None
    store: Store = request.app.state.store
    return await run_in_threadpool(store.get_user, session.user)


class CsrfRefused(HTTPException):
    """A form post without this session's CSRF token; the app answers it with a page."""

    def __init__(self) -> None:
        super().__init__(403, "this form has expired or did not come from this site: reload "
                         "the page and send it again")


async def check_csrf(request: Request) -> FormData:
    """The posted form, once its CSRF field matches the session's token; 403 otherwise.
    The body may be ``LEV_SERVER_MAX_UPLOAD_BYTES`` at most (a form can carry files)."""
    form = await limited_form(request, request.app.state.settings.max_upload_bytes)
    session = read(request)
    token = form.get(CSRF_FIELD)
    if session is None or not isinstance(token, str) or not hmac.compare_digest(
        token.encode(), session.csrf.encode()
    ):
        raise CsrfRefused()
    return form
