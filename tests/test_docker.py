"""The docker executor against a real engine (Podman's Docker API service in CI)."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import helpers_docker as tools
import pytest

import levrt
from levrt import Concurrent, TaskFailed
from levrt._config import Settings
from levrt._driver import driver_gone, driver_id
from levrt.executors import ExecutorError
from levrt.executors.base import ChannelReader
from levrt.executors.docker import LABEL, engine_url
from levrt.store import Store

NMAP = "localhost/lev-nmap:test"
PY39 = "localhost/lev-py39:bullseye"
NOPY = "localhost/lev-nopython:bookworm"
BUSYBOX = "localhost/lev-busybox:static"  # a static busybox alone: no libc, no python3
HUB = Path(__file__).resolve().parent.parent / "examples" / "lev-hub"


@pytest.fixture(scope="module")
def engine():
    url = engine_url()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true but no Docker API answers (scripts/engine.sh should start one)")
        pytest.skip("no Docker API answers here (see scripts/engine.sh)")
    import docker

    client = docker.DockerClient(base_url=url)
    # The engine is shared: only containers of drivers that are gone (earlier test sessions
    # killed midway) go, never another process's live runs.
    for leftover in levrt_containers(client):
        if driver_gone((leftover.attrs.get("Labels") or {}).get(f"{LABEL}.driver")):
            with contextlib.suppress(docker.errors.NotFound):
                leftover.remove(force=True)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def docker_env(engine, monkeypatch):
    monkeypatch.setenv("LEV_EXECUTOR", "docker")


def levrt_containers(engine, driver=None):
    labels = [f"{LABEL}.managed=1"] + ([f"{LABEL}.driver={driver}"] if driver else [])
    # Sparse: the listing alone, with no inspection of each container, which may be gone
    # by then (another run's, removed as it ends).
    return engine.containers.list(all=True, sparse=True, filters={"label": labels})


def ours(engine, driver=None):
    """The containers this test session's runs made (or those of the driver ``driver``)."""
    return levrt_containers(engine, driver or driver_id())


def run(coro):
    return levrt.run(coro, echo=False)


def test_entry_runs_on_python_3_9_from_a_3_11_host(engine):
    async def main():
        return [await (await tools.version(image)).get() for image in (PY39, NMAP)]

    old, new = run(main())
    assert old["py"] == [3, 9] and new["py"][0] == 3 and new["py"] != [3, 9]
    assert old["raw"] == b"\x00" and old["t"] == (1, 2)
    assert ours(engine) == []


def test_env_files_and_bridge_network(engine, tmp_path):
    local = tmp_path / "t.txt"
    local.write_bytes(b"from disk")
    files = {"/in/a.bin": b"\x00\x01", "/in/b.txt": "text", "/etc/lev.conf": local}

    async def main():
        return await (await tools.environment(NMAP, ["ALPHA=1", "BETA=two=2"], files)).get()

    data = run(main())
    assert data["env"] == {"ALPHA": "1", "BETA": "two=2"}
    assert data["files"] == {"/in/a.bin": b"\x00\x01", "/in/b.txt": b"text",
                             "/etc/lev.conf": b"from disk"}
    assert data["hostname"].startswith("lev-")


def test_host_network(engine):
    async def main():
        return await (await tools.environment(NMAP, {}, {}, host=True)).get()

    import socket

    assert run(main())["hostname"] == socket.gethostname()


def test_service_reachable_by_name_and_ports_waited_for(engine):
    async def main():
        doc = await tools.fetch(NMAP, "http://web:8000/", services={"web": tools.http_server(NMAP)})
        return await doc.get()

    assert run(main()) == {"status": 200}
    assert ours(engine) == []


def test_links_and_signal(engine):
    async def main():
        server = await tools.http_server(NMAP, 8001).start()
        fetch = tools.fetch(NMAP, "http://peer:8001/", links={"peer": server.host})
        status = await (await fetch).get()
        await server.signal("SIGTERM")
        with pytest.raises(TaskFailed) as info:
            await server
        return status, info.value

    status, failure = run(main())
    assert status == {"status": 200}
    assert failure.exit_code == -signal.SIGTERM


def test_killed_container_gives_task_failed_with_log_tail(engine):
    async def main():
        task = await tools.sleeper(NMAP, 60).start()
        await asyncio.sleep(1.0)
        await task.signal("SIGKILL")
        await task

    with pytest.raises(TaskFailed) as info:
        run(main())
    assert info.value.exit_code == -signal.SIGKILL
    assert "sleeping" in info.value.log_tail


def test_cancelling_ten_running_containers_leaves_none(engine):
    async def workflow():
        async with Concurrent(limit=10) as c:
            for _ in range(10):
                c.start(tools.sleeper(NMAP, 120))

    async def main():
        job = asyncio.ensure_future(levrt.arun(workflow()))
        for _ in range(300):
            await asyncio.sleep(0.1)
            running = [c for c in ours(engine) if c.status == "running"]
            if len(running) == 10:
                break
        assert len(running) == 10
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(main())
    assert ours(engine) == []


def test_twenty_concurrent_runs_store_every_document(engine):
    async def main():
        async with Concurrent(limit=8) as c:
            tasks = [c.start(tools.noop(NMAP, i)) for i in range(20)]
        return sorted([(await (await t).get())["n"] for t in tasks]), levrt.lev.job_id

    numbers, job_id = run(main())
    assert numbers == list(range(20))
    assert len(Store.open().find_documents(job_id=job_id)) == 20


def test_driver_killed_mid_run_leaves_containers_the_next_start_removes(engine, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import levrt, helpers_docker as tools
        from levrt._driver import driver_id
        open({str(tmp_path / "driver-id")!r}, "w").write(driver_id())
        async def main():
            await tools.sleeper({NMAP!r}, 120)
        levrt.run(main(), executor="docker")
    """))
    driver = subprocess.Popen([sys.executable, str(script)], env=os.environ.copy())
    theirs = ""
    try:
        for _ in range(300):
            named = tmp_path / "driver-id"
            theirs = theirs or (named.read_text() if named.exists() else "")
            if theirs and [c for c in ours(engine, theirs) if c.status == "running"]:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the driver never started its container")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert len(ours(engine, theirs)) == 1

    # A new executor in a new process removes what the dead driver left.
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import levrt, helpers_docker as tools
        async def main():
            await tools.noop({NMAP!r}, 1)
        levrt.run(main(), executor="docker")
    """)], check=True, env=os.environ.copy())
    assert ours(engine, theirs) == []


@pytest.mark.parametrize("image", [NOPY, BUSYBOX])
def test_entry_runs_in_an_image_without_python3(engine, image):
    async def main():
        return [await (await tools.version(image)).get() for _ in range(2)]

    first, second = run(main())  # the second starts with the bundled Python at once
    assert first["py"] == second["py"] == [3, 11] and first["raw"] == b"\x00"
    assert ours(engine) == []


def test_image_without_python3_and_no_python_to_bring_is_a_clear_error(engine, monkeypatch):
    monkeypatch.setenv("LEV_PYTHON_IMAGE", "localhost/lev-no-such-image:1")

    async def main():
        await tools.version(NOPY)

    with pytest.raises(ExecutorError, match="LEV_PYTHON_IMAGE"):
        run(main())
    assert ours(engine) == []


def test_missing_image_is_a_clear_error(engine):
    async def main():
        await tools.version("localhost/lev-no-such-image:1")

    with pytest.raises(ExecutorError, match="lev image build"):
        run(main())


def test_image_shorthand_and_aliases(engine, monkeypatch):
    settings = Settings(image_prefix="registry.local/")
    assert settings.image(".joe.jsfuck:1.0") == "registry.local/lev.joe.jsfuck:1.0"
    assert settings.image("debian:12") == "debian:12"
    monkeypatch.setenv("LEV_IMAGE_ALIASES", json.dumps({"localhost/lev.t.nmap:9": NMAP}))
    monkeypatch.setenv("LEV_IMAGE_PREFIX", "localhost/")

    async def main():
        return await (await tools.version(".t.nmap:9")).get()

    assert run(main())["py"][0] == 3


def test_run_timeout_kills_the_container(engine, monkeypatch):
    monkeypatch.setenv("LEV_RUN_TIMEOUT", "1")

    async def main():
        await tools.sleeper(NMAP, 60)

    with pytest.raises(TaskFailed, match="run_timeout"):
        run(main())
    assert ours(engine) == []


def test_auto_picks_docker_and_says_so(engine, monkeypatch):
    monkeypatch.setenv("LEV_EXECUTOR", "auto")

    async def main():
        await tools.noop(NMAP, 1)
        return levrt.lev.job_id

    job_id = run(main())
    first = Store.open().get_logs(job_id)[0]["text"]
    assert "docker" in first and "auto" in first


def test_seed_workflow_through_docker_with_host_network(engine, monkeypatch):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve():
        # An SSH banner lets nmap -sV name the service at once instead of probing for long.
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):  # nmap resets some connections
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("LEV_IMAGE_ALIASES", json.dumps({"localhost/lev-nmap:latest": NMAP}))
    for package in ("szczecin.nmap_python",):
        monkeypatch.syspath_prepend(str(HUB / package))
    for name in [m for m in sys.modules if m == "lev" or m.startswith("lev.")]:
        monkeypatch.delitem(sys.modules, name)
    from lev.szczecin.nmap_python import server_port

    try:
        results = run(server_port("127.0.0.1", str(port)))
    finally:
        listener.close()
    ports = [p["port"] for p in results[0]["ports"] if p["state"] == "open"]
    assert ports == [port]
    assert ours(engine) == []


def _package(tmp_path, dockerfile):
    package = tmp_path / "t.tiny"
    package.mkdir()
    (package / "pyproject.toml").write_text('[project]\nname = "lev.t.tiny"\nversion = "2.1.0"\n')
    if dockerfile is not None:
        (package / "Dockerfile").write_text(dockerfile)
    return package


def test_lev_image_build_tags_by_convention(engine, tmp_path, capsys):
    from levrt._cli import cli_main

    package = _package(tmp_path, "FROM localhost/lev-base:bookworm\nRUN echo built > /built\n")
    try:
        code = cli_main(["image", "build", str(package), "--tag", "localhost/tiny:extra"])
        out = capsys.readouterr().out.split()
        assert code == 0 and out == ["localhost/lev.t.tiny:2.1.0", "localhost/tiny:extra"]
        for ref in out:
            assert engine.images.get(ref).id == engine.images.get(out[0]).id

        async def main():
            return await (await tools.version(".t.tiny:2.1.0")).get()

        assert run(main())["py"][0] == 3  # the shorthand finds the image just built
    finally:
        for ref in ("localhost/lev.t.tiny:2.1.0", "localhost/tiny:extra"):
            with contextlib.suppress(Exception):
                engine.images.remove(ref)


def test_lev_image_build_errors_are_one_line(engine, tmp_path, capsys):
    from levrt._cli import cli_main

    assert cli_main(["image", "build", str(_package(tmp_path, None))]) == 1
    assert "no Dockerfile" in capsys.readouterr().err
    broken = tmp_path / "b"
    broken.mkdir()
    package = _package(broken, "FROM localhost/lev-base:bookworm\nRUN exit 3\n")
    assert cli_main(["image", "build", str(package)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("lev: error: building") and "Traceback" not in err
    assert "exit status 3" in err


def test_example_package_image_builds(engine):
    from levrt.executors.docker import build_image

    tags = build_image(HUB / "szczecin.nmap_python", ["localhost/lev-nmap:built"])
    try:
        assert tags == ["localhost/lev.szczecin.nmap_python:1.0.0", "localhost/lev-nmap:built"]
        output = engine.containers.run(tags[0], ["nmap", "--version"], remove=False)
        assert b"Nmap version" in output
    finally:
        for container in engine.containers.list(all=True, filters={"ancestor": tags[0]}):
            container.remove(force=True)
        for ref in tags:
            with contextlib.suppress(Exception):
                engine.images.remove(ref)


def _log(job_id):
    return [row["text"] for row in Store.open().get_logs(job_id) if row["run_id"] is not None]


def test_results_and_log_complete_beside_heavy_stderr_ten_times(engine):
    """Podman's follow stream loses and repeats chunks: at this size the executor that read
    it lost, repeated and reordered log lines in 2 of 10 runs on a quiet engine (more under
    load: 2 of 5 at half the size); results and log now come exactly, every time."""
    sets, lines = 1000, 20000

    async def main():
        await tools.chatty(NMAP, sets, lines)
        return levrt.lev.job_id

    for _ in range(10):
        job_id = run(main())
        (document,) = Store.open().find_documents(job_id=job_id)
        assert document["data"] == {**{f"k{i}": i for i in range(sets)}, "last": sets - 1}
        assert _log(job_id) == [f"line {i}" for i in range(lines)]
    assert ours(engine) == []


def test_long_command_output_stored_complete_and_in_order(engine):
    async def main():
        try:
            await tools.shell(NMAP, "seq 1 200000; exit 3")
        except TaskFailed as exc:
            return levrt.lev.job_id, exc.exit_code
        return levrt.lev.job_id, 0

    job_id, code = run(main())
    assert code == 3
    assert _log(job_id) == [str(i) for i in range(1, 200001)]


def test_results_that_cannot_be_verified_fail_the_run(engine):
    async def main():
        await tools.vanishing(NMAP)

    with pytest.raises(TaskFailed, match="ResultsUnverified: the result channel ended"):
        run(main())


def test_channel_reader_counts_lost_and_repeated_messages():
    seen = []

    class Observer:
        def on_log(self, stream, lines):
            seen.append(("log", lines))

        def on_ctx(self, data):
            seen.append(("ctx", data))

        def on_error(self, kind, message):
            seen.append(("error", kind))

    reader = ChannelReader(Observer())
    once = b"{'op': 'set', 'data': {'a': 1}, 'n': 0}\n"
    reader.feed(once + once)
    assert reader.unverified().startswith("the result channel ended without")
    reader.feed(b"{'op': 'set', 'data': {'b': 2}, 'n': 2}\n{'op': 'end', 'n': 3}\n")
    assert seen == [("ctx", {"a": 1}), ("ctx", {"b": 2})]
    assert reader.unverified() == "1 of the run's 4 result messages never arrived"


def test_long_lines_and_a_last_line_without_newline_come_whole(engine):
    """The engine splits lines over 8 KiB into several log entries: they are joined again."""
    async def main():
        await tools.shell(NMAP, "printf '%20000s' '' | tr ' ' y; echo; "
                                "echo err >&2; printf tail")
        return levrt.lev.job_id

    rows = Store.open().get_logs(run(main()), run_id=0)
    # Across the two streams the order is the engine's: it reads two pipes.
    assert [r["text"] for r in rows if r["stream"] == "stdout"] == ["y" * 20000, "tail"]
    assert [r["text"] for r in rows if r["stream"] == "stderr"] == ["err"]


class _Quiet:
    heard = True

    def on_log(self, stream, lines):
        pass

    def on_ctx(self, data):
        pass

    def on_error(self, kind, message):
        pass


def test_an_executor_that_ends_leaves_the_other_runs_of_its_job_alone(engine):
    # An agent runs each run of a spread job with an executor of its own. Ending one used
    # to remove every container of the job: runs beside it failed, their container gone
    # (404) before their output was read, or killed.
    from levrt.executors import RunSpec, create_named

    async def main():
        job = f"j{time.monotonic_ns()}"
        first, second = create_named("docker"), create_named("docker")
        nap = await first.start(RunSpec(job_id=job, run_id=0, name="nap", image=NMAP,
                                        cmd=["sleep", "3"]), _Quiet())
        short = await second.start(RunSpec(job_id=job, run_id=1, name="true", image=NMAP,
                                           cmd=["true"]), _Quiet())
        assert await short.wait() == 0
        await second.aclose()
        assert await nap.wait() == 0
        await first.aclose()

    asyncio.run(main())
    assert ours(engine) == []
