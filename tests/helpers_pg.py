"""A private PostgreSQL cluster for the tests.

Debian's server binaries (``/usr/lib/postgresql/<N>/bin``) or an ``initdb`` on ``PATH``,
run by an unprivileged user (``initdb`` refuses root: as root the cluster belongs to the
``postgres`` user), with its data and socket directory in a fresh temporary directory and
listening on a free port of 127.0.0.1 only. Nothing of any other PostgreSQL on the machine
is read or touched. Durability is switched off: the cluster lives for one test session.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"
# Settings for a throwaway cluster: no fsync, and enough connections for stores that each
# keep a pool, a server under test and the admin connection.
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c shared_buffers=32MB"
)


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``: Debian's newest
    version first, else the one of the ``initdb`` on ``PATH``; None when there is none."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    if debian:
        return debian[0].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgCluster:
    """A running cluster: ``url(db)`` names one of its databases (no password: it trusts
    connections, and listens only on 127.0.0.1 and its own socket directory)."""

    bindir: Path
    root: Path
    port: int
    run_as: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    def url(self, database: str) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str | Path, timeout: float = 120) -> None:
        command = [str(a) for a in argv]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}{tail}"
            )

    @classmethod
    def start(cls, bindir: Path, attempts: int = 3) -> PgCluster:
        """initdb a new cluster in a temporary directory and start it on a free port."""
        run_as = SERVER_USER if os.geteuid() == 0 else None
        # Not pytest's tmp_path: the server's user must reach it (root's is 0700), and the
        # socket's path must stay within the 107 bytes a Unix socket name may have.
        root = Path(tempfile.mkdtemp(prefix="lev-pg-", dir="/tmp" if run_as else None))
        if run_as is not None:
            try:
                user = pwd.getpwnam(run_as)
            except KeyError:
                shutil.rmtree(root)
                raise RuntimeError(
                    f"initdb refuses to run as root and there is no user {run_as!r} to run it "
                    "as: install Debian's postgresql (it adds the user) or run the tests as "
                    "another user"
                ) from None
            os.chown(root, user.pw_uid, user.pw_gid)
        cluster = cls(bindir, root, 0, run_as)
        try:
            cluster._run(bindir / "initdb", "-D", cluster.data, "-U", SERVER_USER,
                         "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
                         "--no-instructions")
            cluster._run("mkdir", cluster.sockets)
            for attempt in range(attempts):
                # Another process may take the port between our probe and the server's
                # bind: then pick another.
                cluster.port = free_port()
                try:
                    cluster._start_server()
                    break
                except RuntimeError:
                    if attempt == attempts - 1:
                        raise
        except BaseException:
            cluster.remove()
            raise
        return cluster

    def _start_server(self) -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.root / "server.log",
                  "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
                  f"{SERVER_OPTIONS}", "start")

    def restart(self, down: Callable[[], object] = lambda: None) -> None:
        """Stop the server (its clients' connections drop), call ``down()``, and start it
        again on the same port and data. Not ``-m immediate``: with this cluster's
        ``synchronous_commit=off`` a crash loses the last commits, as it would anywhere."""
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        down()
        self._start_server()

    def stop(self) -> None:
        """Stop the server (no shutdown checkpoint: the data goes) and remove its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                          "stop")
        finally:
            self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Databases:
    """Creates and drops databases in a cluster through one admin connection."""

    # A database holding the levrt schema at head, made once and copied for each store
    # test: a copy costs about half of running the migrations on an empty one.
    MIGRATED = "lev_test_migrated"

    def __init__(self, cluster: PgCluster) -> None:
        import psycopg

        self.cluster = cluster
        self._admin = psycopg.connect(
            host="127.0.0.1", port=cluster.port, user=SERVER_USER, dbname="postgres",
            autocommit=True,
        )
        self._count = 0
        self._migrated = False
        self.create_seconds: list[float] = []

    def create(self, *, migrated: bool = False) -> str:
        """A new database, empty or (``migrated``) with the levrt schema; its name."""
        if migrated and not self._migrated:
            from levrt.store import Store

            self._admin.execute(f'CREATE DATABASE "{self.MIGRATED}" TEMPLATE template0')
            Store(self.cluster.url(self.MIGRATED)).close()
            self._migrated = True
        self._count += 1
        name = f"lev_test_{self._count}"
        template = f'"{self.MIGRATED}"' if migrated else "template0"
        started = time.perf_counter()
        # FILE_COPY: copying a small template file by file beats logging it page by page.
        self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE {template} STRATEGY FILE_COPY')
        self.create_seconds.append(time.perf_counter() - started)
        return name

    def drop(self, name: str) -> None:
        # FORCE ends what a test left connected (a server, a pool not closed).
        self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self._admin.close()


def store_url(request: pytest.FixtureRequest, kind: str) -> str:
    """A new empty database for a store test: ``memory`` (SQLite in memory), ``file`` (a
    SQLite file in the test's tmp_path) or ``postgresql`` (a database of the session's
    cluster with the schema in place: the ``pg_store_url`` fixture)."""
    if kind == "memory":
        return "sqlite://"
    if kind == "file":
        return f"sqlite:///{request.getfixturevalue('tmp_path') / 'levrt.db'}"
    if kind == "postgresql":
        return str(request.getfixturevalue("pg_store_url"))
    raise ValueError(f"unknown store kind {kind!r}")
