"""The hub's half of the store: users, API tokens, namespaces, packages and their versions.

Mixed into :class:`levrt.store.Store`: every method is one short transaction. Nothing here
reads package code: a version is a wheel's bytes, its members (for the source browser) and the
manifest the author's machine produced.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import keyword
import re
import secrets
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from levrt.store._base import HubConflictError, HubPermissionError, TokenRevokedError
from levrt.store._common import insert_file, now, user_id_of, utc
from levrt.store.models import (
    File,
    FileOwner,
    Namespace,
    Package,
    PackageVersion,
    Token,
    User,
    VersionFile,
)

# User and namespace names are the <user> of the import path lev.<user>.<tool>: lower case
# only, so that two of them never fold into one PEP 503 project name.
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
PACKAGE_RE = re.compile(r"lev\.([a-z][a-z0-9_]{0,63})\.([a-z][a-z0-9_]*)")
MIN_PASSWORD = 8
TOKEN_PREFIX = "lev_"
# last_used_at is a hint for the token list, not an audit log: writing it on every request
# would take the store's write lock for each API call.
TOKEN_TOUCH = timedelta(seconds=60)

# scrypt at n=2**14, r=8 needs 16 MiB and about 50 ms: slow for guessing, fine for a login.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_LEN = 32

_users = User.__table__
_tokens = Token.__table__
_namespaces = Namespace.__table__
_packages = Package.__table__
_versions = PackageVersion.__table__
_version_files = VersionFile.__table__
_files = File.__table__
_file_owners = FileOwner.__table__


# -- names and secrets ---------------------------------------------------------------------


def check_name(name: str, what: str = "user name") -> str:
    """``name`` if it can be a user or namespace name, else ValueError saying what can."""
    if not NAME_RE.fullmatch(name) or keyword.iskeyword(name):
        raise ValueError(
            f"{what} {name!r} is not usable: it becomes the <user> of lev.<user>.<tool>, so it "
            "must be 1-64 lower-case letters, digits or underscores, start with a letter and "
            "not be a Python keyword"
        )
    return name


def split_package_name(name: str) -> tuple[str, str]:
    """``(user, tool)`` of ``lev.<user>.<tool>``; ValueError for any other name."""
    match = PACKAGE_RE.fullmatch(name)
    if not match or any(keyword.iskeyword(part) for part in match.groups()):
        raise ValueError(
            f"package name {name!r} is not lev.<user>.<tool> (each part lower-case letters, "
            "digits and underscores starting with a letter, and not a Python keyword)"
        )
    return match.group(1), match.group(2)


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``, with its parameters: ``scrypt$n$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${key.hex()}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem from the stored parameters (scrypt needs 128*r*n bytes): OpenSSL's default cap
    # of 32 MiB would refuse hashes made after n or r is raised.
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=_SCRYPT_LEN, maxmem=256 * r * n + 2**20
    )


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
        return hmac.compare_digest(computed, bytes.fromhex(key))
    except ValueError:
        return False


@functools.cache
def _decoy_hash() -> str:
    # Checked when the user does not exist, so that a login takes as long for an unknown name
    # as for a wrong password and does not tell which names exist. Made on first use: importing
    # the store must stay fast.
    return hash_password(secrets.token_urlsafe(16))


def _token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _latest(versions: Sequence[str]) -> str | None:
    """The highest final release, or the highest pre-release when there is none (as pip picks)."""
    parsed = [(v, text) for text in versions if (v := _parse_version(text)) is not None]
    finals = [(v, text) for v, text in parsed if not v.is_prerelease]
    chosen = finals or parsed
    return max(chosen)[1] if chosen else None


def _newest_first(rows: Sequence[Row[Any]]) -> list[Row[Any]]:
    return sorted(rows, key=lambda row: _parse_version(row.version) or Version("0"), reverse=True)


# -- row shapes ----------------------------------------------------------------------------


def _user_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "is_admin": bool(row.is_admin),
        "created_at": utc(row.created_at),
    }


def _token_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "created_at": utc(row.created_at),
        "last_used_at": utc(row.last_used_at),
        "revoked_at": utc(row.revoked_at),
        "revoked": row.revoked_at is not None,
    }


def _version_dict(row: Row[Any], package: str) -> dict[str, Any]:
    return {
        "package": package,
        "version": row.version,
        "filename": row.filename,
        "size": row.size,
        "digest": row.digest,
        "sha256": row.digest.removeprefix("sha256:"),
        "summary": row.summary,
        "requires_python": row.requires_python,
        "uploaded_by": row.uploader,
        "created_at": utc(row.created_at),
    }


def _export_summaries(manifest: Any) -> list[dict[str, Any]]:
    exports = manifest.get("exports") if isinstance(manifest, dict) else None
    return [
        {key: entry.get(key) for key in ("kind", "name", "qualname", "desc")}
        for entry in exports or []
        if isinstance(entry, dict)
    ]


def _search_text(name: str, summary: str | None, manifest: Any) -> str:
    parts = [name, summary or ""]
    exports = manifest.get("exports") if isinstance(manifest, dict) else None
    for entry in exports or []:
        if not isinstance(entry, dict):
            continue
        # Modes count too: "alive" should find the nmap tool that has an alive mode.
        for item in (entry, *[m for m in entry.get("modes") or [] if isinstance(m, dict)]):
            parts.extend(str(item.get(key) or "") for key in ("name", "qualname", "desc"))
    return "\n".join(parts).lower()


_VERSION_COLUMNS = (
    _versions.c.id,
    _versions.c.package_id,
    _versions.c.version,
    _versions.c.filename,
    _versions.c.size,
    _versions.c.digest,
    _versions.c.summary,
    _versions.c.requires_python,
    _versions.c.created_at,
    _users.c.name.label("uploader"),
)


class HubMixin:
    """Users, tokens, namespaces, packages and versions (see :class:`levrt.store.Store`)."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractContextManager[Connection]: ...

        def _write(self) -> AbstractContextManager[Connection]: ...

    # -- users -------------------------------------------------------------------------

    def create_user(self, name: str, password: str, *, is_admin: bool = False) -> dict[str, Any]:
        """Create a user who owns the namespace of the same name (``lev.<name>.*``)."""
        check_name(name)
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
        password_hash = hash_password(password)
        created = now()
        with self._write() as conn:
            if conn.execute(select(_users.c.id).where(_users.c.name == name)).first():
                raise HubConflictError(f"user {name!r} already exists")
            self._check_namespace_free(conn, name)
            user_id = conn.execute(
                insert(_users).values(
                    name=name, password_hash=password_hash, is_admin=is_admin, created_at=created
                )
            ).inserted_primary_key[0]
            conn.execute(
                insert(_namespaces).values(name=name, owner_id=user_id, created_at=created)
            )
        return {"id": user_id, "name": name, "is_admin": is_admin, "created_at": created}

    def get_user(self, name: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(_users).where(_users.c.name == name)).first()
        return None if row is None else _user_dict(row)

    def count_users(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(_users)).scalar_one())

    def verify_password(self, name: str, password: str) -> dict[str, Any] | None:
        """The user when ``password`` is theirs, else None (unknown name or wrong password)."""
        with self._read() as conn:
            row = conn.execute(select(_users).where(_users.c.name == name)).first()
        if row is None:
            password_matches(password, _decoy_hash())
            return None
        return _user_dict(row) if password_matches(password, row.password_hash) else None

    # -- uploaded files ----------------------------------------------------------------

    def keep_user_file(self, content: bytes, *, name: str | None, user: str) -> str:
        """Store ``content`` (once, whoever else uploads the same bytes) as a file ``user``
        owns, and return its digest (``sha256:<hex>``); KeyError for an unknown user."""
        with self._write() as conn:
            user_id = user_id_of(conn, user)
            digest = insert_file(conn, content, name)
            owned = conn.execute(select(_file_owners.c.digest).where(
                _file_owners.c.digest == digest, _file_owners.c.user_id == user_id)).first()
            if owned is None:
                conn.execute(insert(_file_owners).values(digest=digest, user_id=user_id,
                                                         created_at=now()))
        return digest

    def owns_file(self, user: str, digest: str) -> bool:
        """Whether ``user`` uploaded the file ``digest`` (:meth:`keep_user_file`)."""
        query = (select(_file_owners.c.digest)
                 .join(_users, _users.c.id == _file_owners.c.user_id)
                 .where(_users.c.name == user, _file_owners.c.digest == digest))
        with self._read() as conn:
            return conn.execute(query).first() is not None

    # -- tokens ------------------------------------------------------------------------

    def create_token(self, user: str, name: str) -> dict[str, Any]:
        """A new API token for ``user``. The result's ``"token"`` is the only copy of the
        secret: the store keeps its SHA-256."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = now()
        with self._write() as conn:
            user_id = user_id_of(conn, user)
            token_id = conn.execute(
                insert(_tokens).values(
                    user_id=user_id,
                    name=name,
                    token_sha256=_token_sha256(token),
                    created_at=created,
                    last_used_at=None,
                    revoked_at=None,
                )
            ).inserted_primary_key[0]
        return {
            "id": token_id,
            "name": name,
            "token": token,
            "created_at": created,
            "last_used_at": None,
            "revoked_at": None,
            "revoked": False,
        }

    def resolve_token(self, token: str) -> dict[str, Any] | None:
        """The user a live token belongs to, with ``token_id`` and ``token_name``; None for an
        unknown token; :class:`TokenRevokedError` for a revoked one."""
        query = (
            select(_tokens, _users.c.name.label("user_name"), _users.c.is_admin,
                   _users.c.created_at.label("user_created_at"))
            .join(_users, _users.c.id == _tokens.c.user_id)
            .where(_tokens.c.token_sha256 == _token_sha256(token))
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        if row.revoked_at is not None:
            raise TokenRevokedError(
                f"API token {row.name!r} was revoked; log in again (lev login URL) or create "
                "another token"
            )
        used = now()
        last = utc(row.last_used_at)
        if last is None or used - last >= TOKEN_TOUCH:
            with self._write() as conn:
                conn.execute(
                    update(_tokens).where(_tokens.c.id == row.id).values(last_used_at=used)
                )
        return {
            "id": row.user_id,
            "name": row.user_name,
            "is_admin": bool(row.is_admin),
            "created_at": utc(row.user_created_at),
            "token_id": row.id,
            "token_name": row.name,
        }

    def list_tokens(self, user: str) -> list[dict[str, Any]]:
        """The user's tokens (never their secrets), oldest first."""
        query = (
            select(_tokens)
            .join(_users, _users.c.id == _tokens.c.user_id)
            .where(_users.c.name == user)
            .order_by(_tokens.c.id)
        )
        with self._read() as conn:
            return [_token_dict(row) for row in conn.execute(query)]

    def revoke_token(self, user: str, token_id: int) -> bool:
        """Revoke one of ``user``'s tokens; False when the user has no token ``token_id``.
        Revoking a revoked token changes nothing."""
        with self._write() as conn:
            row = conn.execute(
                select(_tokens.c.id, _tokens.c.revoked_at)
                .join(_users, _users.c.id == _tokens.c.user_id)
                .where(_users.c.name == user, _tokens.c.id == token_id)
            ).first()
            if row is None:
                return False
            if row.revoked_at is None:
                conn.execute(
                    update(_tokens).where(_tokens.c.id == token_id).values(revoked_at=now())
                )
        return True

    # -- namespaces --------------------------------------------------------------------

    def _check_namespace_free(self, conn: Connection, name: str) -> None:
        owner = conn.execute(
            select(_users.c.name)
            .join(_namespaces, _namespaces.c.owner_id == _users.c.id)
            .where(_namespaces.c.name == name)
        ).scalar()
        if owner is not None:
            raise HubConflictError(f"the namespace lev.{name} belongs to {owner!r}: choose "
                                   "another name")

    def grant_namespace(self, name: str, owner: str) -> None:
        """Let ``owner`` publish ``lev.<name>.*`` too (a team's or a project's namespace).
        The name is then no one else's, nor a new user's."""
        check_name(name, "namespace name")
        with self._write() as conn:
            owner_id = conn.execute(select(_users.c.id).where(_users.c.name == owner)).scalar()
            if owner_id is None:
                raise LookupError(f"no user {owner!r}")
            self._check_namespace_free(conn, name)
            conn.execute(insert(_namespaces).values(name=name, owner_id=owner_id,
                                                    created_at=now()))

    def list_namespaces(self, owner: str) -> list[str]:
        """The namespaces ``owner`` may publish in."""
        query = (
            select(_namespaces.c.name)
            .join(_users, _users.c.id == _namespaces.c.owner_id)
            .where(_users.c.name == owner)
            .order_by(_namespaces.c.name)
        )
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    # -- packages and versions ---------------------------------------------------------

    def publish_version(
        self,
        *,
        package: str,
        version: str,
        uploader: str,
        manifest: dict[str, Any],
        filename: str,
        wheel: bytes,
        files: Sequence[tuple[str, bytes]],
        summary: str | None = None,
        requires_python: str | None = None,
    ) -> dict[str, Any]:
        """Store a new version of ``package`` (created on its first version): the wheel, its
        members ``files`` and the manifest, all in one transaction, so a refusal or a failure
        leaves nothing behind.

        :class:`HubPermissionError` when ``uploader`` does not own the namespace <user> of
        ``lev.<user>.<tool>``; :class:`HubConflictError` when the version exists (in the
        PEP 440 sense: 1.0 is 1.0.0) or another package's name folds to the same PEP 503 name.
        """
        namespace, _tool = split_package_name(package)
        parsed = _parse_version(version)
        if parsed is None:
            raise ValueError(f"version {version!r} of {package} is not a PEP 440 version")
        normalized = canonicalize_name(package)
        created = now()
        with self._write() as conn:
            uploader_id = user_id_of(conn, uploader)
            owner_id = conn.execute(
                select(_namespaces.c.owner_id).where(_namespaces.c.name == namespace)
            ).scalar()
            if owner_id != uploader_id:
                mine = conn.execute(
                    select(_namespaces.c.name).where(_namespaces.c.owner_id == uploader_id)
                ).scalars()
                allowed = ", ".join(f"lev.{name}.*" for name in mine) or "nothing"
                raise HubPermissionError(
                    f"{uploader!r} cannot publish {package}: the namespace lev.{namespace} "
                    f"{'is not theirs' if owner_id is not None else 'does not exist'}; "
                    f"{uploader!r} can publish {allowed}"
                )
            existing = conn.execute(
                select(_packages.c.id, _packages.c.name).where(
                    _packages.c.normalized == normalized
                )
            ).first()
            if existing is not None and existing.name != package:
                raise HubConflictError(
                    f"{package} and the existing package {existing.name} are one project for "
                    f"pip ({normalized}); publish under the name {existing.name}"
                )
            if existing is not None:
                package_id = existing.id
                for other in conn.execute(
                    select(_versions.c.version).where(_versions.c.package_id == package_id)
                ).scalars():
                    if _parse_version(other) == parsed:
                        raise HubConflictError(
                            f"{package} {other} exists already; versions cannot be replaced: "
                            "raise the version in pyproject.toml and publish again"
                        )
            else:
                package_id = conn.execute(
                    insert(_packages).values(
                        name=package,
                        normalized=normalized,
                        namespace=namespace,
                        owner_id=uploader_id,
                        created_at=created,
                    )
                ).inserted_primary_key[0]
            digest = insert_file(conn, wheel, filename)
            try:
                version_id = conn.execute(
                    insert(_versions).values(
                        package_id=package_id,
                        version=version,
                        manifest=manifest,
                        summary=summary,
                        requires_python=requires_python,
                        digest=digest,
                        filename=filename,
                        size=len(wheel),
                        uploaded_by=uploader_id,
                        created_at=created,
                    )
                ).inserted_primary_key[0]
            except IntegrityError as exc:
                # A concurrent upload of the same version won (PostgreSQL; SQLite serializes).
                raise HubConflictError(f"{package} {version} exists already") from exc
            rows = [
                {
                    "version_id": version_id,
                    "path": path,
                    "digest": insert_file(conn, content, path.rpartition("/")[2]),
                    "size": len(content),
                }
                for path, content in files
            ]
            if rows:
                conn.execute(insert(_version_files), rows)
        return {
            "package": package,
            "version": version,
            "filename": filename,
            "size": len(wheel),
            "digest": digest,
            "sha256": digest.removeprefix("sha256:"),
            "summary": summary,
            "requires_python": requires_python,
            "uploaded_by": uploader,
            "created_at": created,
        }

    def list_packages(
        self, query: str | None = None, *, kind: str | None = None, owner: str | None = None
    ) -> list[dict[str, Any]]:
        """Packages by name, each with its latest version's summary and exports.

        ``query``: every word must occur (any case) in the package name, its summary, or the
        name, qualified name or description of an export or a mode. ``kind``: only packages
        exporting a ``tool`` or a ``workflow``. ``owner``: only that user's packages.
        """
        packages_query = (
            select(_packages, _users.c.name.label("owner"))
            .join(_users, _users.c.id == _packages.c.owner_id)
            .order_by(_packages.c.name)
        )
        if owner is not None:
            packages_query = packages_query.where(_users.c.name == owner)
        with self._read() as conn:
            packages = conn.execute(packages_query).all()
            all_versions: dict[int, list[Row[Any]]] = {}
            for row in conn.execute(
                select(_versions.c.id, _versions.c.package_id, _versions.c.version)
            ):
                all_versions.setdefault(row.package_id, []).append(row)
            latest_ids = {}
            for package_id, rows in all_versions.items():
                latest = _latest([row.version for row in rows])
                latest_ids[package_id] = next(row.id for row in rows if row.version == latest)
            latest_rows = {
                row.package_id: row
                for row in conn.execute(
                    select(
                        _versions.c.package_id,
                        _versions.c.version,
                        _versions.c.manifest,
                        _versions.c.summary,
                        _versions.c.created_at,
                    ).where(_versions.c.id.in_(list(latest_ids.values())))
                )
            }
        words = (query or "").lower().split()
        found = []
        for package in packages:
            # Every package has a version: it is created with its first one.
            latest = latest_rows[package.id]
            exports = _export_summaries(latest.manifest)
            if kind is not None and not any(entry["kind"] == kind for entry in exports):
                continue
            text = _search_text(package.name, latest.summary, latest.manifest)
            if not all(word in text for word in words):
                continue
            found.append({
                "name": package.name,
                "normalized": package.normalized,
                "namespace": package.namespace,
                "owner": package.owner,
                "created_at": utc(package.created_at),
                "latest": latest.version,
                "summary": latest.summary,
                "updated_at": utc(latest.created_at),
                "exports": exports,
            })
        return found

    def package_names(self) -> list[tuple[str, str]]:
        """``(name, PEP 503 name)`` of every package, by PEP 503 name."""
        query = select(_packages.c.name, _packages.c.normalized).order_by(_packages.c.normalized)
        with self._read() as conn:
            return [(row.name, row.normalized) for row in conn.execute(query)]

    def get_package(self, name: str) -> dict[str, Any] | None:
        """A package by its name in any PEP 503 spelling, with its versions, newest first."""
        with self._read() as conn:
            package = conn.execute(
                select(_packages, _users.c.name.label("owner"))
                .join(_users, _users.c.id == _packages.c.owner_id)
                .where(_packages.c.normalized == canonicalize_name(name))
            ).first()
            if package is None:
                return None
            versions = _newest_first(
                conn.execute(
                    select(*_VERSION_COLUMNS)
                    .join(_users, _users.c.id == _versions.c.uploaded_by)
                    .where(_versions.c.package_id == package.id)
                ).all()
            )
        latest = _latest([row.version for row in versions])
        summary = next((row.summary for row in versions if row.version == latest), None)
        return {
            "name": package.name,
            "normalized": package.normalized,
            "namespace": package.namespace,
            "owner": package.owner,
            "created_at": utc(package.created_at),
            "latest": latest,
            "summary": summary,
            "versions": [_version_dict(row, package.name) for row in versions],
        }

    def _version_row(self, conn: Connection, name: str, version: str) -> Row[Any] | None:
        query = (
            select(*_VERSION_COLUMNS, _versions.c.manifest, _packages.c.name.label("package"))
            .join(_packages, _packages.c.id == _versions.c.package_id)
            .join(_users, _users.c.id == _versions.c.uploaded_by)
            .where(_packages.c.normalized == canonicalize_name(name))
        )
        rows = conn.execute(query).all()
        exact = [row for row in rows if row.version == version]
        if exact:
            return exact[0]
        # Any PEP 440 spelling of the version finds it, as pip would (1.0 is 1.0.0).
        wanted = _parse_version(version)
        if wanted is None:
            return None
        return next((row for row in rows if _parse_version(row.version) == wanted), None)

    def get_version(self, name: str, version: str) -> dict[str, Any] | None:
        """One version of a package with its manifest; None when either does not exist."""
        with self._read() as conn:
            row = self._version_row(conn, name, version)
        if row is None:
            return None
        return {**_version_dict(row, row.package), "manifest": row.manifest}

    def list_version_files(self, name: str, version: str) -> list[dict[str, Any]] | None:
        """The members of a version's wheel (path, size, digest) by path; None when the
        version does not exist."""
        with self._read() as conn:
            row = self._version_row(conn, name, version)
            if row is None:
                return None
            files = conn.execute(
                select(_version_files.c.path, _version_files.c.size, _version_files.c.digest)
                .where(_version_files.c.version_id == row.id)
                .order_by(_version_files.c.path)
            ).all()
        return [{"path": f.path, "size": f.size, "digest": f.digest} for f in files]

    def version_file(self, name: str, version: str, path: str) -> bytes | None:
        """The content of one member of a version's wheel; None when there is no such member."""
        with self._read() as conn:
            row = self._version_row(conn, name, version)
            if row is None:
                return None
            content = conn.execute(
                select(_files.c.content)
                .join(_version_files, _version_files.c.digest == _files.c.digest)
                .where(_version_files.c.version_id == row.id, _version_files.c.path == path)
            ).scalar()
        return None if content is None else bytes(content)

    def get_wheel(self, filename: str) -> dict[str, Any] | None:
        """A version by its wheel's file name, with the wheel's bytes as ``"content"``."""
        query = (
            select(*_VERSION_COLUMNS, _packages.c.name.label("package"), _files.c.content)
            .join(_packages, _packages.c.id == _versions.c.package_id)
            .join(_users, _users.c.id == _versions.c.uploaded_by)
            .join(_files, _files.c.digest == _versions.c.digest)
            .where(_versions.c.filename == filename)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return {**_version_dict(row, row.package), "content": bytes(row.content)}

