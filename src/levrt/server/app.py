"""The platform server: ``create_app(settings)`` builds the FastAPI application.

Routers: :mod:`~levrt.server.hub` (the JSON API under ``/api/``),
:mod:`~levrt.server.simple` (the PEP 503 index) and :mod:`~levrt.server.tasks` (tasks run by
the app's :class:`~levrt.server.runner.TaskRunner`, ``app.state.runner``) and
:mod:`~levrt.server.web` (the web pages, with their files under ``/static``).
The app holds one :class:`~levrt.store.Store` (``app.state.store``), the runtime's by default.

Every route but the logins (``/login``, ``/api/login``), ``/health`` and ``/static`` needs an
API token or a session (see :mod:`~levrt.server.auth`): the API documentation too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from levrt import __version__
from levrt._config import extra_hint
from levrt.server import devices, driver, hub, notify, rows, schedules, simple, tasks, web
from levrt.server.auth import StoreDep, current_reader, server_secret
from levrt.server.bodylimit import BodyLimit
from levrt.server.dispatch import Dispatcher, deployment_key
from levrt.server.runner import TaskRunner
from levrt.server.sessions import CsrfRefused
from levrt.server.settings import Settings
from levrt.server.throttle import LoginThrottle
from levrt.server.upload import UploadRefused
from levrt.store import HubConflictError, HubPermissionError, Store, StoreWriteError


def _error(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler answering ``status`` with the exception's message as ``detail``."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler


class _AsciiJSON(JSONResponse):
    """JSON with every non-ASCII character escaped: a refusal may quote text that is not
    Unicode (a lone surrogate), which UTF-8 cannot encode but JSON can escape."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


async def _invalid_request(request: Request, exc: Exception) -> Response:
    # FastAPI's own answer, in a body that holds whatever text the request held.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return _AsciiJSON({"detail": jsonable_encoder(errors)}, status_code=422)


def _clock(app: FastAPI, scheduler: schedules.Scheduler) -> Any:
    """What fires the schedules: the store polled, or with Temporal (``settings.temporal``)
    Temporal Schedules."""
    if app.state.settings.temporal is None:
        return scheduler
    try:
        from levrt.server.temporal_schedules import TemporalScheduler
    except ImportError:
        raise RuntimeError(f"a server given Temporal needs temporalio: {extra_hint('agent')}") \
            from None
    return TemporalScheduler(scheduler)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    # The database went away (PostgreSQL restarting) or stayed locked: the transaction
    # rolled back, so the request may be sent again as it is (levrt.client does).
    reason = getattr(exc, "orig", None) or exc
    return JSONResponse({"detail": f"the store is unavailable for a moment ({reason}): try "
                         "again"}, status_code=503, headers={"Retry-After": "2"})


async def _refused(request: Request, exc: Exception) -> Response:
    # An upload of the API gets JSON; a web page's form too large for the server, a page.
    if not request.url.path.startswith("/api/"):
        return await web.refused_page(request, exc)
    status = exc.status if isinstance(exc, UploadRefused) else 400
    return JSONResponse({"detail": str(exc)}, status_code=status)


def _add_docs(app: FastAPI) -> None:
    """``/openapi.json`` and its ``/docs`` and ``/redoc`` pages, as FastAPI makes them, but for
    readers only (FastAPI's own are public). A browser logged in to the web pages sends its
    cookie with the pages' fetch of the schema."""
    schema_url = "/openapi.json"
    readers = APIRouter(include_in_schema=False, dependencies=[Depends(current_reader)])

    @readers.get(schema_url)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @readers.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=schema_url, title=f"{app.title} - Swagger UI")

    @readers.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=schema_url, title=f"{app.title} - ReDoc")

    app.include_router(readers)


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """The server's app. It opens the store at ``settings.db_url`` (and closes it on
    shutdown) unless given an open ``store``, which stays the caller's to close."""
    settings = settings or Settings()
    owned = store is None
    app_store = Store(settings.db_url) if store is None else store
    runner = TaskRunner(app_store, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runner.start()  # tasks queued when the server last stopped
        app.state.scheduler.start()
        app.state.notifier.start()
        yield
        await app.state.scheduler.stop()
        await app.state.notifier.stop()
        # Tasks are subprocesses of the server: none may outlive it, nor its store.
        await runner.stop()
        if owned:
            app_store.close()

    app = FastAPI(
        title="levrt platform",
        version=__version__,
        description="The hub of levrt packages: users and tokens, uploads, packages and "
        "their versions, and a PEP 503 index at /simple/. Every route but /api/login and "
        "/health needs an API token as a Bearer token; the reading ones also take it as the "
        "password of HTTP Basic auth (what pip sends for http://__token__:TOKEN@host/simple/), "
        "or the web pages' session cookie.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.store = app_store
    app.state.runner = runner
    app.state.dispatcher = Dispatcher(settings.temporal, runner,
                                      key=deployment_key(server_secret(app.state)),
                                      max_params_bytes=settings.max_params_bytes)
    app.state.driver_logs = runner.driver_logs
    app.state.event_streams = tasks.EventStreams(settings.max_event_streams)
    app.state.throttle = LoginThrottle(settings.login_max_failures, settings.login_window)
    app.add_middleware(BodyLimit, max_bytes=settings.max_json_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(UploadRefused, _refused)
    app.add_exception_handler(HubPermissionError, _error(403))
    app.add_exception_handler(HubConflictError, _error(409))
    app.add_exception_handler(CsrfRefused, web.refused_page)
    for unavailable in (OperationalError, InterfaceError, StoreWriteError):
        app.add_exception_handler(unavailable, _store_unavailable)
    app.include_router(hub.router)
    app.include_router(hub.reader)
    app.include_router(simple.router)
    app.include_router(tasks.router)
    app.include_router(devices.router)
    app.include_router(devices.agent_router)
    app.include_router(driver.router)
    app.include_router(devices.pages)
    app.state.scheduler = _clock(app, schedules.register(app, app.state.dispatcher,
                                                         app_store))
    app.state.notifier = notify.Notifier(app_store, public_url=settings.public_url)
    app.include_router(rows.router)
    app.include_router(rows.pages)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    _add_docs(app)

    @app.get("/health", tags=["server"])
    async def health(store: StoreDep) -> dict[str, Any]:
        """The server answers and its store can be read."""
        await run_in_threadpool(store.count_users)
        return {"status": "ok", "version": __version__}

    return app
