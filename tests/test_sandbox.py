"""The process executor's sandbox, with real bubblewrap
(docs/runtime.md#the-sandbox-every-run-in-bubblewrap).

Sandboxed processes have pids of their own namespace, so the tests find what a run
started by its command line (a sleep of a duration no one else uses) in the host's /proc.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import helpers_tools as tools
import pytest

import levrt
from levrt import Concurrent, TaskFailed
from levrt.store import Store

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None and not os.environ.get("CI"),
                                reason="bubblewrap not installed")

SRC = Path(levrt.__file__).parents[1]

TOOLS = '''
import os
import stat
import subprocess
import sys
import time

from levrt import Concurrent, Cr, ctx, remote

IMAGE = "localhost/lev-sandbox:test"


def starter(seconds: str) -> Cr:
    """Starts a sleep in a session of its own, then waits."""
    @remote
    def entry():
        subprocess.Popen(["sleep", seconds], start_new_session=True)
        print("started", flush=True)
        time.sleep(600)
    return Cr(IMAGE, entry=entry())


def leaver(seconds: str) -> Cr:
    """Returns at once, leaving a helper that holds the run's output open."""
    @remote
    def entry():
        subprocess.Popen(["sleep", seconds])
        ctx.set(left=True)
    return Cr(IMAGE, entry=entry())


def scanner(name: str) -> Cr:
    """Writes scan.xml where it stands, waits, reads it back."""
    @remote
    def entry():
        with open("scan.xml", "w") as f:
            f.write(name)
        time.sleep(1)
        with open("scan.xml") as f:
            ctx.set(name=name, read=f.read(), cwd=os.getcwd(), listed=os.listdir("."),
                    pwd=os.environ.get("PWD"), home=os.environ.get("HOME"))
    return Cr(IMAGE, entry=entry())


def writer(name: str) -> Cr:
    """Writes a new name at the root, into /tmp and /dev/shm, and tries /etc."""
    @remote
    def entry():
        written = {}
        for path in ("/" + name, "/tmp/" + name, "/dev/shm/" + name):
            with open(path, "w") as f:
                f.write(path)
            with open(path) as f:
                written[path] = f.read()
        try:
            open("/etc/" + name, "w")
            etc = "written"
        except OSError as exc:
            etc = type(exc).__name__ + ":" + str(exc.errno)
        ctx.set(written=written, etc=etc, tmp=sorted(os.listdir("/tmp")))
    return Cr(IMAGE, entry=entry())


def engine_view() -> Cr:
    """What a run sees of the container engines' sockets and mounts."""
    @remote
    def entry():
        ctx.set(sockets=[p for p in ("/run/podman.sock", "/run/docker.sock")
                         if os.path.exists(p) and stat.S_ISSOCK(os.stat(p).st_mode)],
                netns=os.listdir("/run/netns") if os.path.isdir("/run/netns") else [],
                storage=(os.listdir("/var/lib/containers")
                         if os.path.isdir("/var/lib/containers") else []))
    return Cr(IMAGE, entry=entry())


def wpscan() -> Cr:
    @remote
    def entry():
        subprocess.run(["/usr/local/bin/lev-no-such-wpscan", "--url", "http://127.0.0.1"])
    return Cr(IMAGE, entry=entry())


def hog(megabytes: int) -> Cr:
    @remote
    def entry():
        block = bytearray(megabytes * 1024 * 1024)
        ctx.set(size=len(block))
    return Cr(IMAGE, entry=entry())


def raiser() -> Cr:
    @remote
    def entry():
        raise RuntimeError("from the clone")
    return Cr(IMAGE, entry=entry())


def reader(path: str, text: str) -> Cr:
    @remote
    def entry():
        with open(path) as f:
            ctx.set(read=f.read(), python=sys.executable)
    return Cr(IMAGE, entry=entry(), files={path: text})


def plain() -> Cr:
    @remote
    def entry():
        ctx.set(python=sys.executable, prefix=sys.prefix)
    return Cr(IMAGE, entry=entry())


async def fleet(tag: str) -> None:
    async with Concurrent() as c:
        c.start(starter(tag + "1"))
        c.start(starter(tag + "2"))
        c.start(Cr(IMAGE, cmd=["sleep", tag + "3"]))
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with the tools module as the working directory (and on sys.path)."""
    (tmp_path / "sbx_tools.py").write_text(TOOLS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("sbx_tools", None)


def run(coro, **kw):
    return levrt.run(coro, echo=False, **kw)


def lev_process(project, *argv):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        [sys.executable, "-m", "levrt", *argv],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def unique(base: int) -> str:
    """A sleep duration no other test (or helper session) uses at the same time."""
    return f"{base}.{os.getpid()}{time.monotonic_ns() % 1000:03d}"


def test_sigint_to_lev_run_cancels_at_once_and_leaves_nothing(project):
    seconds = unique(3131)
    proc = lev_process(project, "run", "sbx_tools:starter", "--seconds", seconds)
    wait_for(lambda: tools.processes("sleep", seconds))
    time.sleep(0.2)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - began

    assert proc.returncode == 130, err
    assert took < 2.0, took
    assert tools.processes("sleep", seconds) == []
    with Store.open() as store:
        (job,) = store.list_jobs()
        assert job["status"] == "cancelled"


def test_run_ends_with_its_entry_and_its_helper_dies(project):
    import sbx_tools

    seconds = unique(20)

    async def main():
        return await (await sbx_tools.leaver(seconds)).get()

    began = time.monotonic()
    assert run(main()) == {"left": True}
    assert time.monotonic() - began < 5
    assert tools.processes("sleep", seconds) == []


def test_concurrent_runs_each_see_their_own_working_directory(project):
    import sbx_tools

    async def main():
        async with Concurrent() as c:
            tasks = [c.start(sbx_tools.scanner(f"run-{i}")) for i in range(4)]
        return [await (await t).get() for t in tasks]

    results = run(main())
    assert [r["read"] for r in results] == [f"run-{i}" for i in range(4)]
    assert {r["cwd"] for r in results} == {"/lev-work"}
    # The environment is the driver's (passed on as it is), with the working directory's PWD.
    assert {(r["pwd"], r["home"]) for r in results} == {("/lev-work", os.environ.get("HOME"))}
    assert all(r["listed"] == ["scan.xml"] for r in results)
    assert not (project / "scan.xml").exists() and not Path("/lev-work").exists()


def test_run_timeout_kills_a_command_with_a_clear_message(project, monkeypatch):
    monkeypatch.setenv("LEV_RUN_TIMEOUT", "3")

    async def main():
        await tools.command(["sleep", "30"])

    began = time.monotonic()
    with pytest.raises(TaskFailed) as info:
        run(main())
    took = time.monotonic() - began
    assert 2.9 < took < 7, took
    assert "run took longer than 3s (run_timeout) and was killed" in str(info.value)


def test_writes_stay_in_the_sandbox(project):
    import sbx_tools

    name = f"marker-{os.getpid()}.txt"

    async def main():
        return await (await sbx_tools.writer(name)).get()

    data = run(main())
    assert data["written"] == {p: p for p in ("/" + name, "/tmp/" + name, "/dev/shm/" + name)}
    assert data["etc"] == "OSError:30"  # EROFS: the host's files are read-only
    # A private /tmp: only what the run needs to start (the compiled shim, the test's folder
    # on sys.path, the interpreter's prefix and levrt when the clone is under /tmp) of the
    # host's, read-only.
    kept = {n for n in data["tmp"] if not n.startswith("levrt-shim-")}
    needed = [project, Path(sys.prefix), Path(levrt.__file__).parent]
    assert kept == {name} | {p.parts[2] for p in needed if p.parts[1:2] == ("tmp",)}
    for path in ("/" + name, "/tmp/" + name, "/dev/shm/" + name, "/etc/" + name):
        assert not Path(path).exists()


def test_runs_see_no_engine_socket_nor_other_containers(project):
    import sbx_tools

    async def main():
        return await (await sbx_tools.engine_view()).get()

    # Empty: nor can a netns or a container's root, unmounted while the run starts, fail it.
    assert run(main()) == {"sockets": [], "netns": [], "storage": []}


def test_sigkill_of_the_driver_leaves_no_tool_process(project):
    tag = unique(3232)
    proc = lev_process(project, "run", "sbx_tools:fleet", "--tag", tag)
    names = [tag + "1", tag + "2", tag + "3"]
    wait_for(lambda: all(tools.processes("sleep", n) for n in names))
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: not any(tools.processes("sleep", n) for n in names), timeout=3)


def test_memory_limit_holds(project, monkeypatch):
    import sbx_tools

    monkeypatch.setenv("LEV_MEMORY", "256m")

    async def main(megabytes):
        return await (await sbx_tools.hog(megabytes)).get()

    assert run(main(32)) == {"size": 32 * 1024 * 1024}
    with pytest.raises(TaskFailed, match="MemoryError"):
        run(main(512))


def test_missing_tool_by_path_hints_at_the_image_and_docker(project):
    import sbx_tools

    async def main():
        await sbx_tools.wpscan()

    with pytest.raises(TaskFailed) as info:
        run(main())
    message = str(info.value)
    assert "/usr/local/bin/lev-no-such-wpscan" in message
    assert "localhost/lev-sandbox:test" in message and "--executor docker" in message


FLAKY_BWRAP = """#!/bin/sh
# bubblewrap failing before the tool starts, as when a mount it copies goes away, $FAILS times
count=$(cat "$COUNTER" 2>/dev/null || echo 0)
echo $((count + 1)) > "$COUNTER"
if [ "$count" -lt "$FAILS" ]; then
  echo "bwrap: Can't bind mount /oldroot/run on /newroot/run: No such file or directory" >&2
  exit 1
fi
exec %s "$@"
"""


def flaky_bwrap(project: Path, monkeypatch, fails: int) -> tuple[object, Path]:
    """A process executor whose bubblewrap fails ``fails`` times, then works."""
    from levrt.executors.process import ProcessExecutor

    script = project / "bwrap"
    script.write_text(FLAKY_BWRAP % shutil.which("bwrap"))
    script.chmod(0o755)
    counter = project / "attempts"
    monkeypatch.setenv("COUNTER", str(counter))
    monkeypatch.setenv("FAILS", str(fails))
    executor = ProcessExecutor()
    executor.bwrap = str(script)
    return executor, counter


def test_a_run_whose_sandbox_failed_to_set_up_starts_again(project, monkeypatch):
    import sbx_tools

    executor, counter = flaky_bwrap(project, monkeypatch, fails=2)

    async def main():
        entry = await (await sbx_tools.plain()).get()
        return entry, levrt.lev.job_id

    data, job_id = run(main(), executor=executor)
    assert data["python"] == sys.executable  # the payload reached the third attempt
    assert counter.read_text().strip() == "3"
    with Store.open() as store:
        [run_row] = store.list_runs(job_id)
        texts = [row["text"] for row in store.get_logs(job_id, run_id=0)]
    assert run_row["status"] == "done"
    assert sum("sandbox could not be set up" in text for text in texts) == 2

    # Once more than the retries: the run fails with bubblewrap's own message.
    counter.unlink()
    monkeypatch.setenv("FAILS", "9")
    with pytest.raises(TaskFailed, match="Can't bind mount") as info:
        run(main(), executor=executor)
    assert info.value.exit_code == 1
    assert counter.read_text().strip() == "3"


def test_a_tool_that_exits_1_is_not_started_again(project, monkeypatch):
    executor, counter = flaky_bwrap(project, monkeypatch, fails=0)

    async def main():
        await levrt.Cr("localhost/lev-sandbox:test", cmd=["sh", "-c", "echo ran; exit 1"])

    with pytest.raises(TaskFailed) as info:
        run(main(), executor=executor)
    assert info.value.exit_code == 1 and info.value.log_tail == ["ran"]
    assert counter.read_text().strip() == "1"


def test_a_tool_the_sandbox_hides_is_not_started_again(project, monkeypatch):
    import tempfile

    executor, counter = flaky_bwrap(project, monkeypatch, fails=0)
    hidden = Path(tempfile.mkdtemp(prefix="lev-hidden-", dir="/tmp"))  # /tmp is private
    try:
        tool = hidden / "tool"
        tool.write_text("#!/bin/sh\necho ran\n")
        tool.chmod(0o755)

        async def main():
            await levrt.Cr("localhost/lev-sandbox:test", cmd=[str(tool)])

        with pytest.raises(TaskFailed, match="execvp") as info:
            run(main(), executor=executor)
    finally:
        shutil.rmtree(hidden)
    assert info.value.exit_code == 1
    assert counter.read_text().strip() == "1"


def test_without_bubblewrap_runs_fail_unless_opted_out(project, monkeypatch):
    import sbx_tools

    monkeypatch.setenv("PATH", str(project))  # an empty PATH: no bwrap

    async def main():
        first = await (await sbx_tools.plain()).get()
        await (await sbx_tools.plain()).get()
        return first, levrt.lev.job_id

    with pytest.raises(levrt.executors.ExecutorError) as info:
        run(main())
    assert "apt-get install bubblewrap" in str(info.value) and "LEV_SANDBOX=0" in str(info.value)

    monkeypatch.setenv("LEV_SANDBOX", "0")
    data, job_id = run(main())
    assert data["python"] == sys.executable
    with Store.open() as store:
        texts = [row["text"] for row in store.get_logs(job_id)]
    assert sum("NOT sandboxed" in text for text in texts) == 1
    assert any("process (unsandboxed" in text for text in texts)


def _clone(root: Path) -> Path:
    """A checkout under /tmp with its .venv there too: levrt's source copied, the
    interpreter a venv of this one, the dependencies from this environment."""
    shutil.copytree(SRC / "levrt", root / "src" / "levrt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(root / ".venv")],
                   check=True)
    purelib = Path(subprocess.run(
        [str(root / ".venv" / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    (purelib / "clone.pth").write_text(f"{root / 'src'}\n{sysconfig.get_paths()['purelib']}\n")
    return root / ".venv" / "bin" / "python"


def test_a_clone_under_tmp_runs_plain_and_files_runs(project):
    clone = project / "clone"
    assert str(clone).startswith("/tmp/")
    python = _clone(clone)
    (clone / "job.py").write_text(textwrap.dedent('''
        import json
        import levrt
        import sbx_tools

        async def main():
            plain = await (await sbx_tools.plain()).get()
            read = await (await sbx_tools.reader("/etc/lev-clone.conf", "conf")).get()
            try:
                await sbx_tools.raiser()
            except levrt.TaskFailed as exc:
                tail = exc.log_tail
            return {"plain": plain, "read": read, "tail": tail, "levrt": levrt.__file__}

        print(json.dumps(levrt.run(main(), echo=False)))
    '''))
    env = {**os.environ, "LEV_HOME": str(clone / "home"), "PYTHONPATH": str(project)}
    done = subprocess.run([str(python), "job.py"], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["levrt"].startswith(str(clone / "src"))
    assert result["plain"]["python"] == str(python)
    assert result["plain"]["prefix"] == str(clone / ".venv")
    assert result["read"] == {"read": "conf", "python": str(python)}
    # The traceback names this clone's shim, not another checkout's compiled copy.
    shim = str(clone / "src" / "levrt" / "shim" / "entry.py")
    assert any(shim in line for line in result["tail"]), result["tail"]
