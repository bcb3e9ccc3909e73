"""What an upload must pass before anything of it is stored.

The checks read the wheel as a zip archive and the manifest as JSON: package code is never
imported or run on the server (docs/hub.md). A refusal is an :class:`UploadRefused` carrying the
HTTP status and a message naming the problem; only an upload that passes every check reaches
:meth:`levrt.store.Store.publish_version`, which stores it in one transaction.
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import PurePath
from typing import IO, Any

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from levrt.server.checks import MAX_DEPTH, json_problem
from levrt.store import Store, split_package_name

# A wheel of a tool package holds a handful of files; this bounds the rows one upload writes.
MAX_MEMBERS = 5000
# The length of the store's versions.version column.
MAX_VERSION = 64
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


class UploadRefused(Exception):
    """The upload is refused with HTTP ``status``; the message says what is wrong."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed every check, ready for ``Store.publish_version``."""

    package: str
    version: str
    filename: str
    wheel: bytes
    manifest: dict[str, Any]
    summary: str | None
    requires_python: str | None
    files: list[tuple[str, bytes]]


# -- reading the request -------------------------------------------------------------------


def _too_large(limit: int) -> UploadRefused:
    return UploadRefused(
        f"upload too large: the server takes at most {limit} bytes per upload "
        "(setting LEV_SERVER_MAX_UPLOAD_BYTES)",
        413,
    )


def _limited(receive: Callable[[], Awaitable[Any]], limit: int) -> Callable[[], Awaitable[Any]]:
    """``receive`` that refuses the request as soon as more than ``limit`` body bytes came."""
    received = 0

    async def limited_receive() -> Any:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit)
        return message

    return limited_receive


async def limited_form(request: Request, limit: int, **limits: int) -> FormData:
    """The request's form, its body at most ``limit`` bytes: a declared length over it is
    refused before the body is read, otherwise the body is counted as it streams in and
    refused (413) the moment it passes ``limit``. ``limits`` go to Starlette's parser
    (``max_files``, ``max_fields``, ``max_part_size``). The body is consumed: use the form
    returned, not ``request.form()``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    limited = Request(request.scope, _limited(request.receive, limit))
    return await limited.form(**limits)


async def keep_file(store: Store, upload: Any, user: str) -> dict[str, Any] | None:
    """The form part ``upload`` kept in the store's files as ``user``'s (for a ``levrt.File``
    parameter): its ``digest``, ``name`` (the file name without folders) and ``size``; None
    when the part is no file, or an empty file field."""
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    content = await upload.read()
    name = PurePath(upload.filename).name
    digest = await run_in_threadpool(store.keep_user_file, content, name=name, user=user)
    return {"digest": digest, "name": name, "size": len(content)}


class OwnFiles:
    """``store`` as the parameter converter sees it for ``user``: of the stored files, only
    those the user uploaded exist (another user's digest is refused as unknown). The rest of
    the store is the store's."""

    def __init__(self, store: Store, user: str) -> None:
        self._store = store
        self._user = user

    def has_file(self, digest: str) -> bool:
        return self._store.owns_file(self._user, digest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def read_upload(request: Request, limit: int) -> tuple[UploadFile, bytes]:
    """The ``wheel`` file part and the ``manifest`` part (file or text) of a multipart upload.

    A declared length over ``limit`` is refused before the body is read; otherwise the body is
    counted as it streams in and refused the moment it passes ``limit``. File parts spool to
    disk past 1 MiB, so an upload never sits in memory whole while it is parsed.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UploadRefused(
            "send the upload as multipart/form-data with a 'wheel' file and a 'manifest' "
            f"(JSON), not {content_type or 'no content type'!r}",
            415,
        )
    form = await limited_form(request, limit, max_files=2, max_fields=2, max_part_size=limit)
    wheel = form.get("wheel")
    if not isinstance(wheel, UploadFile):
        await form.close()
        raise UploadRefused("the upload has no 'wheel' file part")
    manifest = form.get("manifest")
    if manifest is None:
        await form.close()
        raise UploadRefused("the upload has no 'manifest' part (the package's manifest as JSON)")
    if isinstance(manifest, UploadFile):
        manifest_bytes = await manifest.read()
        await manifest.close()
    else:
        manifest_bytes = manifest.encode()
    return wheel, manifest_bytes


# -- checking the upload -------------------------------------------------------------------


def _load_manifest(data: bytes, limit: int) -> dict[str, Any]:
    # Every market page reads the manifests: their size is bounded like the upload's.
    if len(data) > limit:
        raise UploadRefused(
            f"the manifest is {len(data)} bytes; the server takes at most {limit} "
            "(setting LEV_SERVER_MAX_MANIFEST_BYTES)", 413)
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UploadRefused(f"the manifest is not valid JSON: {exc}") from None
    except RecursionError:
        raise UploadRefused(f"the manifest is refused: nested deeper than {MAX_DEPTH} "
                            "levels") from None
    problem = json_problem(manifest)
    if problem is not None:
        raise UploadRefused(f"the manifest is refused: {problem}")
    if not isinstance(manifest, dict):
        raise UploadRefused("the manifest must be a JSON object")
    for key in ("package", "version"):
        if not isinstance(manifest.get(key), str):
            raise UploadRefused(f"the manifest has no {key!r} string")
    if len(manifest["version"]) > MAX_VERSION:
        raise UploadRefused(f"the version is longer than {MAX_VERSION} characters")
    exports = manifest.get("exports")
    if not isinstance(exports, list):
        raise UploadRefused("the manifest has no 'exports' list")
    for position, entry in enumerate(exports):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("kind"), str)
            and isinstance(entry.get("name"), str)
        ):
            raise UploadRefused(
                f"manifest export {position} must be an object with 'kind' and 'name' strings"
            )
    return manifest


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = name.rstrip("/").split("/")
    if not name or "\x00" in name:
        return "an empty or NUL-containing name"
    if name.startswith("/") or "\\" in name or _DRIVE_RE.match(name):
        return "an absolute path (or a backslash)"
    if ".." in parts:
        return "a '..' component"
    if "" in parts or "." in parts:
        return "an empty or '.' component"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "a special file (device, FIFO or socket)"
    if info.flag_bits & 0x1:
        return "encryption"
    return None


def _check_members(archive: zipfile.ZipFile, max_unpacked: int) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UploadRefused(f"the wheel has {len(infos)} members; at most {MAX_MEMBERS} are taken")
    seen: set[str] = set()
    unpacked = 0
    for info in infos:
        problem = _member_problem(info)
        if problem is not None:
            raise UploadRefused(f"wheel member {info.filename!r} is refused: it has {problem}")
        # Two members of one name: what is checked here need not be what pip installs.
        if info.filename in seen:
            raise UploadRefused(f"wheel member {info.filename!r} appears twice")
        seen.add(info.filename)
        unpacked += info.file_size
    if unpacked > max_unpacked:
        raise UploadRefused(
            f"the wheel unpacks to {unpacked} bytes; the server takes at most {max_unpacked} "
            "(setting LEV_SERVER_MAX_UNPACKED_BYTES)",
            413,
        )
    return infos


def _read_metadata(archive: zipfile.ZipFile, names: set[str]) -> tuple[str, dict[str, str]]:
    dist_infos = sorted({
        name.split("/", 1)[0] for name in names if name.split("/", 1)[0].endswith(".dist-info")
    })
    if len(dist_infos) != 1:
        found = ", ".join(dist_infos) or "none"
        raise UploadRefused(f"the wheel must hold exactly one *.dist-info folder; found {found}")
    path = f"{dist_infos[0]}/METADATA"
    if path not in names:
        raise UploadRefused(f"the wheel has no {path}")
    try:
        text = _read_member(archive, archive.getinfo(path)).decode("utf-8")
    except UnicodeDecodeError:
        raise UploadRefused(f"{path} is not UTF-8 text") from None
    headers = HeaderParser().parsestr(text)
    fields = {key: headers.get(key) for key in ("Name", "Version", "Summary", "Requires-Python")}
    for key in ("Name", "Version"):
        if not fields[key]:
            raise UploadRefused(f"{path} has no {key} field")
    return dist_infos[0], {key: value.strip() for key, value in fields.items() if value}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes; :class:`UploadRefused` when they cannot be unpacked (a corrupted or
    truncated member, an unknown compression)."""
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error) as exc:
        raise UploadRefused(f"wheel member {info.filename!r} cannot be unpacked: {exc}") \
            from None


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def _check_exports(manifest: dict[str, Any], package: str, names: set[str]) -> None:
    """Every export (and mode) of this package names a module the archive holds: a manifest
    made from other sources than the wheel fails here."""

    def module_file_exists(module: str) -> bool:
        base = module.replace(".", "/")
        return f"{base}.py" in names or f"{base}/__init__.py" in names

    entries = list(manifest["exports"])
    while entries:
        entry = entries.pop()
        entries.extend(m for m in entry.get("modes") or [] if isinstance(m, dict))
        qualname = entry.get("qualname")
        if not isinstance(qualname, str):
            continue
        module = qualname.partition(":")[0]
        # An export imported from another package (a dependency) is not in this wheel.
        if module != package and not module.startswith(package + "."):
            continue
        if not module_file_exists(module):
            raise UploadRefused(
                f"the manifest's export {qualname!r} names module {module}, which the wheel "
                "does not hold; build the wheel and the manifest from the same sources"
            )


def check_upload(
    wheel: IO[bytes], filename: str, manifest_data: bytes, *, max_unpacked: int,
    max_manifest: int,
) -> CheckedUpload:
    """Check a wheel and its manifest (see the module doc); :class:`UploadRefused` if not.
    ``max_unpacked`` bounds the wheel's members once unpacked, ``max_manifest`` the manifest,
    in bytes (413 past either)."""
    manifest = _load_manifest(manifest_data, max_manifest)
    package, version = manifest["package"], manifest["version"]
    try:
        user, tool = split_package_name(package)
    except ValueError as exc:
        raise UploadRefused(f"the manifest's package: {exc}") from None
    if "/" in filename or "\\" in filename:
        raise UploadRefused(f"the wheel's file name {filename!r} must not contain a path")
    try:
        file_name, file_version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise UploadRefused(f"{filename!r} is not a wheel file name: {exc}") from None
    if file_name != canonicalize_name(package) or not _same_version(str(file_version), version):
        raise UploadRefused(
            f"the manifest is for {package} {version} but the wheel file is {filename}"
        )
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadRefused(f"{filename} is not a valid zip archive: {exc}") from None
    with archive:
        infos = _check_members(archive, max_unpacked)
        names = {info.filename for info in infos}
        dist_info, metadata = _read_metadata(archive, names)
        if canonicalize_name(metadata["Name"]) != canonicalize_name(package) or not _same_version(
            metadata["Version"], version
        ):
            raise UploadRefused(
                f"the manifest is for {package} {version} but the wheel's "
                f"{dist_info}/METADATA says {metadata['Name']} {metadata['Version']}"
            )
        init = f"lev/{user}/{tool}/__init__.py"
        if init not in names:
            raise UploadRefused(f"the wheel does not hold {init}, the package {package} itself")
        _check_exports(manifest, package, names)
        files = [(info.filename, _read_member(archive, info))
                 for info in infos if not info.is_dir()]
    wheel.seek(0)
    return CheckedUpload(
        package=package,
        version=version,
        filename=filename,
        wheel=wheel.read(),
        manifest=manifest,
        summary=metadata.get("Summary"),
        requires_python=metadata.get("Requires-Python"),
        files=files,
    )
