"""Who is asking: the store of the app and the user behind a Bearer API token (or, for the
few reading routes the web pages call, their session cookie)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from levrt.server.sessions import session_user
from levrt.store import Store, TokenRevokedError

# auto_error=False: a missing token gets our own message (how to get one), not FastAPI's.
_bearer = HTTPBearer(
    auto_error=False, description="An API token: lev login URL, or POST /api/tokens"
)


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def current_user(
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> dict[str, Any]:
    """The user of the request's API token, with ``token_id`` and ``token_name``; 401 when the
    token is missing, unknown or revoked."""
    if credentials is None:
        raise _unauthorized(
            "missing API token: send 'Authorization: Bearer <token>' (lev login URL stores one "
            "for the lev command)"
        )
    try:
        user = await run_in_threadpool(store.resolve_token, credentials.credentials)
    except TokenRevokedError as exc:
        raise _unauthorized(str(exc)) from None
    if user is None:
        raise _unauthorized("invalid API token: log in again with lev login URL")
    return user


CurrentUser = Annotated[dict[str, Any], Depends(current_user)]


async def current_reader(
    request: Request,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> dict[str, Any]:
    """As :func:`current_user`, but without a token the web pages' session cookie will do.
    Only for GET routes: a cookie comes with cross-site requests too, so a route that changes
    anything needs a token (or, on a page, a CSRF-checked form)."""
    if credentials is None:
        user = await session_user(request)
        if user is not None:
            return user
    return await current_user(store, credentials)


CurrentReader = Annotated[dict[str, Any], Depends(current_reader)]
"""A user by API token or, for the web pages' live parts, by session cookie (GET only)."""
