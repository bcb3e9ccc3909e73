"""Request and response bodies of the JSON API (they make its OpenAPI description)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from levrt._text import clean_data
from levrt.server.checks import check_json

_ERRORS = {
    400: "the body cannot be read, or an upload fails a check (detail says which)",
    401: "missing, unknown or revoked API token (or wrong user name or password)",
    403: "the caller may not do this (a namespace that is not theirs)",
    404: "no such object, or one the caller may not see",
    409: "it exists already, or its state does not allow this",
    413: "the request, or a value in it, is larger than the server takes",
    415: "the body is not of the media type the route takes",
    422: "a field is missing or does not fit (detail names it)",
    429: "too many requests of this kind for now: see Retry-After, or close some",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of these error status codes, for a route or a router: each
    answers ``{"detail": message}`` (422: FastAPI's list of fields)."""
    return {code: {"description": _ERRORS[code]} for code in codes}


class Body(BaseModel):
    """A request body: each field's lists and objects nested at most
    :data:`~levrt.server.checks.MAX_DEPTH` levels and its text Unicode (422 naming the
    field), but in the fields of ``free_form``, whose text that is not Unicode becomes
    U+FFFD, the store's rule for free-form values (``levrt._text``)."""

    free_form: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*")
    @classmethod
    def _bounded(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name in cls.free_form:
            return clean_data(check_json(value, text=False))
        return check_json(value)


class LoginRequest(Body):
    user: str
    password: str
    token_name: str = Field("lev login", min_length=1, max_length=200)


class LoginOut(BaseModel):
    user: str
    token: str = Field(description="the API token; shown only this once")
    token_id: int
    token_name: str


class TokenRequest(Body):
    name: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked: bool


class TokenCreated(TokenOut):
    token: str = Field(description="the API token; shown only this once")


class MeOut(BaseModel):
    name: str
    is_admin: bool
    created_at: datetime
    namespaces: list[str] = Field(
        description="the <user> of each lev.<user>.* this user may publish"
    )
    token_id: int
    token_name: str


class ExportSummary(BaseModel):
    kind: str | None
    name: str | None
    qualname: str | None
    desc: str | None


class PackageSummary(BaseModel):
    name: str
    normalized: str = Field(description="the PEP 503 name, as in /simple/<normalized>/")
    namespace: str
    owner: str
    created_at: datetime
    latest: str
    summary: str | None
    updated_at: datetime
    exports: list[ExportSummary]


class VersionOut(BaseModel):
    package: str
    version: str
    filename: str
    size: int
    sha256: str
    summary: str | None
    requires_python: str | None
    uploaded_by: str
    created_at: datetime
    download_url: str


class PackageOut(BaseModel):
    name: str
    normalized: str
    namespace: str
    owner: str
    created_at: datetime
    latest: str
    summary: str | None
    versions: list[VersionOut]


class VersionDetail(VersionOut):
    manifest: dict[str, Any] = Field(
        description="what lev check printed on the author's machine: exports with their "
        "docstrings, examples, parameters, modes, categories"
    )


class UploadOut(VersionOut):
    url: str = Field(description="this version in the API")


class FileEntry(BaseModel):
    path: str
    size: int
    sha256: str
