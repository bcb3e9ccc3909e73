"""The SDK's semantics (docs/sdk.md) through the real process executor."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import helpers_tools as tools
import pytest

import levrt
from levrt import Concurrent, Cr, TaskFailed, lev
from levrt.store import Store


def run(coro, **kw):
    return levrt.run(coro, echo=False, **kw)


def test_closure_module_constants_and_helpers_travel():
    async def main():
        doc = await tools.capture("s", 7, 1.5, True, None, b"\x01\x02", [1, "a"], {"k": [1]})
        return await doc.get()

    data = run(main())
    assert data["s"] == "s" and data["i"] == 7 and data["f"] == 1.5
    assert data["b"] is True and data["n"] is None and data["raw"] == b"\x01\x02"
    assert data["items"] == [1, "a"] and data["mapping"] == {"k": [1]}
    assert data["helper"] == "hello:14" and data["const"] == "hello"
    assert data["limits"] == {"low": 1, "high": [2, 3]} and data["blob"] == b"\x00\xffdata"


def test_ctx_set_merges_positional_keywords_and_update():
    async def main():
        return await (await tools.setter()).get()

    data = run(main())
    assert data == {"a": 10, "b": 2, "c": 3, "d": "dict", "e": 5,
                    "f": ["scan", "-x", 1, "--long-opt", "v", "--flag"]}


def test_collection_names_follow_namespaces():
    async def main():
        names = [(await tools.tagged("h0")).coll.name, (await tools.tagged("h1", None)).coll.name]
        with lev / "a" / "b" as ns:
            assert lev.namespace == ("a", "b")
            names.append((await tools.tagged("h2")).coll.name)
            names.append((await tools.tagged("h3", None)).coll.name)
            with lev / "c":
                names.append((await tools.tagged("h4")).coll.name)
            await ns.set(summary="ns")
            assert await ns.get() == {"summary": "ns"}
            assert ns.coll.name == "b|a"
        assert lev.namespace == ()
        return names

    assert run(main()) == ["test/tag@1.0", "_", "test/tag@1.0|b|a", "b|a", "test/tag@1.0|c|b|a"]


def test_document_query_projection_all_and_job_doc():
    async def main():
        doc = await tools.tagged("host-1")
        assert await doc.get({"kind": "host"}) == {"name": "host-1", "kind": "host"}
        assert await doc.get({"kind": "other"}) is None
        assert await doc.get(projection={"name": 1}) == {"name": "host-1"}
        assert await doc.get(projection={"name": 0}) == {"kind": "host"}
        await doc.set({"extra": 1}, extra=2)
        assert (await doc.get())["extra"] == 1
        assert [d async for d in doc.all()] == [await doc.get()]
        assert doc.coll.name == "test/tag@1.0" and doc.filter["run"] == 0
        with lev / "scan" as ns:
            for name in ("h-a", "x-b", "h-c"):
                await tools.tagged(name)
            hosts = [d["name"] async for d in ns.all({"kind": "host"}, ["name"])]
        await lev.doc.set(total=3)
        assert await lev.doc.get() == {"total": 3}
        found = await doc.coll.find_one({"kind": "host"}, {"extra": 0})
        everything = [d async for d in lev.doc.all()]
        return hosts, found, len(everything), lev.job_id

    hosts, found, count, job_id = run(main())
    assert hosts == ["h-a", "h-c"]
    assert found == {"name": "host-1", "kind": "host"}
    assert count == 4
    store = Store.open()
    assert store.get_job(job_id)["status"] == "done"
    rows = store.find_documents(job_id=job_id, run_id=None)
    assert [(r["coll"], r["data"]) for r in rows] == [("_", {"total": 3})]


def test_lev_outside_a_job_raises_lookup_error():
    for attribute in ("job_id", "namespace", "doc"):
        with pytest.raises(LookupError, match="levrt.run"):
            getattr(lev, attribute)
    with pytest.raises(RuntimeError, match="lev.doc.set"):
        lev.set(a=1)


def test_concurrent_limit_bounds_live_runs():
    async def main():
        async with Concurrent(limit=2) as c:
            tasks = [c.start(tools.sleeper(0.3)) for _ in range(6)]
        return [await (await t).get() for t in tasks]

    results = run(main())
    assert [r["slept"] for r in results] == [0.3] * 6
    edges = sorted([(r["span"][0], 1) for r in results] + [(r["span"][1], -1) for r in results])
    alive = peak = 0
    for _, step in edges:
        alive += step
        peak = max(peak, alive)
    assert peak == 2


def test_concurrent_progress_weights_and_failures_reraise():
    async def main():
        async with Concurrent()(3, 1) as c:
            ok = c.start(tools.tagged("h"))
            bad = c.start(tools.failing(3))
        assert (await (await ok).get())["name"] == "h"
        with pytest.raises(TaskFailed) as info:
            await bad
        return info.value, lev.job_id

    failure, job_id = run(main())
    assert failure.exit_code == 3
    store = Store.open()
    assert store.get_job(job_id)["progress"] == 1.0
    log = [row["text"] for row in store.get_logs(job_id)]
    assert any("child 1 failed: TaskFailed" in line for line in log)


def test_concurrent_accepts_coroutines():
    async def pair(name):
        return (await (await tools.tagged(name)).get())["name"]

    async def main():
        async with Concurrent(limit=1) as c:
            tasks = [c.start(pair(n)) for n in ("h1", "h2")]
        return [t.result() for t in tasks]

    assert run(main()) == ["h1", "h2"]


def test_task_failed_carries_exit_code_and_log_tail():
    async def main():
        await tools.failing(4)

    with pytest.raises(TaskFailed) as info:
        run(main())
    assert info.value.exit_code == 4
    assert "about to fail" in info.value.log_tail
    assert "exited with 4" in str(info.value)


def test_entry_exception_names_the_error():
    async def main():
        await tools.raising()

    with pytest.raises(TaskFailed) as info:
        run(main())
    assert info.value.exit_code == 1
    assert "RuntimeError: tool exploded" in str(info.value)
    assert any("helpers_tools.py" in line for line in info.value.log_tail)


def test_missing_tool_binary_shows_in_log_tail():
    async def main():
        await tools.missing_binary()

    with pytest.raises(TaskFailed) as info:
        run(main())
    assert any("lev-no-such-tool" in line for line in info.value.log_tail)


def test_cmd_runs_as_subprocess_with_log():
    async def main():
        code = "import sys; print('out'); print('err', file=sys.stderr)"
        await tools.command([sys.executable, "-c", code])
        return lev.job_id

    job_id = run(main())
    logs = {(r["stream"], r["text"]) for r in Store.open().get_logs(job_id)}
    assert ("stdout", "out") in logs and ("stderr", "err") in logs


def test_workflow_print_and_logger_go_to_job_log(capsys):
    import logging

    async def main():
        print("from the workflow")
        logging.getLogger("lev").info("from the logger")
        return lev.job_id

    job_id = levrt.run(main())
    texts = [r["text"] for r in Store.open().get_logs(job_id)]
    assert "from the workflow" in texts
    assert any("from the logger" in t for t in texts)
    assert "from the workflow" in capsys.readouterr().out


def test_run_records_job_name_failure_and_result():
    async def boom():
        raise ValueError("bad")

    with pytest.raises(ValueError):
        run(boom(), db="my-job")
    job = Store.open().list_jobs()[0]
    assert job["name"] == "my-job" and job["status"] == "failed" and "bad" in job["error"]


def test_cancelling_a_workflow_leaves_no_process():
    seconds = f"60.{os.getpid()}"

    async def workflow():
        async with Concurrent(limit=3) as c:
            for _ in range(3):
                c.start(tools.spawner(seconds))

    async def main():
        job = asyncio.ensure_future(levrt.arun(workflow()))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if len(tools.processes("sleep", seconds)) == 3:
                break
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(main())
    assert tools.processes("sleep", seconds) == []
    job = Store.open().list_jobs()[0]
    assert job["status"] == "cancelled"
    assert {r["status"] for r in Store.open().list_runs(job["id"])} == {"cancelled"}


def test_task_signal_and_started_runs_end_with_the_job():
    async def main():
        task = await tools.sleeper(30).start()
        assert task.id == 0 and task.host
        await task.signal("SIGTERM")
        with pytest.raises(TaskFailed) as info:
            await task
        assert info.value.exit_code == -signal.SIGTERM
        await tools.sleeper(30).start()  # never awaited: killed when the job ends
        return lev.job_id

    job_id = run(main())
    runs = Store.open().list_runs(job_id)
    assert [r["status"] for r in runs] == ["failed", "cancelled"]


def test_await_cr_outside_a_job_is_a_clear_error():
    async def main():
        await tools.tagged("x")

    with pytest.raises(LookupError, match="levrt.run"):
        asyncio.run(main())


def test_run_inside_event_loop_is_refused():
    async def inner():
        return 1

    async def main():
        with pytest.raises(RuntimeError, match="arun"):
            levrt.run(inner())

    asyncio.run(main())


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists() and not os.environ.get("CI"),
                    reason="bubblewrap not installed")
def test_files_bytes_str_path_visible_at_absolute_paths(tmp_path):
    local = tmp_path / "targets.txt"
    local.write_text("127.0.0.1\n")
    files = {"/lev-in/a.bin": b"\x00\x01", "/lev-in/sub/b.txt": "text ü",
             "/etc/lev-test.conf": local, "/tmp/c.txt": "tmp"}

    async def main():
        return await (await tools.reader(list(files), files)).get()

    data = run(main())["contents"]
    assert data == {"/lev-in/a.bin": b"\x00\x01", "/lev-in/sub/b.txt": "text ü".encode(),
                    "/etc/lev-test.conf": b"127.0.0.1\n", "/tmp/c.txt": b"tmp"}
    assert not Path("/lev-in").exists() and not Path("/etc/lev-test.conf").exists()


def test_files_from_the_store_by_digest():
    store = Store.open()
    digest = store.put_file(b"stored")
    store.close()

    async def main():
        return await (await tools.reader(["/lev-in/s"], {"/lev-in/s": digest})).get()

    assert run(main())["contents"] == {"/lev-in/s": b"stored"}


@pytest.mark.parametrize("value", [None, 3, 1.5, ["a"], {"a": 1}, object()])
def test_files_refuse_other_types_naming_the_path(value):
    with pytest.raises(ValueError, match="/in/x"):
        Cr("img", files={"/in/x": value})


def test_files_refuse_relative_paths_and_missing_local_files(tmp_path):
    with pytest.raises(ValueError, match="absolute"):
        Cr("img", files={"in/x": b""})
    with pytest.raises(ValueError, match="cannot read"):
        Cr("img", files={"/in/x": tmp_path / "missing"})


def test_services_and_links_name_the_container_executor():
    async def main():
        await Cr("img", cmd=["true"], services={"db": Cr("postgres")})

    with pytest.raises(levrt.executors.ExecutorError, match="LEV_EXECUTOR=docker"):
        run(main())


def test_cli_builds_argv():
    assert levrt.cli("nmap", "-sn", x=1, long_opt="v", flag=True, off=False, gone=None) == [
        "nmap", "-sn", "-x", 1, "--long-opt", "v", "--flag"]
