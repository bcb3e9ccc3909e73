"""The ``lev`` command, driven in-process through ``cli_main`` and as a real process.

Entries run through the process executor (a Python subprocess per run), so these
tests exercise the whole path from argv to stored documents.
"""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

import levrt
from levrt._cli import CliError, LiveDisplay, cli_main, option_values
from levrt._job import RunInfo
from levrt.store import Store

TOOLS = '''
"""Test tools: no binaries needed, the entries only report what they were given."""
import threading

from levrt import Cr, annot, cli, ctx, remote


@annot.meta(desc="find live hosts", params=[annot.Param("ip", "hosts to probe")])
def alive(ip: str, count: int = 2) -> Cr:
    @remote
    def entry():
        print("probing", ip)
        ctx.set(alive=[f"{ip}.{i}" for i in range(count)], raw=b"\\x00\\x01\\x02")
    return Cr("localhost/lev-test:latest", "test/alive@1.0", entry=entry())


def ports(host: str, ports: list[int], verbose: bool = False) -> Cr:
    @remote
    def entry():
        ctx.set(host=host, open=ports, verbose=verbose)
    return Cr("localhost/lev-test:latest", "test/ports@1.0", entry=entry())


def broken(ip: str) -> Cr:
    @remote
    def entry():
        print("connecting to", ip)
        raise RuntimeError("target unreachable")
    return Cr("localhost/lev-test:latest", "test/broken@1.0", entry=entry())


def nap(seconds: float = 30.0) -> Cr:
    @remote
    def entry():
        import time
        print("napping", flush=True)
        time.sleep(seconds)
    return Cr("localhost/lev-test:latest", entry=entry())


def echo(word: str) -> Cr:
    return Cr("localhost/lev-test:latest", cmd=cli("echo", word, "done"))


def argv(target: str) -> Cr:
    @remote
    def entry():
        ctx.set(argv=cli("nmap", "-sn", target, top_ports=10))
    return Cr("localhost/lev-test:latest", "test/argv@1.0", entry=entry())


def unsendable(ip: str) -> Cr:
    lock = threading.Lock()

    @remote
    def entry():
        print(ip, lock)
    return Cr("localhost/lev-test:latest", entry=entry())
'''

FLOWS = '''
from levrt import Concurrent

import tools


async def sweep(ip: str, hosts: int = 2) -> list:
    found = await (await tools.alive(ip, hosts)).get()
    async with Concurrent(limit=2) as c:
        tasks = [c.start(tools.ports(host, [22, 80])) for host in found["alive"]]
    print("swept", len(tasks))
    return [(await (await task).get())["host"] for task in tasks]


async def crash(ip: str) -> None:
    await tools.alive(ip, 1)
    raise ValueError(f"no route to {ip}")


async def sleepy() -> None:
    await tools.nap()


def helper(x: int) -> int:
    return x


NOT_CALLABLE = 5
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with a tool module and a workflow module, as the working directory,
    and a private LEV_HOME; imports made by a test are forgotten after it."""
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "flows.py").write_text(FLOWS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEV_HOME", str(tmp_path / "home"))
    for name in ("LEV_DB_URL", "LEV_EXECUTOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if name == "lev" or name.startswith("lev.") or file.startswith(str(tmp_path)):
            del sys.modules[name]


def lev(capsys, *argv):
    code = cli_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def jobs_in_store():
    with Store.open() as store:
        return store.list_jobs()


def error_lines(err):
    """stderr lines that are not the plain display's progress lines."""
    return [line for line in err.splitlines() if not line.startswith("[")]


# -- lev run -----------------------------------------------------------------------------


def test_run_tool_prints_job_and_document(project, capsys):
    code, out, err = lev(capsys, "run", "tools:alive", "--ip", "10.0.0.1", "--count", "3")

    assert code == 0, err
    (job,) = jobs_in_store()
    assert job["status"] == "done"
    assert job["target"] == "tools:alive"
    assert job["params"] == {"ip": "10.0.0.1", "count": 3}
    assert job["id"] in out
    assert "test/alive@1.0 · run 0" in out
    assert "'10.0.0.1.2'" in out
    assert "<3 bytes>" in out
    assert "[run 0 alive.entry] started" in err
    assert "[run 0] probing 10.0.0.1" in err
    assert "[run 0 alive.entry] finished (exit 0, " in err


def test_run_workflow_json(project, capsys):
    code, out, err = lev(capsys, "run", "flows.py:sweep", "--ip", "10.0.0.1", "--json")

    assert code == 0, err
    report = json.loads(out)
    assert set(report) == {"job", "runs", "documents", "log", "log_more", "result"}
    assert report["job"]["status"] == "done"
    assert report["job"]["name"] == "sweep"
    datetime.fromisoformat(report["job"]["created_at"])
    assert [run["name"] for run in report["runs"]] == ["alive.entry", "ports.entry", "ports.entry"]
    assert {run["status"] for run in report["runs"]} == {"done"}
    by_coll = {}
    for document in report["documents"]:
        by_coll.setdefault(document["coll"], []).append(document["data"])
    assert by_coll["test/alive@1.0"] == [
        {"alive": ["10.0.0.1.0", "10.0.0.1.1"], "raw": {"$bytes": "AAEC"}}
    ]
    assert sorted(d["host"] for d in by_coll["test/ports@1.0"]) == ["10.0.0.1.0", "10.0.0.1.1"]
    assert by_coll["test/ports@1.0"][0]["open"] == [22, 80]
    texts = [line["text"] for line in report["log"]]
    assert "swept 2" in texts
    assert "probing 10.0.0.1" in texts
    assert report["result"] == ["10.0.0.1.0", "10.0.0.1.1"]


def test_run_tool_json_result_is_the_document(project, capsys):
    code, out, _ = lev(capsys, "run", "tools:alive", "--ip", "h", "--count=1", "--json", "-q")
    assert code == 0
    assert json.loads(out)["result"] == {"alive": ["h.0"], "raw": {"$bytes": "AAEC"}}


def test_failing_tool_is_one_line_and_exit_1(project, capsys):
    code, out, err = lev(capsys, "run", "tools:broken", "--ip", "10.9.9.9", "--quiet")

    assert code == 1
    (job,) = jobs_in_store()
    assert job["status"] == "failed"
    assert err == (
        f"lev: error: job {job['id']} failed: run 0 (broken.entry) exited with 1: "
        "RuntimeError: target unreachable\n"
    )
    assert job["id"] in out  # the summary still shows what there is


def test_failing_tool_with_display_has_no_traceback_of_lev(project, capsys):
    code, _, err = lev(capsys, "run", "tools:broken", "--ip", "10.9.9.9")

    assert code == 1
    # The entry's own traceback is part of its run's log, shown prefixed; lev adds none.
    assert not [line for line in err.splitlines() if line.startswith("Traceback")]
    assert "[run 0] RuntimeError: target unreachable" in err
    assert error_lines(err) == [err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith("lev: error: job ")


def test_workflow_exception_shows_type_message_and_user_line(project, capsys):
    code, out, err = lev(capsys, "run", "flows:crash", "--ip", "1.2.3.4", "-q")

    assert code == 1
    (job,) = jobs_in_store()
    raise_line = FLOWS.splitlines().index('    raise ValueError(f"no route to {ip}")') + 1
    assert err == (
        f"lev: error: job {job['id']} failed: ValueError: no route to 1.2.3.4 "
        f"(at {project / 'flows.py'}:{raise_line})\n"
    )
    assert "test/alive@1.0" in out  # the run that finished before the crash


def test_unsendable_value_is_a_job_failure(project, capsys):
    code, _, err = lev(capsys, "run", "tools:unsendable", "--ip", "x", "-q")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "entry 'entry'" in err and "lock" in err and "cannot be sent" in err


def test_sync_function_not_returning_a_cr(project, capsys):
    code, _, err = lev(capsys, "run", "flows:helper", "--x", "3", "-q")
    assert code == 1
    assert "TypeError: helper returned int, not a Cr" in err


def test_bad_param_value_exit_2_and_no_job(project, capsys):
    code, out, err = lev(capsys, "run", "tools:alive", "--ip", "h", "--count", "abc")

    assert (code, out) == (2, "")
    assert err == "lev: error: --count: expected an int, got 'abc'\n"
    assert jobs_in_store() == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tools:alive"], "lev: error: --ip: missing; this parameter has no default"),
        (["tools:alive", "--ip", "h", "--prot", "1"],
         "lev: error: --prot: unknown parameter; alive takes --ip, --count"),
        (["tools:alive", "--ip"], "lev: error: --ip: needs a value"),
        (["tools:alive", "--ip", "h", "stray"], "lev: error: unexpected argument 'stray'"),
        (["tools:alive", "--ip", "h", "--params", "[1]"],
         "lev: error: --params: expected a JSON object, got list"),
        (["tools:alive", "--ip", "h", "--params", "{"], "lev: error: --params: not valid JSON"),
        (["tools:alive", "--ip", "h", "--executor", "nope"],
         "lev: error: --executor: unknown executor 'nope'"),
        (["nosuch.mod:f"], "lev: error: cannot import 'nosuch.mod': No module named 'nosuch'"),
        (["tools:nope"], "lev: error: tools has no 'nope'; it has: alive, argv, broken, echo, "
                         "nap, ports, unsendable"),
        (["flows:NOT_CALLABLE"], "lev: error: flows:NOT_CALLABLE is not a function: it is int 5"),
        (["tools:Cr"], "lev: error: tools:Cr is not a function: it is the class Cr"),
        (["missing.py:f"], "lev: error: no such file: missing.py"),
        (["tools"], "lev: error: TARGET 'tools' must be module.path:function"),
        ([], "lev: error: lev run needs a TARGET"),
    ],
)
def test_usage_errors_are_one_line(project, capsys, argv, message):
    code, out, err = lev(capsys, "run", *argv)
    assert (code, out) == (2, "")
    assert err.startswith(message)
    assert len(err.splitlines()) == 1


def test_error_at_import_names_the_user_line(project, capsys):
    (project / "oops.py").write_text("x = 1\nraise KeyError('setting')\n")
    code, _, err = lev(capsys, "run", "oops:f")
    assert code == 2
    assert err == (
        f"lev: error: cannot import 'oops': KeyError: 'setting' (at {project}/oops.py:2)\n"
    )


def test_bool_flags_lists_and_json_params(project, capsys):
    def run(*options):
        code, out, err = lev(capsys, "run", "tools:ports", "--json", "-q", *options)
        assert code == 0, err
        return json.loads(out)["result"]

    assert run("--host", "h", "--ports", "22", "--ports", "80", "--verbose") == {
        "host": "h", "open": [22, 80], "verbose": True}
    assert run("--host", "h", "--ports", "22,80", "--verbose", "no")["verbose"] is False
    assert run("--host", "h", "--ports", "[443]", "--no-verbose")["open"] == [443]
    # Explicit options win over --params.
    assert run("--params", '{"host": "j", "ports": [1], "verbose": true}', "--host", "h") == {
        "host": "h", "open": [1], "verbose": True}


def test_levrt_cli_builds_argv_with_the_lev_command_loaded(project, capsys):
    import levrt._cli  # noqa: F401 - what the lev script imports first

    assert levrt.cli("nmap", "-sn", x=1, top_ports=10, on=True, off=False) == [
        "nmap", "-sn", "-x", 1, "--top-ports", 10, "--on"]
    code, out, err = lev(capsys, "run", "tools:echo", "--word", "hi", "--json")
    assert code == 0, err
    assert [line["text"] for line in json.loads(out)["log"]][-1:] == ["hi done"]
    code, out, err = lev(capsys, "run", "tools:argv", "--target", "h", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["result"] == {"argv": ["nmap", "-sn", "h", "--top-ports", 10]}


def test_bad_config_is_one_line(project, capsys):
    home = project / "home"
    home.mkdir()
    (home / "config.toml").write_text('executor = "spaceship"\n')
    code, out, err = lev(capsys, "run", "tools:alive", "--ip", "h")
    assert (code, out) == (2, "")
    assert err.startswith("lev: error: ") and "spaceship" in err
    assert len(err.splitlines()) == 1


def test_job_name_option(project, capsys):
    code, _, _ = lev(capsys, "run", "tools:alive", "--ip", "h", "--name", "nightly", "-q")
    assert code == 0
    assert jobs_in_store()[0]["name"] == "nightly"


def test_job_option_runs_a_queued_job_once(project, capsys):
    with Store.open() as store:
        job_id = store.create_job("queued scan", target="tools:alive", owner="alice",
                                  queued=True, params={"ip": "h"})
    # The parameters are the job's: given again, they are refused, never merged.
    code, _, err = lev(capsys, "run", "tools:alive", "--ip", "x", "--job", job_id, "-q")
    assert code == 2 and "--job runs the parameters its job records" in err
    code, _, err = lev(capsys, "run", "--job", job_id, "-q", "tools:alive")
    assert code == 0, err
    (job,) = jobs_in_store()
    assert (job["id"], job["status"], job["name"], job["owner"]) == (
        job_id, "done", "queued scan", "alice")
    assert job["started_at"] is not None and job["executor"] == "process"
    assert job["driver"].startswith(f"{socket.gethostname()}:{os.getpid()}:")  # who ran it
    # Once started, it is no longer queued: a second lev run of it does nothing.
    code, _, err = lev(capsys, "run", "tools:alive", "--job", job_id, "-q")
    assert code == 1 and err == f"lev: error: job {job_id} is done, not queued: it cannot " \
        "start again\n"
    assert jobs_in_store()[0]["status"] == "done"


def test_run_help_lists_the_parameters(project, capsys):
    code, out, _ = lev(capsys, "run", "tools:alive", "--help")
    assert code == 0
    assert "usage: lev run" in out
    assert "--ip" in out and "hosts to probe" in out and "(required)" in out


def test_option_values():
    names, flags = {"ping_all", "ports", "argv"}, {"ping_all"}
    assert option_values(["--ping-all", "--ports", "80"], names, flags) == {
        "ping_all": "true", "ports": "80"}
    assert option_values(["--ping_all", "off"], names, flags) == {"ping_all": "off"}
    assert option_values(["--no-ping-all"], names, flags) == {"ping_all": "false"}
    assert option_values(["--argv=--top-ports", "--argv", "-sV"], names, flags) == {
        "argv": ["--top-ports", "-sV"]}
    # Not a parameter: left for convert to report (or to take, with **kwargs).
    assert option_values(["--typo"], names, flags) == {"typo": "true"}
    with pytest.raises(CliError, match="unexpected argument 'x'"):
        option_values(["x"], names, flags)


# -- hub package folders -----------------------------------------------------------------


def write_hub(root: Path) -> Path:
    hub = root / "lev-hub"
    files = {
        "zz.scan/lev/zz/scan/__init__.py": """
            from levrt import annot
            from . import scan
            __lev__ = annot.meta([scan])
        """,
        "zz.scan/lev/zz/scan/scan.py": """
            from levrt import Cr, annot, ctx, remote

            @annot.meta(desc="live hosts")
            def alive(ip: str) -> Cr:
                @remote
                def entry():
                    ctx.set(alive=[ip + "-a", ip + "-b"])
                return Cr("localhost/lev-scan:latest", "zz/alive@1.0", entry=entry())
        """,
        "zz.recon/lev/zz/recon/__init__.py": """
            from levrt import annot
            from .asset import recon
            __lev__ = annot.meta([recon])
        """,
        "zz.recon/lev/zz/recon/asset.py": """
            from lev.zz.scan import scan

            async def recon(ip: str) -> list:
                data = await (await scan.alive(ip)).get()
                return data["alive"]
        """,
        "zz.recon/lev/zz/recon/extra.py": """
            async def hidden(word: str) -> str:
                return word.upper()
        """,
    }
    for name, text in files.items():
        path = hub / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return hub


def test_package_dir_target_imports_sibling_packages(project, capsys):
    write_hub(project)
    code, out, err = lev(capsys, "run", "lev-hub/zz.recon:recon", "--ip", "10.1.1.1", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["result"] == ["10.1.1.1-a", "10.1.1.1-b"]
    assert [d["coll"] for d in report["documents"]] == ["zz/alive@1.0"]


def test_package_dir_finds_functions_in_submodules_and_modes(project, capsys):
    write_hub(project)
    code, out, err = lev(capsys, "run", "lev-hub/zz.recon:hidden", "--word", "hi", "--json")
    assert code == 0, err
    assert json.loads(out)["result"] == "HI"
    code, out, err = lev(capsys, "run", "lev-hub/zz.scan:scan.alive", "--ip", "h", "--json")
    assert code == 0, err
    assert json.loads(out)["result"] == {"alive": ["h-a", "h-b"]}


def test_package_dir_errors(project, capsys):
    write_hub(project)
    (project / "plain").mkdir()
    code, _, err = lev(capsys, "run", "lev-hub/zz.scan:scan")
    assert code == 2
    assert err == "lev: error: lev-hub/zz.scan:scan is a module, not a function; " \
                  "name one of: scan.alive\n"
    code, _, err = lev(capsys, "run", "./plain:f")
    assert code == 2
    assert "plain is not a hub package folder" in err


# -- lev jobs / lev show -----------------------------------------------------------------


def test_jobs_and_show(project, capsys):
    assert lev(capsys, "run", "tools:alive", "--ip", "a", "-q")[0] == 0
    assert lev(capsys, "run", "tools:broken", "--ip", "b", "-q")[0] == 1
    done, failed = sorted(jobs_in_store(), key=lambda job: job["status"])

    code, out, _ = lev(capsys, "jobs")
    assert code == 0
    assert out.index(failed["id"]) < out.index(done["id"])  # newest first
    assert "alive" in out and "broken" in out

    code, out, _ = lev(capsys, "jobs", "--json", "--status", "failed")
    assert [job["id"] for job in json.loads(out)] == [failed["id"]]

    code, out, _ = lev(capsys, "show", failed["id"][:6])
    assert code == 0
    assert failed["id"] in out
    assert "target: tools:broken" in out
    assert "broken.entry" in out and "failed" in out
    assert "[run 0] connecting to b" in out  # the log
    assert "RuntimeError: target unreachable" in out

    code, out, _ = lev(capsys, "show", done["id"][:6], "--no-log")
    assert "test/alive@1.0 · run 0" in out and "[run 0]" not in out

    code, out, _ = lev(capsys, "show", done["id"], "--json")
    report = json.loads(out)
    assert set(report) == {"job", "runs", "documents", "log", "log_more", "result"}
    assert report["documents"][0]["data"]["alive"] == ["a.0", "a.1"]


def test_jobs_filter_by_every_status(project, capsys):
    with Store.open() as store:
        queued = store.create_job("waiting", target="tools:alive", queued=True)
    code, out, err = lev(capsys, "jobs", "--json", "--status", "queued")
    assert code == 0, err
    assert [job["id"] for job in json.loads(out)] == [queued]
    code, out, _ = lev(capsys, "jobs", "--status", "queued")
    assert code == 0 and queued in out and "queued" in out
    assert json.loads(lev(capsys, "jobs", "--json", "--status", "cancelled")[1]) == []


def test_show_unknown_job(project, capsys):
    assert lev(capsys, "show", "ffffff") == (1, "", "lev: error: no job matches 'ffffff'\n")


def test_jobs_empty_and_home_option(project, capsys, tmp_path):
    home = tmp_path / "elsewhere"
    code, out, _ = lev(capsys, "--home", str(home), "jobs", "--json")
    assert (code, json.loads(out)) == (0, [])
    assert (home / "levrt.db").exists()
    assert lev(capsys, "jobs")[1].strip() == "no jobs"


def test_version_and_unknown_arguments(project, capsys):
    assert lev(capsys, "--version") == (0, f"lev {levrt.__version__}\n", "")
    code, _, err = lev(capsys, "jobs", "--bogus")
    assert code == 2
    assert err.splitlines()[-1] == "lev: error: unrecognized arguments: --bogus"


# -- the live display --------------------------------------------------------------------


def test_live_display_renders_runs_progress_and_log():
    display = LiveDisplay(Console(file=io.StringIO()))
    first = RunInfo(0, "alive.entry", "img", "c")
    second = RunInfo(1, "ports.entry", "img", "c")
    display.run_started(first)
    display.run_started(second)
    display.log(0, "stderr", ["probing 10.0.0.1"])
    display.log(None, "job", [f"line {i}" for i in range(20)])
    first.status, first.exit_code = "done", 0
    display.run_finished(first)
    display.progress(0.5)

    console = Console(file=io.StringIO(), width=100)
    console.print(display)
    text = console.file.getvalue()
    assert "alive.entry" in text and "done" in text
    assert "ports.entry" in text and "running" in text
    assert "50%" in text
    assert "[job] line 19" in text
    assert "probing" not in text  # only the last lines are kept
    assert "2 runs: 1 done, 1 running" in text


def test_live_display_keeps_going_runs_in_view_of_a_wide_fan_out():
    display = LiveDisplay(Console(file=io.StringIO()))
    runs = [RunInfo(i, f"run-{i}", "img", "c") for i in range(30)]
    for run in runs:
        display.run_started(run)
    for run in runs[1:]:
        run.status, run.exit_code = "done", 0
        display.run_finished(run)

    console = Console(file=io.StringIO(), width=100)
    console.print(display)
    text = console.file.getvalue()
    assert "run-0 " in text and "run-29" in text  # still going; latest finished
    assert "run-5 " not in text
    assert "30 runs: 1 running, 29 done" in text


# -- as a real process -------------------------------------------------------------------


def lev_process(project, *argv, **kw):
    env = {**os.environ, "PYTHONPATH": str(Path(levrt.__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, "-m", "levrt", "--home", str(project / "home"), *argv],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,
    )


def test_real_process_run_and_failure(project):
    proc = lev_process(project, "run", "tools:alive", "--ip", "10.0.0.1", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["documents"][0]["data"]["alive"] == ["10.0.0.1.0", "10.0.0.1.1"]

    proc = lev_process(project, "run", "flows:crash", "--ip", "1.2.3.4")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert error_lines(err) == [err.splitlines()[-1]]
    assert "ValueError: no route to 1.2.3.4 (at " in err


def test_real_process_ctrl_c_cancels_the_job(project):
    proc = lev_process(project, "run", "flows:sleepy")
    seen = []
    while not any("napping" in line for line in seen):
        line = proc.stderr.readline()
        assert line, "lev exited before the run started: " + "".join(seen)
        seen.append(line)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130
    assert "Traceback" not in err
    assert err.splitlines()[-1].endswith("cancelled (interrupted)")
    assert "cancelled" in out
    with Store.open() as store:
        (job,) = store.list_jobs()
        assert job["status"] == "cancelled"
        assert store.list_runs(job["id"])[0]["status"] == "cancelled"
