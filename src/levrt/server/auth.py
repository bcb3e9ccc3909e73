"""Who is asking: the store of the app and the user behind an API token (or, for the
routes that only read, their web session cookie).

A token comes as ``Authorization: Bearer <token>``. Reading also takes it as the password of
HTTP Basic auth under any user name (``__token__`` by convention, as on PyPI): that is how
pip sends the credentials of an index URL such as ``http://__token__:<token>@host/simple/``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from itsdangerous import BadData, URLSafeSerializer
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from levrt._status import UNFINISHED_STATUSES
from levrt.server.sessions import load_secret, session_user
from levrt.server.throttle import LoginThrottle
from levrt.store import Store, TokenRevokedError

_REALM = "levrt"
_GET_ONE = "get one with lev login URL or on the web page /settings"
_SEND_BEARER = "send 'Authorization: Bearer <token>'"
_SEND_EITHER = (
    f"{_SEND_BEARER}, or the token as the password of HTTP Basic auth (pip: "
    "http://__token__:<token>@host/simple/)"
)
# Bearer only, even where Basic is taken: pip sends its index URL's credentials without
# being asked, and a Basic challenge would make browsers pop up a login box over the pages'
# scripts (the live log) once a session expires.
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class _TokenAsPassword(HTTPBasic):
    """HTTP Basic auth carrying a token as its password, refused in our words: FastAPI's own
    "Invalid authentication credentials" for a garbled header does not say what to send."""

    async def __call__(self, request: HTTPConnection) -> HTTPBasicCredentials | None:
        try:
            return await super().__call__(request)
        except HTTPException:
            raise HTTPException(
                401, f"unreadable HTTP Basic credentials: {_SEND_EITHER}; {_GET_ONE}",
                headers=_CHALLENGE,
            ) from None


# auto_error=False: a missing token gets our own message (how to get one), not FastAPI's.
_bearer = HTTPBearer(
    auto_error=False, description="An API token: lev login URL, or POST /api/tokens"
)
_basic = _TokenAsPassword(
    auto_error=False, realm=_REALM, scheme_name="HTTPBasic",
    description="For reading only: an API token as the password, under any user name "
    "(__token__ by convention), as pip sends it for http://__token__:<token>@host/simple/",
)
_BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def verify_login(request: Request, store: Store, name: str,
                 password: str) -> dict[str, Any] | None:
    """The user whose password this is, or None; :class:`~levrt.server.throttle.
    LoginThrottled` when the name or the client's address has failed too often lately."""
    throttle: LoginThrottle = request.app.state.throttle
    address = request.client.host if request.client else "unknown"
    throttle.check(name, address)
    user = store.verify_password(name, password)
    if user is None:
        throttle.failed(name, address)
    else:
        throttle.succeeded(name, address)
    return user


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


async def _resolve(
    store: Store, token: str | None, send: str, challenge: dict[str, str]
) -> dict[str, Any]:
    """The user of ``token``; 401 when it is missing (``send`` says what to send), unknown or
    revoked."""
    if token is None:
        raise HTTPException(401, f"missing API token: {send}; {_GET_ONE}", headers=challenge)
    if token.startswith(JOB_TOKEN_PREFIX):
        raise HTTPException(401, "a job token opens only its own job's /api/driver/ routes, "
                            "not this one", headers=challenge)
    try:
        user = await run_in_threadpool(store.resolve_token, token)
    except TokenRevokedError as exc:
        raise HTTPException(401, str(exc), headers=challenge) from None
    if user is None:
        raise HTTPException(401, "invalid API token: log in again with lev login URL, or make "
                            "a new token on the web page /settings", headers=challenge)
    return user


async def current_user(store: StoreDep, bearer: _BearerDep) -> dict[str, Any]:
    """The user of the request's Bearer token, with ``token_id`` and ``token_name``; 401 when
    the token is missing, unknown or revoked. Not Basic auth: a browser sends what was typed
    in its login box with other sites' requests too, as it does cookies."""
    token = None if bearer is None else bearer.credentials
    return await _resolve(store, token, _SEND_BEARER, _CHALLENGE)


CurrentUser = Annotated[dict[str, Any], Depends(current_user)]


async def current_reader(
    request: Request,
    store: StoreDep,
    bearer: _BearerDep,
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> dict[str, Any]:
    """As :func:`current_user`, but the token may come by Basic auth too and, without one,
    the web pages' session cookie will do. Only for GET routes: a cookie (and Basic auth a
    browser keeps) comes with cross-site requests too, so a route that changes anything needs
    a Bearer token (or, on a page, a CSRF-checked form)."""
    if bearer is not None:
        token: str | None = bearer.credentials
    elif basic is not None:
        token = basic.password
    else:
        user = await session_user(request)
        if user is not None:
            return user
        token = None
    return await _resolve(store, token, _SEND_EITHER, _CHALLENGE)


CurrentReader = Annotated[dict[str, Any], Depends(current_reader)]
"""A user by API token (Bearer or Basic) or by the web pages' session cookie (GET only)."""


# -- job tokens ------------------------------------------------------------------------------
#
# A job's driver (the `lev run --job` process, running package code) holds one of these, not a
# user's token: it names its job, signed with the web secret, and opens only the /api/driver/
# routes of that job while the job is queued or running. Its end revokes every token of it at
# once, with no table to keep: the check reads the job's status.

JOB_TOKEN_PREFIX = "levjob."
_JOB_SALT = "lev-job-token"


def server_secret(state: Any) -> bytes:
    """The server's signing secret (``$LEV_HOME/web-secret``), read once per app ``state``."""
    secret: bytes | None = getattr(state, "session_secret", None)
    if secret is None:
        secret = state.session_secret = load_secret()
    return secret


def make_job_token(secret: bytes, job_id: str) -> str:
    """A token that opens the driver routes of job ``job_id`` until the job ends."""
    body = URLSafeSerializer(secret, salt=_JOB_SALT).dumps({"job": job_id})
    return JOB_TOKEN_PREFIX + body


def job_of_token(secret: bytes, token: str) -> str | None:
    """The job id a job token names, or None when it is no job token of this server."""
    if not token.startswith(JOB_TOKEN_PREFIX):
        return None
    try:
        data = URLSafeSerializer(secret, salt=_JOB_SALT).loads(token[len(JOB_TOKEN_PREFIX):])
    except BadData:
        return None
    job = data.get("job") if isinstance(data, dict) else None
    return job if isinstance(job, str) else None


async def job_driver(request: Request, store: StoreDep, bearer: _BearerDep,
                     job_id: Annotated[str, Path(description="the job's id")]) -> str:
    """The id of the job the route touches, when the request's Bearer token is that job's
    token and the job has not ended: 401 for a missing, unknown or dead token, 403 for
    another job's."""
    if bearer is None:
        raise HTTPException(401, f"missing job token: {_SEND_BEARER} with the job token the "
                            "runner gave the driver (LEV_JOB_TOKEN)", headers=_CHALLENGE)
    token_job = job_of_token(server_secret(request.app.state), bearer.credentials)
    if token_job is None:
        raise HTTPException(401, "not a job token of this server: the driver routes take only "
                            "the token the runner made for the job", headers=_CHALLENGE)
    if token_job != job_id:
        raise HTTPException(403, f"job_id: this job token is for job {token_job}, not "
                            f"{job_id}: a job token reaches its own job only")
    job = await run_in_threadpool(store.get_job, job_id)
    if job is None or job["status"] not in UNFINISHED_STATUSES:
        state = "is gone" if job is None else f"has ended ({job['status']})"
        raise HTTPException(401, f"job {job_id} {state}: its job token died with it",
                            headers=_CHALLENGE)
    return job_id


JobDriver = Annotated[str, Depends(job_driver)]
"""The job id of a driver route, its token checked (:func:`job_driver`)."""
