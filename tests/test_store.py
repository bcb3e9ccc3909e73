import json
import os
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from helpers_pg import store_url
from sqlalchemy import create_engine, inspect, text

from levrt.store import Store, StoreError, default_home, default_url
from levrt.store import _store as store_module
from levrt.store.models import Base


def file_url(path: Path) -> str:
    return f"sqlite:///{path / 'levrt.db'}"


@pytest.fixture(params=["memory", "file", "postgresql"])
def store(request):
    with Store(store_url(request, request.param)) as s:
        yield s


@pytest.fixture(params=["file", "postgresql"])
def db_url(request, tmp_path):
    """A new empty database that outlives a Store object: a SQLite file or PostgreSQL."""
    return file_url(tmp_path) if request.param == "file" else request.getfixturevalue("pg_url")


@pytest.fixture
def file_store(tmp_path):
    s = Store(file_url(tmp_path))
    yield s
    s.close()


def fixed_ids(monkeypatch, *hexes):
    """Make the store hand out the given ids (zero-padded to a uuid) in order."""
    values = iter(uuid.UUID(h.ljust(32, "0")) for h in hexes)
    monkeypatch.setattr(store_module.uuid, "uuid4", lambda: next(values))


def alembic_config(conn) -> Config:
    config = Config()
    config.set_main_option("script_location", str(store_module.MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


# -- jobs ----------------------------------------------------------------------


def test_create_and_get_job(store):
    before = datetime.now(timezone.utc)
    job_id = store.create_job(
        "scan",
        target="10.0.0.1",
        params={"ports": [22, 80], "deep": True},
        executor="local",
        owner="alice",
    )
    assert len(job_id) == 12 and all(c in "0123456789abcdef" for c in job_id)
    job = store.get_job(job_id)
    assert set(job) == {
        "id",
        "name",
        "target",
        "package",
        "driver",
        "params",
        "executor",
        "owner",
        "placement",
        "status",
        "progress",
        "error",
        "result",
        "created_at",
        "started_at",
        "finished_at",
    }
    assert job["id"] == job_id
    assert job["name"] == "scan"
    assert job["target"] == "10.0.0.1"
    assert job["params"] == {"ports": [22, 80], "deep": True}
    assert job["executor"] == "local" and job["owner"] == "alice"
    assert job["placement"] is None  # the server's own runner
    assert job["status"] == "running"
    assert job["progress"] == 0.0
    assert job["error"] is None and job["finished_at"] is None
    assert job["created_at"].tzinfo is not None
    assert before - timedelta(seconds=1) <= job["created_at"] <= datetime.now(timezone.utc)
    assert job["started_at"] == job["created_at"]


def test_job_defaults_and_missing(store):
    job = store.get_job(store.create_job("bare"))
    assert job["target"] is None and job["params"] is None
    assert job["executor"] is None and job["owner"] is None
    assert store.get_job("000000000000") is None


def test_job_params_keep_python_values(store):
    params = {"pair": (1, 2), "blob": b"\x00\xff", "map": {1: "one"}}
    assert store.get_job(store.create_job("x", params=params))["params"] == params


def test_finish_job(store):
    job_id = store.create_job("x")
    store.finish_job(job_id, "failed", error="boom")
    job = store.get_job(job_id)
    assert job["status"] == "failed" and job["error"] == "boom"
    assert job["finished_at"].tzinfo is not None
    assert job["finished_at"] >= job["created_at"]


def test_finish_job_errors(store):
    job_id = store.create_job("x")
    with pytest.raises(ValueError, match="done, failed, cancelled"):
        store.finish_job(job_id, "finished")
    with pytest.raises(KeyError, match="nope"):
        store.finish_job("nope", "done")


def test_set_job_progress_clamps(store):
    job_id = store.create_job("x")
    store.set_job_progress(job_id, 0.25)
    assert store.get_job(job_id)["progress"] == 0.25
    store.set_job_progress(job_id, 7)
    assert store.get_job(job_id)["progress"] == 1.0
    store.set_job_progress(job_id, -3.0)
    assert store.get_job(job_id)["progress"] == 0.0
    with pytest.raises(ValueError, match="NaN"):
        store.set_job_progress(job_id, float("nan"))
    with pytest.raises(KeyError, match="nope"):
        store.set_job_progress("nope", 0.5)


def test_list_jobs_newest_first_with_filters(store):
    ids = [store.create_job(f"job{i}") for i in range(5)]
    store.finish_job(ids[1], "done")
    store.finish_job(ids[3], "done")
    assert [j["id"] for j in store.list_jobs()] == ids[::-1]
    assert [j["id"] for j in store.list_jobs(limit=2)] == [ids[4], ids[3]]
    assert [j["id"] for j in store.list_jobs(status="done")] == [ids[3], ids[1]]
    assert [j["id"] for j in store.list_jobs(status="running")] == [ids[4], ids[2], ids[0]]
    assert store.list_jobs(status="cancelled") == []


def test_queued_job_starts_once(store):
    job_id = store.create_job("later", owner="alice", queued=True)
    job = store.get_job(job_id)
    assert job["status"] == "queued" and job["started_at"] is None
    store.start_job(job_id, executor="process", driver="host:42")
    job = store.get_job(job_id)
    assert job["status"] == "running" and job["executor"] == "process"
    assert job["driver"] == "host:42"
    assert job["started_at"] >= job["created_at"]
    with pytest.raises(ValueError, match=f"job {job_id} is running, not queued"):
        store.start_job(job_id, executor="docker")
    with pytest.raises(KeyError, match="nope"):
        store.start_job("nope", executor=None)


def test_end_unfinished_job_leaves_a_finished_one_alone(store):
    queued, running, done = (store.create_job(n, queued=n == "q") for n in ("q", "r", "d"))
    store.finish_job(done, "done")
    assert store.end_unfinished_job(queued, "cancelled", error="before it started")
    assert store.end_unfinished_job(running, "failed", error="killed")
    assert not store.end_unfinished_job(done, "failed", error="too late")
    assert [store.get_job(i)["status"] for i in (queued, running, done)] == [
        "cancelled", "failed", "done"]
    assert store.get_job(done)["error"] is None
    assert store.get_job(queued)["error"] == "before it started"
    with pytest.raises(ValueError, match="done, failed, cancelled"):
        store.end_unfinished_job(running, "queued", error="")


def test_list_jobs_search_in_names_and_targets(store):
    scan = store.create_job("Nightly scan", target="lev.a.nmap.asset:server_port")
    other = store.create_job("audit", target="lev.b.web:crawl")
    odd = store.create_job("100%_done", target=None)
    assert [j["id"] for j in store.list_jobs(search="NMAP")] == [scan]
    assert [j["id"] for j in store.list_jobs(search="nightly")] == [scan]
    assert {j["id"] for j in store.list_jobs(search="a")} == {scan, other}
    # % and _ are text, not patterns.
    assert [j["id"] for j in store.list_jobs(search="%_")] == [odd]
    assert store.list_jobs(search="%") == [store.get_job(odd)]


def test_list_jobs_search_in_parameters_and_results(store):
    scan = store.create_job("scan", params={"ip": "127.0.0.1", "ports": "8088"})
    store.finish_job(scan, "done", result={"8088/tcp": "open"})
    other = store.create_job("other", params={"ip": "::1"})
    assert [j["id"] for j in store.list_jobs(search="127.0.0.1")] == [scan]
    assert [j["id"] for j in store.list_jobs(search="8088/TCP")] == [scan]
    assert [j["id"] for j in store.list_jobs(search="::1")] == [other]
    assert store.count_jobs(search="open") == 1


def test_list_jobs_oldest_first(store):
    ids = [store.create_job(f"job{i}", queued=True) for i in range(3)]
    assert [j["id"] for j in store.list_jobs(status="queued", oldest_first=True)] == ids


def test_count_runs(store):
    job_id = store.create_job("x")
    assert store.count_runs(job_id) == (0, 0)
    for run_id in range(3):
        store.create_run(job_id, run_id, name="n", image=None, schema=None, coll="c")
    store.finish_run(job_id, 1, status="done", exit_code=0)
    store.finish_run(job_id, 2, status="cancelled", exit_code=None)
    assert store.count_runs(job_id) == (3, 2)


def test_resolve_job(store, monkeypatch):
    fixed_ids(monkeypatch, "abcd11111111", "abcd22222222", "abce33333333")
    a, b, c = (store.create_job(n) for n in "abc")
    assert store.resolve_job(a) == a
    assert store.resolve_job("abcd1") == a
    assert store.resolve_job("ABCE") == c
    assert store.resolve_job(" abcd2 ") == b
    with pytest.raises(LookupError, match="no job matches 'ffff'"):
        store.resolve_job("ffff")
    with pytest.raises(LookupError) as info:
        store.resolve_job("abcd")
    assert str(info.value) == (
        "'abcd' matches 2 jobs: abcd11111111, abcd22222222; give more characters"
    )
    with pytest.raises(LookupError, match="at least 4"):
        store.resolve_job("abc")
    # LIKE wildcards in the prefix are literal characters, not patterns.
    with pytest.raises(LookupError, match="no job matches"):
        store.resolve_job("ab_d")
    with pytest.raises(LookupError, match="no job matches"):
        store.resolve_job("ab%%")


# -- runs ----------------------------------------------------------------------


def test_runs_lifecycle(store):
    job_id = store.create_job("wf")
    store.create_run(
        job_id,
        1,
        name="nmap",
        image="img:1",
        schema="nmap/v1",
        coll="hosts",
        spec={"args": ("-sV",)},
        namespace=["a", "b"],
    )
    store.create_run(job_id, 0, name="ping", image=None, schema=None, coll="ping")
    store.finish_run(job_id, 1, status="failed", exit_code=2, error="bad args")

    runs = store.list_runs(job_id)
    assert [r["run_id"] for r in runs] == [0, 1]
    first, second = runs
    assert set(first) == {
        "job_id",
        "run_id",
        "name",
        "image",
        "schema",
        "coll",
        "spec",
        "namespace",
        "status",
        "exit_code",
        "error",
        "started_at",
        "finished_at",
    }
    assert first["status"] == "running" and first["finished_at"] is None
    assert first["image"] is None and first["spec"] is None and first["namespace"] is None
    assert first["started_at"].tzinfo is not None
    assert second["job_id"] == job_id and second["name"] == "nmap"
    assert second["image"] == "img:1" and second["schema"] == "nmap/v1"
    assert second["coll"] == "hosts"
    assert second["spec"] == {"args": ("-sV",)}
    assert second["namespace"] == ["a", "b"]
    assert second["status"] == "failed" and second["exit_code"] == 2
    assert second["error"] == "bad args"
    assert second["finished_at"] >= second["started_at"]
    assert store.list_runs("000000000000") == []


def test_run_errors(store):
    job_id = store.create_job("wf")
    with pytest.raises(KeyError, match="no such job"):
        store.create_run("nope", 0, name="n", image=None, schema=None, coll="c")
    store.create_run(job_id, 0, name="n", image=None, schema=None, coll="c")
    with pytest.raises(ValueError, match="already exists"):
        store.create_run(job_id, 0, name="n", image=None, schema=None, coll="c")
    with pytest.raises(KeyError, match="no run 5"):
        store.finish_run(job_id, 5, status="done", exit_code=0)
    with pytest.raises(ValueError, match="run status"):
        store.finish_run(job_id, 0, status="ok", exit_code=0)
    assert len(store.list_runs(job_id)) == 1


def test_runs_recorded_together_are_recorded_all_or_none(store):
    job_id = store.create_job("wf")
    runs = [{"run_id": n, "name": f"r{n}", "image": None, "schema": None, "coll": "c"}
            for n in range(3)]
    store.create_runs(job_id, runs[:2])
    # Run 1 is taken: neither 2 nor 1 is recorded again.
    with pytest.raises(ValueError, match="already exists"):
        store.create_runs(job_id, [runs[2], runs[1]])
    assert [(r["run_id"], r["name"]) for r in store.list_runs(job_id)] == [(0, "r0"), (1, "r1")]
    with pytest.raises(KeyError, match="no such job"):
        store.create_runs("nope", runs)
    store.create_runs(job_id, runs[2:])
    assert [r["status"] for r in store.list_runs(job_id)] == ["running"] * 3


def test_a_runs_last_writes_are_stored_with_its_end_or_not_at_all(store):
    job_id = store.create_job("wf")
    store.create_run(job_id, 0, name="n", image=None, schema=None, coll="hosts")
    store.merge_document("hosts", job_id, 0, {"a": 1})
    store.finish_run(job_id, 0, status="done", exit_code=0, coll="hosts",
                     data={"b": ("x", b"\x00"), "a": 2})
    [doc] = store.find_documents(job_id=job_id)
    assert doc["data"] == {"a": 2, "b": ("x", b"\x00")}
    assert store.list_runs(job_id)[0]["status"] == "done"
    # No such run: the writes that came with its end are not kept either.
    with pytest.raises(KeyError, match="no run 7"):
        store.finish_run(job_id, 7, status="done", exit_code=0, coll="other", data={"c": 3})
    assert [d["coll"] for d in store.find_documents(job_id=job_id)] == ["hosts"]


def test_a_run_costs_one_statement_at_its_start_and_one_at_its_end(store):
    """What a command run costs the store: its row checked-and-inserted in one statement,
    and updated in one (besides the transactions' own BEGIN and COMMIT)."""
    from sqlalchemy import event

    job_id = store.create_job("wf")
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        if not statement.startswith(("BEGIN", "SELECT pg_advisory_xact_lock")):
            statements.append(statement.split()[0])

    event.listen(store._engine, "before_cursor_execute", seen)
    try:
        for run_id in range(3):
            store.create_run(job_id, run_id, name="n", image="i", schema=None, coll="c",
                             spec={"cmd": ["true"]}, namespace=[])
            store.finish_run(job_id, run_id, status="done", exit_code=0)
    finally:
        event.remove(store._engine, "before_cursor_execute", seen)
    assert statements == ["INSERT", "UPDATE"] * 3
    assert [r["status"] for r in store.list_runs(job_id)] == ["done"] * 3


# -- documents -----------------------------------------------------------------


def test_document_round_trips_python_values(store):
    data = {
        "raw": b"\x00\x01binary",
        "pair": (1, ("nested", b"x")),
        "ports": {22: "ssh", (1, 2): "tuple key"},
        "$dollar": {"$bytes": "not a tag"},
        "plain": [1, 2.5, None, True, "s"],
    }
    store.merge_document("hosts", "job1", 0, data)
    [doc] = store.find_documents()
    assert doc["data"] == data
    assert isinstance(doc["data"]["pair"], tuple)


def test_document_rejects_unstorable(store):
    with pytest.raises(TypeError, match="top-level keys must be str"):
        store.merge_document("c", "job1", None, {1: "x"})
    with pytest.raises(TypeError, match="object values cannot be stored"):
        store.merge_document("c", "job1", None, {"x": object()})
    with pytest.raises(TypeError, match="must be a dict"):
        store.merge_document("c", "job1", None, [("x", 1)])
    assert store.find_documents() == []


def test_merge_is_shallow_and_new_keys_win(store):
    store.merge_document("c", "job1", 0, {"a": 1, "nested": {"x": 1, "y": 2}})
    first = store.find_documents()[0]["updated_at"]
    store.merge_document("c", "job1", 0, {"a": 2, "b": 3, "nested": {"z": 9}})
    [doc] = store.find_documents()
    assert doc["data"] == {"a": 2, "b": 3, "nested": {"z": 9}}
    assert doc["updated_at"] >= first and doc["updated_at"].tzinfo is not None
    store.merge_document("c", "job1", 0, {})
    assert store.find_documents()[0]["data"] == {"a": 2, "b": 3, "nested": {"z": 9}}


def test_run_less_documents_are_separate(store):
    store.merge_document("c", "job1", None, {"who": "job"})
    store.merge_document("c", "job1", 0, {"who": "run0"})
    store.merge_document("c", "job1", None, {"more": 1})
    docs = store.find_documents(job_id="job1")
    assert [(d["run_id"], d["data"]) for d in docs] == [
        (None, {"who": "job", "more": 1}),
        (0, {"who": "run0"}),
    ]
    assert [d["run_id"] for d in store.find_documents(run_id=None)] == [None]
    assert [d["run_id"] for d in store.find_documents(run_id=0)] == [0]


def test_find_documents_filters_and_order(store):
    store.merge_document("scan.hosts", "job2", 1, {"n": 1})
    store.merge_document("scan.ports", "job1", 1, {"n": 2})
    store.merge_document("scan.hosts", "job1", 1, {"n": 3})
    store.merge_document("scan.hosts", "job1", 0, {"n": 4})
    store.merge_document("scan_x", "job1", None, {"n": 5})
    store.merge_document("other", "job1", None, {"n": 6})

    def ns(**filters):
        return [d["data"]["n"] for d in store.find_documents(**filters)]

    assert ns() == [6, 5, 4, 3, 2, 1]
    assert ns(job_id="job1") == [6, 5, 4, 3, 2]
    assert ns(coll="scan.hosts") == [4, 3, 1]
    assert ns(coll="scan.hosts", job_id="job1", run_id=1) == [3]
    assert ns(coll_prefix="scan.") == [4, 3, 2, 1]
    assert ns(coll_prefix="scan_") == [5]
    assert ns(coll_prefix="scan", run_id=None) == [5]
    assert ns(job_id="job3") == []
    assert [d["data"]["n"] for d in store.list_documents("job1")] == [6, 5, 4, 3, 2]
    assert set(store.find_documents()[0]) == {"coll", "job_id", "run_id", "data", "updated_at"}


def merge_from_threads(stores, threads=8, per_thread=25):
    errors = []
    barrier = threading.Barrier(threads)

    def work(i):
        try:
            target = stores[i % len(stores)]
            barrier.wait()
            for k in range(per_thread):
                target.merge_document("c", "job1", None, {f"t{i}k{k}": [i, k]})
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    [doc] = stores[0].find_documents()
    assert len(doc["data"]) == threads * per_thread
    assert doc["data"]["t7k24"] == [7, 24]


def test_concurrent_merges_lose_nothing_shared(db_url):
    # Two Store objects stand in for two processes sharing the database.
    first, second = Store(db_url), Store(db_url)
    try:
        merge_from_threads([first, second])
    finally:
        first.close()
        second.close()


def test_concurrent_merges_lose_nothing_memory():
    s = Store("sqlite://")
    try:
        merge_from_threads([s])
    finally:
        s.close()


# -- logs ----------------------------------------------------------------------


def test_logs_order_after_and_filters(store):
    store.append_logs("job1", None, [("job", "starting")])
    store.append_logs("job1", 0, [("stdout", "a"), ("stderr", "b")])
    store.append_logs("job2", 0, [("stdout", "other job")])
    store.append_logs("job1", 1, [("stdout", "c")])
    store.append_logs("job1", 0, [("stdout", "d")])

    rows = store.get_logs("job1")
    assert [r["text"] for r in rows] == ["starting", "a", "b", "c", "d"]
    assert set(rows[0]) == {"seq", "ts", "run_id", "stream", "text"}
    assert [r["run_id"] for r in rows] == [None, 0, 0, 1, 0]
    assert [r["stream"] for r in rows] == ["job", "stdout", "stderr", "stdout", "stdout"]
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert rows[0]["ts"].tzinfo is not None

    assert [r["text"] for r in store.get_logs("job1", after=seqs[2])] == ["c", "d"]
    assert store.get_logs("job1", after=seqs[-1]) == []
    assert [r["text"] for r in store.get_logs("job1", limit=2)] == ["starting", "a"]
    assert [r["text"] for r in store.get_logs("job1", after=seqs[0], limit=2)] == ["a", "b"]
    assert [r["text"] for r in store.get_logs("job1", run_id=0)] == ["a", "b", "d"]
    assert [r["text"] for r in store.get_logs("job1", run_id=None)] == ["starting"]
    assert store.get_logs("nope") == []


def test_append_logs_edge_cases(store):
    store.append_logs("job1", 0, [])
    assert store.get_logs("job1") == []
    with pytest.raises(ValueError, match="stdout, stderr, job"):
        store.append_logs("job1", 0, [("stdout", "fine"), ("stdlog", "bad")])
    assert store.get_logs("job1") == []


def test_log_tail(store):
    store.append_logs("job1", 0, [("stdout", f"line{i}") for i in range(30)])
    store.append_logs("job1", 1, [("stdout", "other run")])
    assert store.log_tail("job1", 0) == [f"line{i}" for i in range(10, 30)]
    assert store.log_tail("job1", 0, lines=3) == ["line27", "line28", "line29"]
    assert store.log_tail("job1", 1, lines=5) == ["other run"]
    assert store.log_tail("job1", 0, lines=0) == []
    assert store.log_tail("job1", 7) == []


# -- files ---------------------------------------------------------------------


def test_files(store):
    digest = store.put_file(b"hello", name="greeting.txt")
    assert digest == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert store.put_file(b"hello", name="again.txt") == digest
    assert store.put_file(bytearray(b"hello")) == digest
    assert store.get_file(digest) == b"hello"
    assert store.has_file(digest)
    empty = store.put_file(b"")
    assert store.get_file(empty) == b""
    missing = "sha256:" + "0" * 64
    assert not store.has_file(missing)
    with pytest.raises(KeyError, match=missing):
        store.get_file(missing)


# -- opening, persistence, migrations -------------------------------------------


def test_store_persists_and_reopens_without_migrating(db_url, monkeypatch):
    url = db_url
    with Store(url) as s:
        job_id = s.create_job("persist", params={"k": (1,)})
        s.create_run(job_id, 0, name="n", image=None, schema=None, coll="c")
        s.merge_document("c", job_id, 0, {"v": b"x"})
        s.append_logs(job_id, 0, [("stdout", "kept")])
        digest = s.put_file(b"file")

    def no_upgrade(*args, **kwargs):
        raise AssertionError("an up-to-date store must not run Alembic")

    monkeypatch.setattr(command, "upgrade", no_upgrade)
    reopened = Store.open(url)
    try:
        assert reopened.get_job(job_id)["params"] == {"k": (1,)}
        assert reopened.list_runs(job_id)[0]["name"] == "n"
        assert reopened.list_documents(job_id)[0]["data"] == {"v": b"x"}
        assert reopened.log_tail(job_id, 0) == ["kept"]
        assert reopened.get_file(digest) == b"file"
    finally:
        reopened.close()


def test_sqlite_connection_settings(file_store):
    with file_store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_store_creates_missing_directories(tmp_path):
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'levrt.db'}"
    with Store(url) as s:
        s.create_job("x")
    assert (tmp_path / "a" / "b" / "levrt.db").is_file()


def test_schema_head_constant_matches_scripts():
    config = Config()
    config.set_main_option("script_location", str(store_module.MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_heads() == [store_module.SCHEMA_HEAD]


def test_migrations_match_models(db_url):
    engine = create_engine(store_module.database_url(db_url))
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diffs == []
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            assert version == store_module.SCHEMA_HEAD
    finally:
        engine.dispose()


def test_upgrade_from_0002_keeps_jobs_as_started(db_url):
    url = db_url
    engine = create_engine(store_module.database_url(url))
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
        conn.execute(text(
            "INSERT INTO jobs (id, name, status, progress, created_at) "
            "VALUES ('aaaaaaaaaaaa', 'old', 'done', 1.0, '2026-01-02 03:04:05.000000')"))
    engine.dispose()
    with Store(url) as store:
        job = store.get_job("aaaaaaaaaaaa")
    assert job["started_at"] == job["created_at"]


def test_upgrade_to_0004_moves_document_fields_into_rows_and_back(tmp_path):
    url = file_url(tmp_path)
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0003")
        conn.execute(text(
            "INSERT INTO documents (job_id, run_id, coll, data, updated_at) VALUES "
            "('aaaaaaaaaaaa', 0, 'c', '{\"b\": [1, 2], \"a\": {\"x\": null}}', "
            "'2026-01-02 03:04:05.000000'), "
            "('aaaaaaaaaaaa', -1, 'empty', '{}', '2026-01-02 03:04:05.000000')"))
    engine.dispose()
    with Store(url) as store:
        docs = store.find_documents(job_id="aaaaaaaaaaaa")
        assert [(d["coll"], d["run_id"], d["data"]) for d in docs] == [
            ("empty", None, {}), ("c", 0, {"b": [1, 2], "a": {"x": None}})]
        assert list(docs[1]["data"]) == ["b", "a"]  # the order keys were set in
        store.merge_document("c", "aaaaaaaaaaaa", 0, {"a": 1, "z": 2})
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
            rows = conn.execute(text("SELECT coll, data FROM documents ORDER BY coll")).all()
        assert [(coll, json.loads(data)) for coll, data in rows] == [
            ("c", {"b": [1, 2], "a": 1, "z": 2}), ("empty", {})]
    finally:
        engine.dispose()


def test_downgrade_removes_everything(db_url):
    with Store(db_url) as store, store._engine.connect() as conn:
        with conn.begin():
            command.downgrade(alembic_config(conn), "base")
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}


def test_unknown_schema_revision_is_a_store_error(db_url):
    url = db_url
    Store(url).close()
    engine = create_engine(store_module.database_url(url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="'9999'.*upgrade levrt"):
        Store(url)


def test_bad_urls_are_store_errors(tmp_path):
    with pytest.raises(StoreError, match="invalid database URL"):
        Store("not a url")
    with pytest.raises(StoreError, match="driver package"):
        Store("nosuchdb://host/db")
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create the directory"):
        Store(f"sqlite:///{tmp_path / 'file' / 'levrt.db'}")
    with pytest.raises(StoreError, match="cannot open the store.*unable to open"):
        Store(f"sqlite:///{tmp_path}")


def test_repr_hides_password(file_store):
    assert "levrt.db" in repr(file_store)


# -- default locations ---------------------------------------------------------


def test_default_home(monkeypatch, tmp_path):
    monkeypatch.setenv("LEV_HOME", str(tmp_path / "lev"))
    assert default_home() == tmp_path / "lev"
    monkeypatch.delenv("LEV_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "levrt"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_home() == tmp_path / "home" / ".local" / "share" / "levrt"


def test_default_url_honours_lev_home(monkeypatch, tmp_path):
    home = tmp_path / "lev"
    monkeypatch.delenv("LEV_DB_URL", raising=False)
    monkeypatch.setenv("LEV_HOME", str(home))
    assert default_url() == f"sqlite:///{home / 'levrt.db'}"
    assert home.is_dir()
    with Store.open() as s:
        s.create_job("x")
    assert (home / "levrt.db").is_file()


def test_default_url_prefers_lev_db_url(monkeypatch, tmp_path):
    monkeypatch.setenv("LEV_HOME", str(tmp_path / "unused"))
    monkeypatch.setenv("LEV_DB_URL", "sqlite://")
    assert default_url() == "sqlite://"
    assert not (tmp_path / "unused").exists()
    with Store.open() as s:
        assert s.url == "sqlite://"


def _setter(count: int, one_call: bool):
    from levrt import Cr, ctx, remote

    @remote
    def entry():
        hosts = {f"host{n}": {"ip": f"10.0.{n // 256}.{n % 256}", "open": [22, 80]}
                 for n in range(count)}
        if one_call:
            ctx.set(hosts)
        else:
            for name, value in hosts.items():
                ctx.set({name: value})
    return Cr("python", entry=entry())


def test_ten_thousand_single_key_ctx_sets_make_one_whole_document(monkeypatch, tmp_path):
    import levrt

    monkeypatch.setenv("LEV_HOME", str(tmp_path / "home"))

    async def main() -> dict:
        doc = await _setter(10_000, False)
        return await doc.get()

    data = levrt.run(main(), executor="process", echo=False)
    assert len(data) == 10_000 and data["host9999"] == {"ip": "10.0.39.15", "open": [22, 80]}


def test_one_key_merged_into_a_large_document_writes_that_key_alone(store):
    """The cost of a merge follows what it writes, not the document it lands in: rewriting
    the whole document on each ctx.set made 10,000 single-key sets 100 times slower."""
    from sqlalchemy import event

    store.merge_document("hosts", "job1", 0, {f"host{n}": {"ip": "10.0.0.1", "open": [22]}
                                               for n in range(10_000)})
    sent: list[int] = []

    def seen(conn, cursor, statement, parameters, *args):
        sent.append(len(statement) + len(repr(parameters)))

    event.listen(store._engine, "before_cursor_execute", seen)
    try:
        store.merge_document("hosts", "job1", 0, {"host5": {"ip": "10.0.0.9", "open": []}})
    finally:
        event.remove(store._engine, "before_cursor_execute", seen)
    assert sum(sent) < 4_000, sent
    [doc] = store.find_documents()
    assert len(doc["data"]) == 10_000 and doc["data"]["host5"] == {"ip": "10.0.0.9", "open": []}


@pytest.fixture
def full_disk(tmp_path):
    """A 3 MiB tmpfs for LEV_HOME, to fill up (needs root: mount)."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


CHATTY = '''import sys
from levrt import Cr


async def main(marker: str):
    code = "for i in range(10**8): print('x' * 100, i)  # " + marker
    await Cr("python", cmd=[sys.executable, "-c", code])
'''


def test_a_full_disk_ends_the_run_and_the_job_with_one_error_line(full_disk, tmp_path):
    import subprocess
    import sys

    (tmp_path / "chatty.py").write_text(CHATTY)
    marker = f"chatty-{uuid.uuid4().hex}"
    env = {**os.environ, "LEV_HOME": str(full_disk), "LEV_EXECUTOR": "process"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "levrt", "run", "chatty.py:main", "--marker",
                           marker, "-q"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("lev: error: job ") and (
        f"store write failed: database or disk is full (LEV_HOME={full_disk})" in line), line
    assert elapsed < 30  # it hung for ever before
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == "", f"the run's processes outlived it: {left}"
    with Store(file_url(full_disk)) as store:
        [job] = store.list_jobs()
    assert job["status"] == "failed" and "store write failed" in job["error"]


def _fill(where: Path) -> Path:
    """Write zeros into ``where/filler`` until the file system refuses more."""
    filler = where / "filler"
    with open(filler, "wb", buffering=0) as file:
        try:
            while True:
                file.write(bytes(4096))
        except OSError:
            pass
    return filler


def test_a_full_disk_still_takes_a_jobs_end_from_the_reserve(full_disk):
    store = Store(file_url(full_disk))
    job_id = store.create_job("full")
    reserve = full_disk / "levrt.db.reserve"
    assert reserve.stat().st_size == store_module.RESERVE_BYTES
    filler = _fill(full_disk)
    with pytest.raises(StoreError, match="disk is full"):
        store.create_job("does not fit")
    store.finish_job(job_id, "failed", error="store write failed: disk full")
    assert not reserve.exists()
    store.close()
    with Store(file_url(full_disk)) as again:
        assert again.get_job(job_id)["status"] == "failed"
        # A new one is set aside whole (the WAL closed gave room back) or not at all.
        assert not reserve.exists() or reserve.stat().st_size == store_module.RESERVE_BYTES
    filler.unlink()
    with Store(file_url(full_disk)):
        assert reserve.stat().st_size == store_module.RESERVE_BYTES


SLEEPER = '''import sys
from levrt import Cr


async def main(marker: str):
    print("started", flush=True)
    await Cr("python", cmd=[sys.executable, "-c", "import time; time.sleep(120)  # " + marker])
'''


def test_a_job_whose_driver_was_killed_is_read_as_failed(tmp_path, monkeypatch, capsys):
    import signal
    import subprocess
    import sys

    from levrt._cli import cli_main

    home = tmp_path / "home"
    monkeypatch.setenv("LEV_HOME", str(home))
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    marker = f"sleeper-{uuid.uuid4().hex}"
    driver = subprocess.Popen([sys.executable, "-m", "levrt", "run", "sleeper.py:main",
                               "--marker", marker, "-q"], cwd=tmp_path,
                              env={**os.environ, "LEV_EXECUTOR": "process"})
    try:
        with Store(file_url(home)) as store:
            deadline = time.monotonic() + 60
            while not (store.list_jobs() and store.count_runs(store.list_jobs()[0]["id"])[0]):
                assert time.monotonic() < deadline, "the job never started its run"
                time.sleep(0.1)
            job_id = store.list_jobs()[0]["id"]
            assert store.get_job(job_id)["status"] == "running"
            driver.send_signal(signal.SIGKILL)
            driver.wait()
            job = store.get_job(job_id)
            assert job["status"] == "failed" and job["error"].startswith("driver gone: ")
            assert job["finished_at"] is not None
            assert [run["status"] for run in store.list_runs(job_id)] == ["failed"]
    finally:
        driver.kill()
        driver.wait()
        # The dead driver's tool, if the executor could not take it along: ours, by its id.
        left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
        for pid in left.split():
            os.kill(int(pid), signal.SIGKILL)
    assert cli_main(["jobs"]) == 0
    out = capsys.readouterr().out
    assert job_id in out and "failed" in out and "running" not in out
    assert cli_main(["show", job_id]) == 0
    assert "driver gone" in capsys.readouterr().out


def test_a_driver_pid_taken_by_another_process_is_gone(store):
    import socket

    from levrt._driver import driver_gone, driver_id

    me = driver_id()
    host, pid, started = me.split(":")
    assert host == socket.gethostname() and pid == str(os.getpid())
    assert not driver_gone(me) and not driver_gone(f"{host}:{pid}")
    assert driver_gone(f"{host}:{pid}:{int(started) + 1}")  # same pid, another process
    assert not driver_gone(f"elsewhere:{pid}:1")
    job = store.create_job("reused", driver=f"{host}:{pid}:{int(started) + 1}")
    assert store.get_job(job)["status"] == "failed"
    assert [j["id"] for j in store.list_jobs(status="running")] == []
    mine = store.create_job("mine", driver=me)
    assert store.get_job(mine)["status"] == "running"
