"""The store on PostgreSQL beyond the store tests (which run on both databases): URLs,
drivers and connection errors, time zones, concurrent first opens, and end to end: ``lev
run`` / ``lev show`` and ``lev serve --db`` on a database of the test session's cluster."""

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from helpers_pg import free_port

from levrt.store import Store, StoreError
from levrt.store._store import SCHEMA_HEAD, database_url

LEV = [sys.executable, "-m", "levrt"]

TOOLS = '''
from levrt import Cr, ctx, remote


def greet(word: str) -> Cr:
    @remote
    def entry():
        print("saying", word)
        ctx.set(word=word, length=len(word))
    return Cr("localhost/lev-test:latest", "test/greet@1.0", entry=entry())
'''

PACKAGE = '''"""Says a word."""
from levrt import Cr, annot, ctx, remote


def greet(word: str = "hi") -> Cr:
    @remote
    def entry():
        print("saying", word)
        ctx.set(word=word)
    return Cr("localhost/lev-test:latest", "test/greet@1.0", entry=entry())


__lev__ = annot.meta([greet])
'''


def test_postgresql_urls_use_psycopg_3():
    for url in ("postgresql://u:p@db.example/levrt", "postgres://u:p@db.example/levrt"):
        parsed = database_url(url)
        assert parsed.drivername == "postgresql+psycopg"
        assert (parsed.username, parsed.password, parsed.host) == ("u", "p", "db.example")
    assert database_url("postgresql+psycopg2://h/db").drivername == "postgresql+psycopg2"
    assert database_url("sqlite:///x.db").drivername == "sqlite"


def test_a_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg fails
    with pytest.raises(StoreError, match=r"driver 'psycopg' is not installed.*\.\[postgres\]"):
        Store("postgresql://u:secret@127.0.0.1/levrt")


def test_an_unreachable_server_is_one_line(pg_databases):
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError) as caught:
        Store(f"postgresql://u:secret@127.0.0.1:{port}/levrt")
    message = str(caught.value)
    assert f"cannot open the store at Store('postgresql+psycopg://u:***@127.0.0.1:{port}/levrt')" \
        in message
    assert "refused" in message and "\n" not in message and "secret" not in message
    with pytest.raises(StoreError, match='database "nosuch" does not exist'):
        Store(pg_databases.cluster.url("nosuch"))


def test_a_user_who_may_not_create_tables_is_told(pg_databases, pg_url):
    # PostgreSQL 15 lets only a database's owner create tables in its schema public.
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE lev_reader LOGIN")
    try:
        with pytest.raises(StoreError, match="cannot open the store.*permission denied"):
            Store(pg_url.replace("postgres@", "lev_reader@"))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP ROLE lev_reader")


def test_times_come_back_in_utc(pg_store_url):
    import psycopg

    # A session time zone far from UTC: the server hands back local times.
    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {pg_store_url.rsplit('/', 1)[1]} SET timezone = "
                     "'Asia/Kathmandu'")
    with Store(pg_store_url) as store:
        before = datetime.now(timezone.utc)
        job_id = store.create_job("tz")
        store.finish_job(job_id, "done")
        job = store.get_job(job_id)
    assert job["created_at"].utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) < job["created_at"] <= job["finished_at"]


def test_concurrent_first_opens_migrate_once(pg_url):
    # Several processes starting on one new database: the advisory lock lets one migrate.
    opened, errors = [], []

    def open_store():
        try:
            with Store(pg_url) as store:
                opened.append(store.create_job("first"))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(opened) == 4
    import psycopg

    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (SCHEMA_HEAD,)]


def test_nul_in_text_is_stored_as_the_replacement_character(pg_store_url):
    # PostgreSQL's text types refuse NUL, which a tool's output may hold; JSON escapes it.
    with Store(pg_store_url) as store:
        job_id = store.create_job("a\x00b", target="t\x00")
        store.append_logs(job_id, None, [("stdout", "binary \x00 output")])
        store.merge_document("c", job_id, None, {"raw": "a\x00b", "bytes": b"\x00"})
        store.finish_job(job_id, "failed", error="bad \x00 byte")
        job = store.get_job(job_id)
        assert (job["name"], job["target"], job["error"]) == ("a\ufffdb", "t\ufffd",
                                                              "bad \ufffd byte")
        assert [row["text"] for row in store.get_logs(job_id)] == ["binary \ufffd output"]
        assert store.list_documents(job_id)[0]["data"] == {"raw": "a\x00b", "bytes": b"\x00"}
        assert [job["id"] for job in store.list_jobs(search="a\x00b")] == [job_id]


def test_writers_take_turns_and_readers_do_not_wait(pg_store_url):
    with Store(pg_store_url) as first, Store(pg_store_url) as second:
        with first._write():
            writer = threading.Thread(target=second.create_job, args=("waits",))
            writer.start()
            writer.join(0.5)
            assert writer.is_alive()
            assert second.list_jobs() == []
        writer.join(10)
        assert not writer.is_alive()
        assert [job["name"] for job in second.list_jobs()] == ["waits"]


def test_racing_check_then_insert_writes_conflict_cleanly(pg_store_url):
    # Without the write lock, both see no user alice and one fails on the unique index.
    stores = [Store(pg_store_url) for _ in range(4)]
    outcomes = []

    def create(store):
        try:
            store.create_user("alice", "correct horse battery")
            outcomes.append("created")
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=create, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(outcomes) == ["HubConflictError"] * 3 + ["created"]


# -- end to end ---------------------------------------------------------------------------


def lev_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LEV_", "PYTEST_"))}
    return {**env, "LEV_HOME": str(tmp_path / "home"), "LEV_SERVER_EXECUTOR": "process",
            **extra}


def lev(argv, env, cwd, stdin=None) -> str:
    done = subprocess.run([*LEV, *map(str, argv)], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_lev_run_and_show_on_postgresql(pg_store_url, tmp_path):
    (tmp_path / "tools.py").write_text(TOOLS)
    env = lev_env(tmp_path, LEV_DB_URL=pg_store_url)
    lev(["run", "tools:greet", "--word", "ahoy", "-q"], env, tmp_path)
    with Store(pg_store_url) as store:
        [job] = store.list_jobs()
    assert job["status"] == "done"
    shown = json.loads(lev(["show", job["id"][:6], "--json"], env, tmp_path))
    assert shown["job"]["id"] == job["id"]
    assert [doc["data"] for doc in shown["documents"]] == [{"word": "ahoy", "length": 4}]
    assert "saying ahoy" in [line["text"] for line in shown["log"]]
    # Nothing went to the SQLite file of LEV_HOME.
    assert not (tmp_path / "home" / "levrt.db").exists()


def test_lev_serve_db_runs_a_task_on_postgresql(pg_store_url, tmp_path):
    folder = tmp_path / "hub" / "alice.greet"
    (folder / "lev" / "alice" / "greet").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "lev.alice.greet"\nversion = "1.0"\ndependencies = ["levrt"]\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["lev"]\n')
    (folder / "lev" / "alice" / "greet" / "__init__.py").write_text(PACKAGE)
    with Store(pg_store_url) as store:
        store.create_user("alice", "correct horse battery")
        token = store.create_token("alice", "test")["token"]
    lev(["hub", "load", folder.parent], lev_env(tmp_path, LEV_DB_URL=pg_store_url), tmp_path)

    # Only --db names the database: the server's environment has no LEV_DB_URL.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [*LEV, "serve", "--db", pg_store_url, "--host", "127.0.0.1", "--port", str(port)],
        env=lev_env(tmp_path), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        def call(method, path, body=None):
            request = urllib.request.Request(
                url + path, method=method, headers={"Authorization": f"Bearer {token}",
                                                    "Content-Type": "application/json"},
                data=None if body is None else json.dumps(body).encode())
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())

        deadline = time.monotonic() + 30
        while True:
            try:
                assert call("GET", "/health")[1]["status"] == "ok"
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "lev serve did not answer"
                time.sleep(0.1)
        status, task = call("POST", "/api/tasks",
                            {"target": "lev.alice.greet:greet", "params": {"word": "ahoy"}})
        assert status == 202, task
        deadline = time.monotonic() + 60
        while (bundle := call("GET", f"/api/tasks/{task['id']}")[1])["job"]["status"] in (
                "queued", "running"):
            assert time.monotonic() < deadline, bundle
            time.sleep(0.2)
        assert bundle["job"]["status"] == "done", bundle
        assert [doc["data"] for doc in bundle["documents"]] == [{"word": "ahoy"}]
    finally:
        server.terminate()
        server.wait(15)
        log.close()
    printed = (tmp_path / "server.log").read_text()
    assert re.search(r"created user admin with password", printed) is None  # alice exists
    with Store(pg_store_url) as store:
        assert [job["owner"] for job in store.list_jobs()] == ["alice"]
    assert not (tmp_path / "home" / "levrt.db").exists()
