"""Job semantics of packages written for the original platform (issue 9): a mode that returns
its ``Cr`` un-awaited, ``exit()`` in a workflow, parameters named like ``lev run``'s own
options, ``bytes`` parameters, and where a failing job's traceback starts.

The fixture packages under ``tests/fixtures_packages/`` run through ``lev run`` as a real
process, on the process executor and on the docker executor (``localhost/lev-base:bookworm``).
"""

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

import levrt
from levrt import Cr, ctx, remote
from levrt.executors.docker import engine_url

FIXTURES = Path(__file__).resolve().parent / "fixtures_packages"
SRC = Path(levrt.__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["process", "docker"])
def executor(request):
    if request.param == "docker" and engine_url() is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true but no Docker API answers (scripts/engine.sh should start one)")
        pytest.skip("no Docker API answers here (see scripts/engine.sh)")
    return request.param


def lev(executor, lev_home, *argv, stdin=None):
    """``lev run`` of a fixture package as a real process: (exit code, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "LEV_HOME": str(lev_home)}
    proc = subprocess.run(
        [sys.executable, "-m", "levrt", "run", "--executor", executor, *argv],
        env=env, capture_output=True, text=True, timeout=120, input=stdin,
    )
    return proc.returncode, proc.stdout, proc.stderr


def run_json(executor, lev_home, *argv):
    code, out, err = lev(executor, lev_home, "--json", "-q", *argv)
    assert out, err
    return code, json.loads(out), err


# -- a mode written `async def ... -> Cr` ----------------------------------------------------


def test_a_mode_returning_its_cr_unawaited_runs_it(executor, lev_home):
    code, report, err = run_json(executor, lev_home, f"{FIXTURES}/fixt.async_cr:greet",
                                 "--who", "you")
    assert code == 0, err
    assert report["job"]["status"] == "done"
    assert [run["status"] for run in report["runs"]] == ["done"]
    assert report["documents"][0]["data"] == {"msg": "hey you"}
    assert report["result"] == {"msg": "hey you"}


def test_levrt_run_awaits_what_the_workflow_returns(store):
    @remote
    def entry():
        ctx.set(n=1)

    async def mode() -> Cr:
        return Cr("localhost/lev-base:bookworm", entry=entry())

    async def returns_a_coroutine():
        return mode()

    document = levrt.run(returns_a_coroutine(), store=store, executor="process", echo=False)
    assert asyncio.run(document.get()) == {"n": 1}
    (job,) = store.list_jobs()
    assert job["status"] == "done" and len(store.list_runs(job["id"])) == 1


# -- exit() in a workflow ----------------------------------------------------------------


def test_exit_after_doc_set_ends_the_job_done(executor, lev_home):
    code, report, err = run_json(executor, lev_home, f"{FIXTURES}/fixt.exit_flow:finish")
    assert code == 0, err
    assert report["job"]["status"] == "done" and report["job"]["error"] is None
    assert [doc["data"] for doc in report["documents"]] == [{"seen": True}]
    assert not any("never printed" in row["text"] for row in report["log"])


@pytest.mark.parametrize("code", [0, 3])
def test_sys_exit_code_decides_done_or_failed(executor, lev_home, code):
    status, report, err = run_json(executor, lev_home, f"{FIXTURES}/fixt.exit_flow:finish",
                                   "--code", str(code))
    assert [doc["data"] for doc in report["documents"]] == [{"seen": True}]
    if code == 0:
        assert (status, report["job"]["status"]) == (0, "done")
    else:
        assert (status, report["job"]["status"]) == (1, "failed")
        assert report["job"]["error"] == "exited with code 3"
        assert err.strip().endswith("failed: exited with code 3")
        assert "Traceback" not in err


def test_levrt_run_and_system_exit(store):
    async def quits(code):
        await levrt.lev.doc.set(before=code)
        raise SystemExit(code)

    assert levrt.run(quits(None), store=store, echo=False) is None
    with pytest.raises(SystemExit) as raised:
        levrt.run(quits("bad input"), store=store, echo=False)
    assert raised.value.code == "bad input"
    second, first = store.list_jobs()
    assert (first["status"], first["error"]) == ("done", None)
    assert (second["status"], second["error"]) == ("failed", "exited: bad input")
    assert store.list_documents(second["id"])[0]["data"] == {"before": "bad input"}


# -- tracebacks ----------------------------------------------------------------------------


def test_a_failing_run_traceback_starts_at_the_users_error(store):
    async def broken():
        raise ValueError("the user's own error")

    with pytest.raises(ValueError) as raised:
        levrt.run(broken(), store=store, echo=False)
    text = "".join(traceback.format_exception(raised.value))
    assert "no running event loop" not in text
    assert "During handling of the above exception" not in text
    assert raised.value.__context__ is None and raised.value.__cause__ is None


def test_a_failing_script_prints_only_its_own_traceback(tmp_path, lev_home):
    script = tmp_path / "main.py"
    script.write_text("import levrt\n\nasync def main():\n    raise KeyError('nope')\n\n"
                      "levrt.run(main())\n")
    env = {**os.environ, "PYTHONPATH": str(SRC), "LEV_HOME": str(lev_home)}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("Traceback") == 1 and "RuntimeError" not in proc.stderr
    assert proc.stderr.strip().endswith("KeyError: 'nope'")



# -- parameters named like lev run's own options -------------------------------------------


def test_parameters_named_like_lev_run_options_are_the_functions(executor, lev_home):
    target = f"{FIXTURES}/fixt.named:search"
    code, out, err = lev(executor, lev_home, "--name", "nightly", "--json", target,
                         "--name", "corpus", "--json", "--quiet", "2", "--executor", "x", "-q")
    assert code == 0, err
    report = json.loads(out)
    assert report["job"]["name"] == "nightly"  # lev run's, given before TARGET
    assert report["documents"][0]["data"] == {"name": "corpus", "json": True, "quiet": 2,
                                              "executor": "x"}


def test_help_says_which_options_the_parameters_take_over(lev_home):
    code, out, err = lev("process", lev_home, f"{FIXTURES}/fixt.named:search", "--help")
    assert code == 0, err
    assert "--name" in out and "corpus to search" in out
    assert "After TARGET, --executor, --json, --name, --quiet set parameters of search" in " ".join(
        out.split())


def test_options_of_lev_run_still_work_after_a_target_without_such_parameters(lev_home):
    code, out, err = lev("process", lev_home, f"{FIXTURES}/fixt.blob:digest", "--data", "x",
                         "--name", "hashing", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["job"]["name"] == "hashing"


# -- bytes parameters ----------------------------------------------------------------------


def test_bytes_from_text_and_from_a_file(executor, lev_home, tmp_path):
    blob = bytes(range(256)) * 4
    (tmp_path / "blob.bin").write_bytes(blob)
    target = f"{FIXTURES}/fixt.blob:digest"
    code, report, err = run_json(executor, lev_home, target, "--data", f"@{tmp_path}/blob.bin")
    assert code == 0, err
    assert report["documents"][0]["data"] == {
        "sha256": hashlib.sha256(blob).hexdigest(), "size": 1024,
        "head": {"$bytes": "AAECAwQFBgc="}}
    code, report, err = run_json(executor, lev_home, target, "--data", "héllo")
    assert code == 0, err
    assert report["documents"][0]["data"]["sha256"] == hashlib.sha256("héllo".encode()).hexdigest()
    code, report, err = run_json(executor, lev_home, target, "--params",
                                 '{"data": {"$bytes": "AAE="}}')
    assert code == 0, err
    assert report["documents"][0]["data"]["size"] == 2


def test_bytes_from_a_missing_file_is_one_line(lev_home, tmp_path):
    code, out, err = lev("process", lev_home, f"{FIXTURES}/fixt.blob:digest", "--data",
                         f"@{tmp_path}/nope")
    assert code == 2 and err.startswith("lev: error: --data: cannot read") and "\n" == err[-1]
    assert len(err.splitlines()) == 1


# -- a fan-out's runs are recorded together ---------------------------------------------------


def test_a_fan_outs_runs_are_recorded_in_one_store_call(store, monkeypatch):
    recorded = []
    create_runs = store.create_runs

    def counting(job_id, runs):
        recorded.append([run["run_id"] for run in runs])
        create_runs(job_id, runs)

    monkeypatch.setattr(store, "create_runs", counting)

    async def main():
        async with levrt.Concurrent() as c:
            for _ in range(12):
                c.start(Cr("none", cmd=["true"]))
        await Cr("none", cmd=["true"])

    levrt.run(main(), store=store, executor="process", echo=False)
    assert recorded == [list(range(12)), [12]]
    [job] = store.list_jobs()
    assert [run["status"] for run in store.list_runs(job["id"])] == ["done"] * 13


def test_a_run_cancelled_while_it_is_recorded_ends_cancelled(store):
    async def main():
        starting = asyncio.ensure_future(Cr("none", cmd=["true"]).start())
        await asyncio.sleep(0)  # its record is asked for, not yet written
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        return starting.cancelled()

    assert levrt.run(main(), store=store, executor="process", echo=False) is True
    [job] = store.list_jobs()
    [run] = store.list_runs(job["id"])
    assert (run["status"], run["error"]) == ("cancelled", "cancelled")


def test_a_run_the_store_refuses_fails_alone_and_records_are_bounded(store, monkeypatch):
    import levrt._job

    monkeypatch.setattr(levrt._job, "RECORD_BATCH", 5)
    calls = []
    create_runs = store.create_runs

    def refusing(job_id, runs):
        calls.append([run["run_id"] for run in runs])
        if any(run["run_id"] == 7 for run in runs):
            raise ValueError("run 7: its name is too long")
        create_runs(job_id, runs)

    monkeypatch.setattr(store, "create_runs", refusing)

    async def main():
        ended = await asyncio.gather(*(Cr("none", cmd=["true"]).done() for _ in range(12)),
                                     return_exceptions=True)
        return [type(end).__name__ for end in ended]

    ends = levrt.run(main(), store=store, executor="process", echo=False)
    assert ends == ["Document"] * 7 + ["ValueError"] + ["Document"] * 4
    assert calls == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [5], [6], [7], [8], [9], [10, 11]]


async def test_a_spread_run_whose_records_failed_answers_failed(store, monkeypatch):
    # What an agent answers for a run of a spread job: the driver does not record the run
    # again, so a run that exited 0 but whose output could not be stored must read failed.
    from levrt._cr import run_recorded
    from levrt.executors import RunSpec
    from levrt.executors.base import RunHandle
    from levrt.store import StoreWriteError

    class Ended(RunHandle):
        async def wait(self):
            return 0

        async def signal(self, sig):
            pass

        async def kill(self):
            pass

    class Executor:
        async def start(self, spec, observer):
            observer.on_log("stdout", ["a line the store cannot keep"])
            return Ended()

    def full(*args, **kwargs):
        raise StoreWriteError("disk full")

    job_id = store.create_job("wf")
    store.create_run(job_id, 0, name="n", image=None, schema=None, coll="c")
    monkeypatch.setattr(store, "run_log", full)
    spec = RunSpec(job_id=job_id, run_id=0, name="n", image="none", cmd=["true"])
    answer = await run_recorded(store, Executor(), spec, "c", lambda: None)
    assert answer == {"exit_code": 1, "error": "disk full"}
    [run] = store.list_runs(job_id)
    assert (run["status"], run["error"]) == ("failed", "disk full")
