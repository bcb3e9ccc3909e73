"""Tables of the levrt store: the runtime's (jobs, runs, documents, logs, files) and the
hub's (users, tokens, namespaces, packages, versions, version files).

Only portable column types are used so the same schema runs on SQLite and
PostgreSQL. Timestamps are written as UTC; SQLite drops the zone, so the store
re-attaches it on read. Any change here needs a new migration in
``migrations/versions`` (``tests/test_store.py`` checks they agree).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so later migrations (SQLite batch mode
# recreates tables) can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Stored in ``documents.run_id`` for a document not tied to a run: NULL would
# defeat the primary key, since SQL treats NULLs as distinct.
NO_RUN = -1


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String)
    target: Mapped[str | None] = mapped_column(String)
    # "package==version" of the published package whose target a hub task runs.
    package: Mapped[str | None] = mapped_column(String)
    params: Mapped[Any] = mapped_column(JSON, nullable=True)
    executor: Mapped[str | None] = mapped_column(String)
    owner: Mapped[str | None] = mapped_column(String)
    # Where it was sent: "device:NAME" or "pool:NAME" of the owner's; None: the server's runner.
    placement: Mapped[str | None] = mapped_column(String)
    # "host:pid" of the process running the job (levrt._driver).
    driver: Mapped[str | None] = mapped_column(String)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # What the workflow returned, as JSON data (a run's document: {"$document": ...}).
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # None while the job is queued.
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Run(Base):
    __tablename__ = "runs"

    job_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String)
    image: Mapped[str | None] = mapped_column(String)
    schema: Mapped[str | None] = mapped_column(String)
    coll: Mapped[str] = mapped_column(String)
    spec: Mapped[Any] = mapped_column(JSON, nullable=True)
    namespace: Mapped[Any] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Document(Base):
    """A result document's header; its top-level fields are rows of ``document_fields``."""

    __tablename__ = "documents"

    # Key order doubles as the listing order (job, run, coll).
    job_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    coll: Mapped[str] = mapped_column(String, primary_key=True, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DocumentField(Base):
    """One top-level key of a document, so that a write costs what it writes, not what the
    document already holds. ``id`` keeps the order keys were first set in."""

    __tablename__ = "document_fields"
    __table_args__ = (
        UniqueConstraint("job_id", "run_id", "coll", "key",
                         name="uq_document_fields_job_id_run_id_coll_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(12))
    run_id: Mapped[int] = mapped_column(Integer)
    coll: Mapped[str] = mapped_column(String)
    key: Mapped[str] = mapped_column(String)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)


class Log(Base):
    __tablename__ = "logs"
    __table_args__ = (
        Index("ix_logs_job_id_seq", "job_id", "seq"),
        Index("ix_logs_job_id_run_id_seq", "job_id", "run_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(12))
    run_id: Mapped[int | None] = mapped_column(Integer)
    stream: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class File(Base):
    __tablename__ = "files"

    digest: Mapped[str] = mapped_column(String(71), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# -- the hub ---------------------------------------------------------------------


class FileOwner(Base):
    """A user who uploaded a file (for a task's ``File`` parameter): only they may use its
    digest. Two users uploading the same bytes each own the one stored file."""

    __tablename__ = "file_owners"

    digest: Mapped[str] = mapped_column(ForeignKey("files.digest"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # "scrypt$n$r$p$salt$hash": the parameters travel with the hash so they can be raised later.
    password_hash: Mapped[str] = mapped_column(String)
    is_admin: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String)
    # Only the hash is kept: a leaked database must not hand out working tokens.
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Namespace(Base):
    __tablename__ = "namespaces"

    # The <user> of lev.<user>.<tool>.
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Package(Base):
    __tablename__ = "packages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    # PEP 503 form (lev-user-tool): two names pip takes for one project are one package.
    normalized: Mapped[str] = mapped_column(String, unique=True)
    namespace: Mapped[str] = mapped_column(ForeignKey("namespaces.name"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PackageVersion(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("package_id", "version", name="uq_versions_package_id_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id"))
    version: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[Any] = mapped_column(JSON)
    summary: Mapped[str | None] = mapped_column(Text)
    requires_python: Mapped[str | None] = mapped_column(String)
    # The wheel: its bytes are in files under this digest ("sha256:<hex>").
    digest: Mapped[str] = mapped_column(ForeignKey("files.digest"))
    filename: Mapped[str] = mapped_column(String, unique=True)
    size: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VersionFile(Base):
    """A member of a version's wheel, for the source browser."""

    __tablename__ = "version_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String, primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("files.digest"))
    size: Mapped[int] = mapped_column(Integer)


class Device(Base):
    """A machine of a user's where ``lev agent`` takes tasks: added by its owner with a
    one-time enrolment code, which the agent trades for its own token."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_devices_owner_id_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    # The pool names the device joins, as a JSON list.
    pools: Mapped[Any] = mapped_column(JSON)
    # Hashes only, as for API tokens: a leaked database hands out no device.
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the agent last reported of itself (executors, images, tools, cores, memory, version).
    facts: Mapped[Any] = mapped_column(JSON, nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Runs going on the device and its slots, from its last heartbeat.
    running: Mapped[int] = mapped_column(Integer, default=0)
    slots: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Schedule(Base):
    """A task template fired at the slots of a cron expression or an interval, in a time
    zone. ``next_fire`` is the next slot (UTC), advanced by compare-and-set when a server
    claims a slot, so two servers on one store never both fire it."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_schedules_owner_id_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String)
    # "package==version" of the published package, pinned when the schedule was made.
    package: Mapped[str | None] = mapped_column(String)
    params: Mapped[Any] = mapped_column(JSON)
    # Where its tasks run, as jobs.placement: "device:NAME", "pool:NAME" or "spread:NAME" of
    # the owner's devices; None: the server's runner.
    placement: Mapped[str | None] = mapped_column(String(80))
    cron: Mapped[str | None] = mapped_column(String(200))
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    paused: Mapped[bool] = mapped_column(Boolean)
    next_fire: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScheduleFire(Base):
    """A slot of a schedule that was fired, and its job: the key is the claim."""

    __tablename__ = "schedule_fires"

    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id"), primary_key=True)
    slot: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    # Older slots passed over because the server was not running at their time.
    skipped: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(12), index=True)
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Hook(Base):
    """A notification of a schedule's jobs or of one task's job: a signed webhook or an
    apprise URL. ``url`` and ``secret`` are sent by the server and never shown again."""

    __tablename__ = "hooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(12), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(String(64))
    # The events it is sent on, as a JSON list: done, failed, new_rows.
    events: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """One notification of one job by one hook, with its attempts: the key is the claim,
    so a job is notified once by one of the servers sharing the store."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("hook_id", "job_id", name="uq_deliveries_hook_id_job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hook_id: Mapped[int] = mapped_column(ForeignKey("hooks.id"), index=True)
    job_id: Mapped[str] = mapped_column(String(12))
    event: Mapped[str] = mapped_column(String(16))
    # sending, delivered, failed (every attempt refused) or skipped (no new rows).
    status: Mapped[str] = mapped_column(String(16))
    # [{"at", "code", "error"}] per attempt, oldest first.
    attempts: Mapped[Any] = mapped_column(JSON)
    # While sending: when the next attempt is due, or until when the server trying it now
    # holds it (if that server dies, another takes it from then on). None once it ended.
    next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
