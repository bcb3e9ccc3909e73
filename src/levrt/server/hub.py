"""The hub's JSON API under ``/api/``: login and tokens, upload, packages, versions, files.

Routes stay thin: the store does the work, :mod:`levrt.server.upload` checks uploads. Only
login is public: reading (:data:`reader`) takes a token or the web session cookie, the other
routes a Bearer token (see :mod:`levrt.server.auth`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from levrt.server.auth import CurrentUser, StoreDep, current_reader, verify_login
from levrt.server.paging import Page
from levrt.server.schemas import (
    FileEntry,
    LoginOut,
    LoginRequest,
    MeOut,
    PackageOut,
    PackageSummary,
    TokenCreated,
    TokenOut,
    TokenRequest,
    UploadOut,
    VersionDetail,
    errors,
)
from levrt.server.settings import Settings
from levrt.server.throttle import LoginThrottled
from levrt.server.upload import check_upload, read_upload

router = APIRouter(prefix="/api", responses=errors(401))
# The routes that only read: pip calls them too (Basic auth), and the web pages' links.
reader = APIRouter(prefix="/api", dependencies=[Depends(current_reader)],
                   responses=errors(401))

# Versions never change once published, so their files may be cached for good; but only by
# the client: a shared cache would hand them to anyone, without their credentials.
_IMMUTABLE = "private, max-age=31536000, immutable"
# Package files are the uploader's bytes: never let a browser render them as a page.
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def base_url(request: Request) -> str:
    """The URL clients reach the server at, without a trailing slash."""
    return (_settings(request).public_url or str(request.base_url)).rstrip("/")


def _version_out(request: Request, version: dict[str, Any]) -> dict[str, Any]:
    url = f"{base_url(request)}/api/files/{quote(version['filename'])}"
    return {**version, "download_url": url}


def _version_or_404(store: StoreDep, name: str, version: str) -> dict[str, Any]:
    if version == "latest":
        package = store.get_package(name)
        if package is not None:
            version = package["latest"]
    found = store.get_version(name, version)
    if found is None:
        if store.get_package(name) is None:
            raise HTTPException(404, f"no package {name!r} on this hub")
        raise HTTPException(404, f"{name} has no version {version!r}")
    return found


# -- users and tokens ----------------------------------------------------------------------


@router.post("/login", response_model=LoginOut, tags=["auth"],
             responses=errors(400, 422, 429))
def login(body: LoginRequest, request: Request, store: StoreDep) -> dict[str, Any]:
    """Trade a user name and password for a new API token (what ``lev login`` does)."""
    try:
        user = verify_login(request, store, body.user, body.password)
    except LoginThrottled as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) \
            from None
    if user is None:
        raise HTTPException(401, "wrong user name or password")
    token = store.create_token(user["name"], body.token_name)
    return {
        "user": user["name"],
        "token": token["token"],
        "token_id": token["id"],
        "token_name": token["name"],
    }


@router.get("/me", response_model=MeOut, tags=["auth"])
def me(user: CurrentUser, store: StoreDep) -> dict[str, Any]:
    """The token's user and the namespaces they may publish in."""
    return {**user, "namespaces": store.list_namespaces(user["name"])}


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["auth"],
             responses=errors(400, 422))
def create_token(body: TokenRequest, user: CurrentUser, store: StoreDep) -> dict[str, Any]:
    """A new API token for the caller; its secret is in this response only."""
    return store.create_token(user["name"], body.name)


@router.get("/tokens", response_model=list[TokenOut], tags=["auth"])
def list_tokens(user: CurrentUser, store: StoreDep) -> list[dict[str, Any]]:
    """The caller's tokens, without their secrets."""
    return store.list_tokens(user["name"])


@router.delete("/tokens/{token_id}", status_code=204, tags=["auth"],
               responses=errors(404, 422))
def revoke_token(token_id: int, user: CurrentUser, store: StoreDep) -> Response:
    """Revoke one of the caller's tokens (the one in use too)."""
    if not store.revoke_token(user["name"], token_id):
        raise HTTPException(404, f"you have no token {token_id}")
    return Response(status_code=204)


# -- upload --------------------------------------------------------------------------------

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["wheel", "manifest"],
                    "properties": {
                        "wheel": {"type": "string", "format": "binary"},
                        "manifest": {"type": "string", "description": "the manifest as JSON"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/packages/upload",
    response_model=UploadOut,
    status_code=201,
    tags=["packages"],
    openapi_extra=_UPLOAD_BODY,
    responses=errors(400, 403, 409, 413, 415),
)
async def upload(request: Request, user: CurrentUser, store: StoreDep) -> dict[str, Any]:
    """Publish a version: a wheel and its manifest, checked before anything is stored."""
    settings = _settings(request)
    wheel, manifest = await read_upload(request, settings.max_upload_bytes)
    try:
        checked = await run_in_threadpool(
            check_upload,
            wheel.file,
            wheel.filename or "",
            manifest,
            max_unpacked=settings.max_unpacked_bytes,
            max_manifest=settings.max_manifest_bytes,
        )
    finally:
        await wheel.close()
    version = await run_in_threadpool(
        store.publish_version,
        package=checked.package,
        version=checked.version,
        uploader=user["name"],
        manifest=checked.manifest,
        filename=checked.filename,
        wheel=checked.wheel,
        files=checked.files,
        summary=checked.summary,
        requires_python=checked.requires_python,
    )
    url = f"{base_url(request)}/api/packages/{checked.package}/{quote(checked.version)}"
    return {**_version_out(request, version), "url": url}


# -- reading -------------------------------------------------------------------------------


@reader.get("/packages", response_model=list[PackageSummary], tags=["packages"],
            responses=errors(422))
def list_packages(
    request: Request,
    response: Response,
    store: StoreDep,
    q: Annotated[str | None, Query(description="words to find in names and descriptions")] = None,
    kind: Annotated[Literal["tool", "workflow"] | None, Query()] = None,
    owner: Annotated[str | None, Query(description="only this user's packages")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="from 1")] = 1,
    limit: Annotated[int, Query(ge=1, le=1000, description="packages per page")] = 100,
) -> list[dict[str, Any]]:
    """A page of packages by name with their latest version's exports; ``q`` searches
    package names, summaries and the names and descriptions of exports and modes. The
    ``X-Total-Count`` header says how many match over all pages, and ``Link`` gives the
    ``next`` and ``prev`` pages."""
    found = store.list_packages(q, kind=kind, owner=owner)
    shown = Page(page, limit, len(found))
    shown.set_headers(request, response)
    return found[shown.offset:shown.offset + limit]


@reader.get("/packages/{name}", response_model=PackageOut, tags=["packages"],
            responses=errors(404))
def get_package(name: str, request: Request, store: StoreDep) -> dict[str, Any]:
    """A package (any PEP 503 spelling of its name) and its versions, newest first."""
    package = store.get_package(name)
    if package is None:
        raise HTTPException(404, f"no package {name!r} on this hub")
    return {**package, "versions": [_version_out(request, v) for v in package["versions"]]}


@reader.get("/packages/{name}/{version}", response_model=VersionDetail, tags=["packages"],
            responses=errors(404))
def get_version(name: str, version: str, request: Request, store: StoreDep) -> dict[str, Any]:
    """A version and its manifest (``latest`` for the newest release)."""
    return _version_out(request, _version_or_404(store, name, version))


@reader.get("/packages/{name}/{version}/files", response_model=list[FileEntry],
            tags=["packages"], responses=errors(404))
def list_files(name: str, version: str, store: StoreDep) -> list[dict[str, Any]]:
    """The files of a version's wheel, for the source browser."""
    found = _version_or_404(store, name, version)
    files = store.list_version_files(name, found["version"]) or []
    return [{**f, "sha256": f["digest"].removeprefix("sha256:")} for f in files]


@reader.get("/packages/{name}/{version}/files/{path:path}", tags=["packages"],
            responses=errors(404))
def read_file(name: str, version: str, path: str, store: StoreDep) -> Response:
    """One file of a version's wheel: UTF-8 text as text/plain, anything else as bytes."""
    found = _version_or_404(store, name, version)
    content = store.version_file(name, found["version"], path)
    if content is None:
        raise HTTPException(404, f"{found['package']} {found['version']} has no file {path!r}")
    headers = {**_NOSNIFF, "Cache-Control": _IMMUTABLE}
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return Response(content, media_type="application/octet-stream", headers=headers)
    return Response(content, media_type="text/plain; charset=utf-8", headers=headers)


@reader.get("/files/{filename}", tags=["packages"], responses=errors(404))
def download(filename: str, store: StoreDep) -> Response:
    """A published wheel, as pip downloads it through ``/simple/``."""
    wheel = store.get_wheel(filename)
    if wheel is None:
        raise HTTPException(404, f"no file {filename!r} on this hub")
    return Response(
        wheel["content"],
        media_type="application/octet-stream",
        headers={
            **_NOSNIFF,
            "Cache-Control": _IMMUTABLE,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "ETag": f'"{wheel["sha256"]}"',
        },
    )

