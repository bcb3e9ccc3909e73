"""The :class:`Store`: jobs, runs, documents, logs and files in one SQL database, and the
hub's tables through :class:`~levrt.store._hub.HubMixin`."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import EllipsisType, TracebackType
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    String,
    UniqueConstraint,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import ColumnElement

from levrt._config import extra_hint
from levrt._driver import driver_gone
from levrt._status import FINAL_STATUSES, UNFINISHED_STATUSES
from levrt._text import clean_data, clean_text
from levrt.shim.entry import decode, encode
from levrt.store._base import JobStateError, StoreError, StoreWriteError, default_home, default_url
from levrt.store._common import insert_file
from levrt.store._common import now as _now
from levrt.store._common import utc as _utc
from levrt.store._devices import DevicesMixin
from levrt.store._hub import HubMixin
from levrt.store._logs import RunLog
from levrt.store._schedules import SchedulesMixin
from levrt.store.models import NO_RUN, Document, DocumentField, File, Job, Log, Run

# The newest revision in migrations/versions. Kept here so opening an
# up-to-date store needs neither Alembic nor a scan of the scripts; a test
# checks it against the scripts.
SCHEMA_HEAD = "0010"
# The most a job keeps of its workflow's return value, in characters of JSON.
RESULT_MAX_CHARS = 1_000_000
# Space a file store keeps beside its database (``<file>.reserve``) and gives up on a full
# disk so that the end of a job or a run can still be written: SQLite needs free pages for
# any write, a deletion included. A few pages suffice; a MiB leaves room for both ends.
RESERVE_BYTES = 1 << 20

_T = TypeVar("_T")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

MIN_PREFIX = 4
# One page of a log: bounded in rows and in text, whatever the rows hold.
LOG_PAGE_ROWS = 1000
LOG_PAGE_BYTES = 4 * 1024 * 1024
BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10

# How to install the driver of a URL whose driver is missing, by driver name.
_DRIVER_HINTS = {"psycopg": f"{extra_hint('postgres')} (psycopg 3)"}
_LIBPQ_DRIVERS = ("psycopg", "psycopg2")

# Connection option read by the "begin" hooks to take the write lock up front.
_IMMEDIATE = "levrt_begin_immediate"
# The PostgreSQL advisory lock that write transactions hold (any number: it is per database).
_WRITE_LOCK_KEY = 7403221

_jobs = Job.__table__
_runs = Run.__table__
_documents = Document.__table__
_fields = DocumentField.__table__
_logs = Log.__table__
_files = File.__table__

# A run's two writes, built once with bound parameters: SQLAlchemy compiles each once per
# engine and reuses it, where a statement built per call with its values in it is built,
# coerced value by value and looked up again every time (that was most of what a command
# run cost the host). The insert selects its row only if the job exists, so one statement
# both checks and writes.
_RUN_COLUMNS = ("job_id", "run_id", "name", "image", "schema", "coll", "spec", "namespace",
                "status", "exit_code", "error", "started_at", "finished_at")
_INSERT_RUN = insert(_runs).from_select(
    _RUN_COLUMNS,
    select(*(bindparam(name, type_=_runs.c[name].type) for name in _RUN_COLUMNS))
    .where(exists().where(_jobs.c.id == bindparam("job_id"))),
).execution_options(preserve_rowcount=True)  # an INSERT's rowcount is kept only when asked
# bindparam names differ from the columns': an UPDATE reserves the columns' own for SET.
_FINISH_RUN = (
    update(_runs)
    .where(_runs.c.job_id == bindparam("b_job_id"), _runs.c.run_id == bindparam("b_run_id"))
    .values(status=bindparam("b_status"), exit_code=bindparam("b_exit_code"),
            error=bindparam("b_error"), finished_at=bindparam("b_finished_at"))
)


def _check_status(status: str, allowed: tuple[str, ...], what: str) -> None:
    if status not in allowed:
        raise ValueError(f"{what} status must be one of {', '.join(allowed)}; got {status!r}")


def _encode_fields(data: Mapping[str, Any], coll: str) -> dict[str, Any]:
    # Encoded key by key, not as one value, so the stored top level stays a plain
    # object whose keys can be merged without decoding.
    if not isinstance(data, Mapping):
        raise TypeError(f"document data for {coll!r} must be a dict, not {type(data).__name__}")
    fields = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise TypeError(
                f"document {coll!r}: top-level keys must be str, got {type(key).__name__} "
                f"{key!r}; nest non-str keys inside a value"
            )
        fields[key] = encode(value, path=f"{coll}[{key!r}]")
    return fields


def _job_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "target": row.target,
        "package": row.package,
        "params": decode(row.params),
        "executor": row.executor,
        "owner": row.owner,
        "placement": row.placement,
        "driver": row.driver,
        "status": row.status,
        "progress": row.progress,
        "error": row.error,
        "result": decode(row.result),
        "created_at": _utc(row.created_at),
        "started_at": _utc(row.started_at),
        "finished_at": _utc(row.finished_at),
    }


def _job_filters(status: str | None, owner: str | None, search: str | None,
                 driver_host: str | None = None,
                 device: str | None = None) -> list[ColumnElement[bool]]:
    """The conditions of list_jobs and count_jobs."""
    found: list[ColumnElement[bool]] = [
        column == value for column, value in ((_jobs.c.status, status), (_jobs.c.owner, owner))
        if value is not None]
    if search:
        # Parameters and results too, as their stored JSON text: an address, a port.
        found.append(_jobs.c.name.icontains(search, autoescape=True)
                     | _jobs.c.target.icontains(search, autoescape=True)
                     | cast(_jobs.c.params, String).icontains(search, autoescape=True)
                     | cast(_jobs.c.result, String).icontains(search, autoescape=True))
    if driver_host is not None:
        # A driver id is "host:pid:start" (levrt._driver); a queued job has none yet.
        on_host = _jobs.c.driver.startswith(f"{driver_host}:", autoescape=True)
        if device is None:  # the server's runner: its jobs run here, or waiting for a slot
            found.append(_jobs.c.placement.is_(None) & (on_host | (_jobs.c.status == "queued")))
        else:  # an agent: the jobs sent to it, and those of its pools it ran
            found.append(_jobs.c.placement.is_not(None)
                         & (on_host | (_jobs.c.placement == f"device:{device}")))
    return found


def _run_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "job_id": row.job_id,
        "run_id": row.run_id,
        "name": row.name,
        "image": row.image,
        "schema": row.schema,
        "coll": row.coll,
        "spec": decode(row.spec),
        "namespace": row.namespace,
        "status": row.status,
        "exit_code": row.exit_code,
        "error": row.error,
        "started_at": _utc(row.started_at),
        "finished_at": _utc(row.finished_at),
    }


def _document_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "coll": row.coll,
        "job_id": row.job_id,
        "run_id": None if row.run_id == NO_RUN else row.run_id,
        "data": {},
        "updated_at": _utc(row.updated_at),
    }


def _upsert(conn: Connection, table: Any, rows: list[dict[str, Any]],
            changed: tuple[str, ...]) -> None:
    """Insert ``rows``; where one exists with the same primary or unique key, set its
    ``changed`` columns instead. One statement per batch on SQLite and PostgreSQL."""
    conn.execute(_upsert_statement(conn.dialect.name, table, changed), rows)


@functools.cache
def _upsert_statement(dialect: str, table: Any, changed: tuple[str, ...]) -> Any:
    # Built once per dialect and table, so that its compiled form is reused.
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        raise StoreError(f"the store supports SQLite and PostgreSQL, not {dialect}")
    keys = [column.name for column in table.primary_key.columns]
    if "id" in keys:  # a surrogate key: conflicts are on the natural one
        keys = [column.name for constraint in table.constraints
                if isinstance(constraint, UniqueConstraint) for column in constraint.columns]
    statement = dialect_insert(table)
    return statement.on_conflict_do_update(
        index_elements=keys, set_={column: statement.excluded[column] for column in changed})


def _merge_fields(conn: Connection, coll: str, job_id: str, run_id: int | None,
                  fields: dict[str, Any]) -> None:
    """Create document ``coll`` of the run (``None``: the job's own) or touch it, and set
    its encoded top-level ``fields``, inside the caller's transaction."""
    where = {"job_id": job_id, "run_id": NO_RUN if run_id is None else run_id, "coll": coll}
    _upsert(conn, _documents, [{**where, "updated_at": _now()}], ("updated_at",))
    if fields:
        _upsert(conn, _fields, [{**where, "key": name, "value": value}
                                for name, value in fields.items()], ("value",))


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN skips SELECT and DDL; _sqlite_on_begin
    # emits BEGIN instead so reads and migrations are really transactional.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        # Busy timeout first: switching to WAL itself may wait for another process.
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # WAL lets a server read while a CLI writes; NORMAL is durable enough in WAL.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes fails with "database is
    # locked" without waiting when another writer got in between; IMMEDIATE
    # takes the write lock (honouring the busy timeout) before the first read.
    immediate = conn.get_execution_options().get(_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _psycopg_on_connect(dbapi_conn: Any, _record: Any) -> None:
    from levrt.store._pgtext import register

    register(dbapi_conn)


def _postgresql_on_begin(conn: Connection) -> None:
    # Write transactions take turns, as BEGIN IMMEDIATE makes them on SQLite: the store's
    # writes check, then insert or update, and count on no other writer in between (two
    # servers creating the first admin, two uploads of one new package). The lock is the
    # database's own, so it holds across processes and machines; reads never wait for it.
    if conn.get_execution_options().get(_IMMEDIATE, False):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITE_LOCK_KEY})")


def _schema_version(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def database_url(url: str) -> URL:
    """``url`` parsed, with psycopg 3 as the driver of a PostgreSQL URL that names none
    (``postgresql://`` or ``postgres://`` becomes ``postgresql+psycopg://``).

    Raises :class:`StoreError` for text that is not a database URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"invalid database URL {url!r}: {exc}; expected e.g. sqlite:///path/to/levrt.db "
            "or postgresql://user:password@host/database"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _create_server_engine(parsed: URL) -> Engine:
    shown = parsed.render_as_string(hide_password=True)
    # As named in the URL: asking the URL for its default driver loads the dialect.
    driver = parsed.drivername.partition("+")[2]
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if driver in _LIBPQ_DRIVERS and "connect_timeout" not in parsed.query:
        # libpq waits for an unreachable host as long as TCP does (minutes) by default.
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        engine = create_engine(parsed, **kwargs)
    except ImportError as exc:
        driver = driver or parsed.get_driver_name()
        hint = _DRIVER_HINTS.get(driver, "install the driver's package")
        raise StoreError(
            f"cannot use the database at {shown!r}: its driver {driver!r} "
            f"is not installed ({exc}); {hint}"
        ) from exc
    except ArgumentError as exc:
        raise StoreError(
            f"cannot use database URL {shown!r}: {exc}; check the dialect name and that its "
            "driver package is installed"
        ) from exc
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "begin", _postgresql_on_begin)
        if driver == "psycopg":
            event.listen(engine, "connect", _psycopg_on_connect)
    return engine


def _create_engine(url: str) -> Engine:
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _create_server_engine(parsed)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if parsed.database in (None, "", ":memory:"):
        # An in-memory database lives and dies with its connection: share one.
        kwargs["poolclass"] = StaticPool
    else:
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory {str(folder)!r} for the store at {url!r}: {exc}"
            ) from exc
    engine = create_engine(parsed, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _keep_reserve(url: URL) -> Path | None:
    """The reserve file of a file-backed SQLite store, written now if missing (in zeros, so
    that its blocks are really taken); None when there is none and none fits."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    reserve = Path(f"{url.database}.reserve")
    if reserve.exists():
        return reserve
    try:
        with open(reserve, "xb") as file:
            file.write(bytes(RESERVE_BYTES))
    except FileExistsError:
        return reserve
    except OSError:
        reserve.unlink(missing_ok=True)
        return None
    return reserve


def _disk_full(exc: StoreWriteError) -> bool:
    cause = getattr(exc.__cause__, "orig", None)
    return getattr(cause, "sqlite_errorname", None) == "SQLITE_FULL" or "full" in str(cause)


class Store(HubMixin, DevicesMixin, SchedulesMixin):
    """Persistent jobs, runs, result documents, logs and content-addressed files.

    Thread-safe: every call checks a connection out of the engine's pool for
    one short transaction. Opening upgrades the schema to the newest revision.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = _create_engine(url)
        # One shared in-memory connection cannot hold two transactions at once,
        # so calls on it take turns; pooled connections need no such lock.
        shared = isinstance(self._engine.pool, StaticPool)
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if shared else contextlib.nullcontext()
        )
        try:
            self._upgrade()
        except (OperationalError, ProgrammingError) as exc:
            # Cannot connect, or may not create the tables (PostgreSQL 15 lets only the
            # database's owner create them in schema public).
            self._engine.dispose()
            # One line: libpq's messages come on several, with the hint on the last.
            reason = " ".join(str(exc.orig).split())
            raise StoreError(f"cannot open the store at {self!r}: {reason}") from exc
        except StoreWriteError as exc:
            self._engine.dispose()
            raise StoreError(f"cannot open the store at {self!r}: {exc}") from exc
        except BaseException:
            self._engine.dispose()
            raise
        self._reserve = _keep_reserve(self._engine.url)

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        """Open the store at ``url``, or at :func:`default_url` when not given."""
        return cls(default_url() if url is None else url)

    def close(self) -> None:
        """Release all pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self._engine.url.render_as_string(hide_password=True)!r})"

    # -- plumbing --------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._lock, self._engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._lock, self._engine.connect() as conn:
                conn.execution_options(**{_IMMEDIATE: True})
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StoreWriteError(f"store write failed: {exc.orig} ({self.where()})") from exc

    def _ending(self, write: Callable[[], _T]) -> _T:
        """Write the end of a job or a run; on a full disk, free the reserve and try again
        once (the next opening of the store sets a new reserve aside when it can)."""
        try:
            return write()
        except StoreWriteError as exc:
            if self._reserve is None or not _disk_full(exc):
                raise
            try:
                self._reserve.unlink()
            except FileNotFoundError:
                raise exc from None  # spent by another process already
            self._reserve = None
            return write()

    def where(self) -> str:
        """Where the store is, for messages: ``LEV_HOME=...`` for the default store."""
        database = self._engine.url.database
        if self._engine.url.get_backend_name() == "sqlite" and database not in (None, "",
                                                                                ":memory:"):
            folder = Path(database).parent
            if "LEV_DB_URL" not in os.environ and folder == default_home():
                return f"LEV_HOME={folder}"
            return f"store {database}"
        return f"store {self!r}"

    def _upgrade(self) -> None:
        with self._read() as conn:
            if _schema_version(conn) == SCHEMA_HEAD:
                return
        # Imported only here: an up-to-date store must open in a few ms.
        from alembic import command
        from alembic.config import Config
        from alembic.util import CommandError

        with self._write() as conn:
            # Another process may have upgraded while we waited for the lock.
            current = _schema_version(conn)
            if current == SCHEMA_HEAD:
                return
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise StoreError(
                    f"cannot upgrade the store at {self!r} from schema revision {current!r}: "
                    f"{exc}. If another levrt version created it, upgrade levrt or point "
                    "LEV_DB_URL / LEV_HOME at another database."
                ) from exc

    # -- jobs ------------------------------------------------------------------

    def create_job(
        self,
        name: str,
        *,
        target: str | None = None,
        params: dict[str, Any] | None = None,
        executor: str | None = None,
        owner: str | None = None,
        package: str | None = None,
        driver: str | None = None,
        queued: bool = False,
        placement: str | None = None,
    ) -> str:
        """Record a new job, running (or ``queued``: see :meth:`start_job`), and return its
        12-hex-digit id. ``placement`` (``device:NAME`` or ``pool:NAME``) says which of the
        owner's devices it was sent to; None, the server's own runner."""
        job_id = uuid.uuid4().hex[:12]
        now = _now()
        with self._write() as conn:
            conn.execute(
                insert(_jobs).values(
                    id=job_id,
                    name=clean_text(name),
                    target=clean_data(target),
                    package=package,
                    params=encode(clean_data(params), path="params"),
                    executor=executor,
                    owner=owner,
                    placement=placement,
                    driver=driver,
                    status="queued" if queued else "running",
                    progress=0.0,
                    error=None,
                    created_at=now,
                    started_at=None if queued else now,
                    finished_at=None,
                )
            )
        return job_id

    def start_job(self, job_id: str, *, executor: str | None, driver: str | None = None) -> None:
        """Mark a queued job running (by ``driver``). Only one caller can: another gets a
        :class:`JobStateError`, so a queued job never runs twice."""
        query = (
            update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.status == "queued")
            .values(status="running", executor=executor, driver=driver, started_at=_now())
        )
        with self._write() as conn:
            if conn.execute(query).rowcount == 0:
                row = conn.execute(select(_jobs.c.status).where(_jobs.c.id == job_id)).first()
                if row is None:
                    raise KeyError(f"no job with id {job_id!r}")
                raise JobStateError(f"job {job_id} is {row.status}, not queued: it cannot "
                                    "start again")

    def finish_job(self, job_id: str, status: str, *, error: str | None = None,
                   result: Any = None) -> None:
        """Mark a job done, failed or cancelled, with what its workflow returned: JSON data
        (``bytes`` kept as the store keeps them), anything else as its ``repr``; a result
        longer than ``RESULT_MAX_CHARS`` as JSON is replaced by a note saying so."""
        _check_status(status, FINAL_STATUSES, "job")
        try:
            stored = encode(clean_data(result), path="result")
        except (TypeError, ValueError):
            stored = clean_text(repr(result))
        # The job's row is read with every list of tasks: a huge result stays in documents.
        size = len(json.dumps(stored, ensure_ascii=False))
        if size > RESULT_MAX_CHARS:
            stored = (f"(a result of {size} characters as JSON, more than the "
                      f"{RESULT_MAX_CHARS} a job keeps: store it in a document)")
        self._ending(functools.partial(self._update_job, job_id, status=status, error=error,
                                       result=stored, finished_at=_now()))

    def end_unfinished_job(self, job_id: str, status: str, *, error: str) -> bool:
        """Finish a job with ``status`` unless it has finished already (whoever ran it
        recorded how it ended, which stands); whether it was unfinished. Its runs still
        running end with it, with the same status and ``error``: their driver, which would
        have recorded them, is gone (or never started)."""
        _check_status(status, FINAL_STATUSES, "job")
        return self._ending(functools.partial(self._end_job, job_id, UNFINISHED_STATUSES,
                                              status, error, run_error=error))

    def set_job_progress(self, job_id: str, progress: float) -> None:
        """Record progress as a fraction, clamped to 0..1."""
        if math.isnan(progress):
            raise ValueError(f"progress of job {job_id!r} must be a number in 0..1, not NaN")
        self._update_job(job_id, progress=min(1.0, max(0.0, float(progress))))

    def _update_job(self, job_id: str, **values: Any) -> None:
        values = clean_data(values)
        with self._write() as conn:
            result = conn.execute(update(_jobs).where(_jobs.c.id == job_id).values(**values))
            if result.rowcount == 0:
                raise KeyError(f"no job with id {job_id!r}")

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job as a dict, or None if there is no such job. A running job whose driver
        is gone (see :meth:`settle_gone`) is read as failed."""
        with self._read() as conn:
            row = conn.execute(select(_jobs).where(_jobs.c.id == job_id)).first()
        return None if row is None else self._settled(_job_dict(row))

    def _settled(self, job: dict[str, Any]) -> dict[str, Any]:
        # A job sent to a device is its workflow's to settle: Temporal gives it to another
        # agent when its driver's agent is lost.
        if (job["status"] != "running" or job["placement"] is not None
                or not driver_gone(job["driver"])):
            return job
        error = (f"driver gone: its process ({job['driver']}) ended without finishing the "
                 "job: it was killed, or the machine stopped")
        try:
            self.settle_gone(job["id"], error)
        except StoreWriteError:
            pass  # a store that cannot be written is still read right
        with self._read() as conn:
            row = conn.execute(select(_jobs).where(_jobs.c.id == job["id"])).first()
        settled = _job_dict(row) if row is not None else job
        if settled["status"] == "running":
            settled.update(status="failed", error=error, finished_at=_now())
        return settled

    def settle_gone(self, job_id: str, error: str) -> bool:
        """Record a running job whose driver is gone as failed with ``error``, and its runs
        still running with it; whether it was still running."""
        return self._end_job(job_id, ("running",), "failed", error, run_error="driver gone")

    def _end_job(self, job_id: str, unfinished: Iterable[str], status: str, error: str, *,
                 run_error: str) -> bool:
        with self._write() as conn:
            ended = conn.execute(
                update(_jobs)
                .where(_jobs.c.id == job_id, _jobs.c.status.in_(tuple(unfinished)))
                .values(status=status, error=clean_text(error), finished_at=_now())
            ).rowcount
            if ended:
                conn.execute(
                    update(_runs)
                    .where(_runs.c.job_id == job_id, _runs.c.status == "running")
                    .values(status=status, error=clean_text(run_error), finished_at=_now()))
        return bool(ended)

    def requeue_job(self, job_id: str, reason: str) -> bool:
        """Queue a running job again, for another driver to start (its first one was lost):
        its runs still running fail with ``reason``; whether it was running."""
        with self._write() as conn:
            queued = conn.execute(
                update(_jobs)
                .where(_jobs.c.id == job_id, _jobs.c.status == "running")
                .values(status="queued", driver=None, started_at=None)
            ).rowcount
            if queued:
                conn.execute(
                    update(_runs)
                    .where(_runs.c.job_id == job_id, _runs.c.status == "running")
                    .values(status="failed", error=clean_text(reason), finished_at=_now()))
        return bool(queued)

    def list_jobs(
        self,
        *,
        limit: int = 50,
        status: str | None = None,
        owner: str | None = None,
        search: str | None = None,
        oldest_first: bool = False,
        offset: int = 0,
        driver_host: str | None = None,
        device: str | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` jobs, newest first (or oldest), optionally only those with
        ``status`` and ``owner`` and whose name, target, parameters or result (as JSON
        text) holds ``search`` (any case); with ``driver_host``, the tasks of a device on
        that host: the server's runner's (not sent elsewhere: run there, or queued for its
        slots), or with ``device`` those of that agent device (sent to it, or to one of its
        pools and run there); ``offset`` skips that many first."""
        created = _jobs.c.created_at if oldest_first else _jobs.c.created_at.desc()
        query = (select(_jobs).where(*_job_filters(status, owner, search, driver_host,
                                                   device))
                 .order_by(created, _jobs.c.id).limit(limit).offset(offset))
        with self._read() as conn:
            jobs = [_job_dict(row) for row in conn.execute(query)]
        settled = [self._settled(job) for job in jobs]
        return [job for job in settled if status is None or job["status"] == status]

    def count_jobs(self, *, status: str | None = None, owner: str | None = None,
                   search: str | None = None, driver_host: str | None = None,
                   device: str | None = None) -> int:
        """How many jobs :meth:`list_jobs` finds with these filters, without a limit."""
        query = select(func.count()).select_from(_jobs).where(
            *_job_filters(status, owner, search, driver_host, device))
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def resolve_job(self, prefix: str, *, owner: str | None = None) -> str:
        """The full id of the one job whose id starts with ``prefix`` (among ``owner``'s
        jobs when given). LookupError when none or several do."""
        prefix = prefix.strip().lower()
        if len(prefix) < MIN_PREFIX:
            raise LookupError(
                f"job id prefix {prefix!r} is too short; give at least {MIN_PREFIX} characters"
            )
        query = (
            select(_jobs.c.id)
            .where(_jobs.c.id.startswith(prefix, autoescape=True),
                   *_job_filters(None, owner, None))
            .order_by(_jobs.c.id)
        )
        with self._read() as conn:
            ids = list(conn.execute(query).scalars())
        if not ids:
            raise LookupError(f"no job matches {prefix!r}")
        if len(ids) > 1:
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise LookupError(f"{prefix!r} matches {len(ids)} jobs: {shown}; give more characters")
        return ids[0]

    # -- runs ------------------------------------------------------------------

    def create_run(
        self,
        job_id: str,
        run_id: int,
        *,
        name: str,
        image: str | None,
        schema: str | None,
        coll: str,
        spec: dict[str, Any] | None = None,
        namespace: list[str] | None = None,
    ) -> None:
        """Record run ``run_id`` of a job as running, in one statement.

        Raises KeyError when there is no such job, ValueError when the run exists already.
        """
        self.create_runs(job_id, [{"run_id": run_id, "name": name, "image": image,
                                   "schema": schema, "coll": coll, "spec": spec,
                                   "namespace": namespace}])

    def create_runs(self, job_id: str, runs: Sequence[Mapping[str, Any]]) -> None:
        """Record runs of a job as running, in one transaction: each a mapping of
        :meth:`create_run`'s arguments (``run_id``, ``name``, ``image``, ``schema``,
        ``coll``, and optionally ``spec`` and ``namespace``). All or none are recorded.

        Raises KeyError when there is no such job, ValueError when one of the runs exists
        already.
        """
        now = _now()
        rows = [{"job_id": job_id, "run_id": run["run_id"], "name": clean_text(run["name"]),
                 "image": clean_data(run["image"]), "schema": clean_data(run["schema"]),
                 "coll": clean_text(run["coll"]),
                 "spec": encode(clean_data(run.get("spec")), path="spec"),
                 "namespace": clean_data(run.get("namespace")), "status": "running",
                 "exit_code": None, "error": None, "started_at": now, "finished_at": None}
                for run in runs]
        ids = ", ".join(str(row["run_id"]) for row in rows)
        try:
            with self._write() as conn:
                added = sum(conn.execute(_INSERT_RUN, row).rowcount for row in rows)
        except IntegrityError as exc:
            raise ValueError(f"run {ids} of job {job_id!r}: a run of that number already "
                             "exists; run ids must be unique per job") from exc
        if added < len(rows):
            raise KeyError(f"cannot add run {ids} to job {job_id!r}: no such job")

    def finish_run(
        self,
        job_id: str,
        run_id: int,
        *,
        status: str,
        exit_code: int | None,
        error: str | None = None,
        coll: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Mark a run done, failed or cancelled; with ``data``, merge it into the run's
        document ``coll`` first (as :meth:`merge_document`), in the same transaction, so
        that a run never reads as finished without what it wrote last.

        Raises KeyError when there is no such run.
        """
        _check_status(status, FINAL_STATUSES, "run")
        fields = _encode_fields(clean_data(data), clean_text(coll or "")) if data else None
        values = {"b_job_id": job_id, "b_run_id": run_id, "b_status": status,
                  "b_exit_code": exit_code, "b_error": clean_data(error),
                  "b_finished_at": _now()}

        def write() -> None:
            with self._write() as conn:
                if fields:
                    assert coll is not None, "finish_run: data needs its coll"
                    _merge_fields(conn, clean_text(coll), job_id, run_id, fields)
                if conn.execute(_FINISH_RUN, values).rowcount == 0:
                    raise KeyError(f"no run {run_id} in job {job_id!r}")

        self._ending(write)

    def discard_run(self, job_id: str, run_id: int, *, keep_run: bool = False) -> None:
        """Forget run ``run_id`` of a job with its documents and log: a later attempt of the
        job runs it again under the same number (see :meth:`requeue_job`). ``keep_run``
        keeps its record, for a run started again as it is (another agent took it)."""
        tables = (_fields, _documents, _logs) if keep_run else (_fields, _documents, _logs,
                                                                  _runs)
        with self._write() as conn:
            for table in tables:
                conn.execute(delete(table).where(table.c.job_id == job_id,
                                                 table.c.run_id == run_id))

    def count_runs(self, job_id: str) -> tuple[int, int]:
        """How many runs the job has, and how many of them have finished."""
        finished = func.count().filter(_runs.c.status.in_(FINAL_STATUSES))
        query = select(func.count(), finished).where(_runs.c.job_id == job_id)
        with self._read() as conn:
            total, done = conn.execute(query).one()
        return int(total), int(done)

    def list_runs(self, job_id: str) -> list[dict[str, Any]]:
        """All runs of a job, by run id."""
        query = select(_runs).where(_runs.c.job_id == job_id).order_by(_runs.c.run_id)
        with self._read() as conn:
            return [_run_dict(row) for row in conn.execute(query)]

    # -- documents -------------------------------------------------------------

    def merge_document(
        self, coll: str, job_id: str, run_id: int | None, data: Mapping[str, Any]
    ) -> None:
        """Create the document or overwrite its top-level keys present in ``data``, at a
        cost in proportion to ``data`` alone: each key is a row of its own."""
        coll = clean_text(coll)
        fields = _encode_fields(clean_data(data), coll)
        with self._write() as conn:
            _merge_fields(conn, coll, job_id, run_id, fields)

    def find_documents(
        self,
        *,
        coll: str | None = None,
        job_id: str | None = None,
        run_id: int | None | EllipsisType = ...,
        coll_prefix: str | None = None,
    ) -> list[dict[str, Any]]:
        """Documents matching all given filters, by job, run and collection.

        ``run_id=...`` (the default) matches any run; ``None`` matches only
        documents not tied to a run.
        """
        def matching(table: Any) -> list[Any]:
            where = []
            if coll is not None:
                where.append(table.c.coll == coll)
            if job_id is not None:
                where.append(table.c.job_id == job_id)
            if run_id is not ...:
                where.append(table.c.run_id == (NO_RUN if run_id is None else run_id))
            if coll_prefix is not None:
                where.append(table.c.coll.startswith(coll_prefix, autoescape=True))
            return where

        order = (_documents.c.job_id, _documents.c.run_id, _documents.c.coll)
        heads = select(_documents).where(*matching(_documents)).order_by(*order)
        keys = (select(_fields.c.job_id, _fields.c.run_id, _fields.c.coll, _fields.c.key,
                       _fields.c.value)
                .where(*matching(_fields)).order_by(_fields.c.id))
        with self._read() as conn:
            found = {(row.job_id, row.run_id, row.coll): _document_dict(row)
                     for row in conn.execute(heads)}
            for row in conn.execute(keys):
                document = found.get((row.job_id, row.run_id, row.coll))
                if document is not None:
                    document["data"][row.key] = decode(row.value)
        return list(found.values())

    def list_documents(self, job_id: str) -> list[dict[str, Any]]:
        """All documents of a job."""
        return self.find_documents(job_id=job_id)

    def owned_results(self, owner: str | None, *,
                      since: datetime | None = None) -> dict[str, Any]:
        """What :func:`levrt.rows.asset_rows` reads, in three queries whatever the number of
        jobs: the ``done`` jobs of ``owner`` (None: all) that ended at ``since`` or later
        (None: all) as ``jobs`` ``[(id, finished_at)]`` by end, their runs' declared keys as
        ``runs`` ``[{"job_id", "run_id", "keys"}]`` and their documents as ``documents`` (as
        :meth:`find_documents` gives them)."""
        owned = select(_jobs.c.id).where(_jobs.c.status == "done", *(
            [_jobs.c.owner == owner] if owner is not None else []), *(
            [_jobs.c.finished_at >= since] if since is not None else []))
        jobs = (select(_jobs.c.id, _jobs.c.finished_at).where(_jobs.c.id.in_(owned))
                .order_by(_jobs.c.finished_at, _jobs.c.id))
        runs = select(_runs.c.job_id, _runs.c.run_id, _runs.c.spec).where(
            _runs.c.job_id.in_(owned))
        fields = (select(_fields.c.job_id, _fields.c.run_id, _fields.c.coll, _fields.c.key,
                         _fields.c.value)
                  .where(_fields.c.job_id.in_(owned)).order_by(_fields.c.id))
        documents: dict[tuple[str, int, str], dict[str, Any]] = {}
        with self._read() as conn:
            ended = [(row.id, _utc(row.finished_at)) for row in conn.execute(jobs)]
            declared = [{"job_id": row.job_id, "run_id": row.run_id,
                         "keys": (decode(row.spec) or {}).get("keys")}
                        for row in conn.execute(runs)]
            for row in conn.execute(fields):
                document = documents.get((row.job_id, row.run_id, row.coll))
                if document is None:
                    document = documents[(row.job_id, row.run_id, row.coll)] = {
                        "coll": row.coll, "job_id": row.job_id,
                        "run_id": None if row.run_id == NO_RUN else row.run_id, "data": {}}
                document["data"][row.key] = decode(row.value)
        return {"jobs": ended, "runs": declared, "documents": list(documents.values())}

    # -- logs ------------------------------------------------------------------

    def append_logs(self, job_id: str, run_id: int | None, entries: list[tuple[str, str]]) -> None:
        """Append ``(stream, text)`` lines to a job's log in one transaction, with no cap on
        the run's log (see :meth:`run_log`); a line longer than a row goes on in more rows."""
        self.run_log(job_id, run_id, 0).append(entries)

    def run_log(self, job_id: str, run_id: int | None, max_bytes: int) -> RunLog:
        """A writer of one run's log (``run_id`` None: the job's own lines) that keeps at most
        ``max_bytes`` of it (0: all): its first and last halves, with one marker row
        counting the lines and bytes cut between them."""
        return RunLog(self._write, job_id, run_id, max_bytes)

    def get_logs(
        self,
        job_id: str,
        *,
        run_id: int | None | EllipsisType = ...,
        after: int = 0,
        limit: int | None = None,
        max_bytes: int | None = None,
        last: bool = False,
    ) -> list[dict[str, Any]]:
        """Log rows of a job with ``seq > after``, oldest first: at most ``limit`` rows, and
        no more rows once ``max_bytes`` of text are read (always at least one row). With
        ``last``, the last such rows rather than the first.

        ``run_id=...`` (the default) means every run and the job's own lines;
        ``None`` means only lines not tied to a run. A page ends with the row whose ``seq``
        is the ``after`` of the next page.
        """
        query = (
            select(_logs.c.seq, _logs.c.ts, _logs.c.run_id, _logs.c.stream, _logs.c.text)
            .where(_logs.c.job_id == job_id, _logs.c.seq > after)
            .order_by(_logs.c.seq.desc() if last else _logs.c.seq)
            .limit(limit)
        )
        if run_id is None:
            query = query.where(_logs.c.run_id.is_(None))
        elif run_id is not ...:
            query = query.where(_logs.c.run_id == run_id)
        rows = []
        budget = max_bytes
        with self._read() as conn:
            for r in conn.execute(query):
                rows.append({"seq": r.seq, "ts": _utc(r.ts), "run_id": r.run_id,
                             "stream": r.stream, "text": r.text})
                if budget is not None:
                    budget -= len(r.text)
                    if budget <= 0:
                        break
        if last:
            rows.reverse()
        return rows

    def log_pages(self, job_id: str, *, after: int = 0, page: int = LOG_PAGE_ROWS,
                  page_bytes: int = LOG_PAGE_BYTES) -> Iterator[list[dict[str, Any]]]:
        """Every log row of a job with ``seq > after``, oldest first, in pages (lists of
        rows, as :meth:`get_logs` returns them) so that memory stays bounded whatever the
        log's size."""
        while True:
            rows = self.get_logs(job_id, after=after, limit=page, max_bytes=page_bytes)
            if not rows:
                return
            yield rows
            after = rows[-1]["seq"]

    def log_tail(self, job_id: str, run_id: int, lines: int = 20) -> list[str]:
        """The last ``lines`` log texts of one run, oldest first."""
        query = (
            select(_logs.c.text)
            .where(_logs.c.job_id == job_id, _logs.c.run_id == run_id)
            .order_by(_logs.c.seq.desc())
            .limit(max(0, lines))
        )
        with self._read() as conn:
            texts = list(conn.execute(query).scalars())
        texts.reverse()
        return texts

    # -- files -----------------------------------------------------------------

    def put_file(self, content: bytes, *, name: str | None = None) -> str:
        """Store ``content`` once and return its ``sha256:<hex>`` digest."""
        with self._write() as conn:
            return insert_file(conn, bytes(content), clean_data(name))

    def get_file(self, digest: str) -> bytes:
        """The content stored under ``digest``."""
        with self._read() as conn:
            content = conn.execute(
                select(_files.c.content).where(_files.c.digest == digest)
            ).scalar()
        if content is None:
            raise KeyError(f"no file with digest {digest!r} in the store")
        return bytes(content)

    def has_file(self, digest: str) -> bool:
        """Whether content with ``digest`` is stored."""
        with self._read() as conn:
            found = conn.execute(select(_files.c.digest).where(_files.c.digest == digest)).first()
        return found is not None
