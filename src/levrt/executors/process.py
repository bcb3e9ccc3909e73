"""The embedded default: each run is a fresh host process, in a sandbox of its own.

Entries run in a new ``python3`` through the shim; ``cmd`` runs as a plain
subprocess; tools come from ``PATH`` and the image is only recorded. Every run
goes through bubblewrap (:mod:`.sandbox`): its own PID namespace, a private
``/tmp``, an empty working directory, a read-only view of the host, and its
``files`` at their absolute paths. ``sandbox = false`` opts out, with a warning.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import py_compile
import re
import shutil
import signal as signals
import sys
import tempfile
import time
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .._config import Settings, load_settings, memory_bytes
from .._debug import SOCKET_NAME
from .._subprocess import spawn
from ..shim import SHIM_PATH
from ..shim.entry import dumps
from .base import (
    Executor,
    ExecutorError,
    LineSplitter,
    RunHandle,
    RunObserver,
    RunSpec,
    stdout_reader,
    wait_for_ports,
)
from .sandbox import SandboxError, bwrap, bwrap_argv, kept_paths

logger = logging.getLogger("lev")

# How long a signal waits for bubblewrap to start the tool (seconds): setting the sandbox up
# takes 10-50 ms idle, much longer on a loaded machine.
_SETUP_WAIT = 10.0
#: how many times a run starts again when bubblewrap fails before running it (a mount it was
#: copying went away: see sandbox.py)
SETUP_RETRIES = 2
# bubblewrap's messages when a mount fails ("Can't bind mount /oldroot/run on /newroot/run:
# ...", "Can't remount ...", "Failed to make ... mount ...").
_MOUNT_RACE = re.compile(r"bwrap: (Can't (bind mount|remount|mount)|Failed to (make|mount))")

NO_BWRAP = ("the process executor runs every run in a bubblewrap sandbox, and bwrap is not "
            "installed: install it (apt-get install bubblewrap), run in containers "
            "(LEV_EXECUTOR=docker), or run unsandboxed on purpose (LEV_SANDBOX=0, or "
            "sandbox = false in config.toml)")


class ProcessExecutor(Executor):
    name = "process"

    def __init__(self, python: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.python = python or sys.executable
        self.shim = _compiled_shim() if self.python == sys.executable else str(SHIM_PATH)
        self.bwrap = bwrap()
        self.limit = ([] if not self.settings.memory else
                      [_prlimit(), f"--as={memory_bytes(self.settings.memory)}", "--"])
        self._sandbox_argv: list[str] | None = None
        self._found: set[tuple[str, str | None]] = set()
        self._warned = False

    def describe(self) -> str:
        return "process" if self.settings.sandbox else "process (unsandboxed: sandbox = false)"

    @functools.cached_property
    def _keep(self) -> list[str]:
        """Host paths a run needs to start, wherever they are installed."""
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        # Another interpreter's prefix: the directory above its bin/, as a link and resolved.
        python = [os.path.dirname(os.path.dirname(p))
                  for p in (os.path.abspath(self.python), os.path.realpath(self.python))]
        # lev run --debug's relay: set before the job's first run, so before this is read.
        debug = [self.debug_dir] if self.debug_dir else []
        return kept_paths([*prefixes, *python, *sys.path, str(SHIM_PATH), self.shim, *debug])

    def _on_path(self, command: str, path: str | None) -> bool:
        """Whether ``command`` is found on ``path`` (default: this process's PATH). Found
        ones are remembered (a lookup stats every PATH folder); missing ones are looked
        up again, since a tool may be installed while a job runs."""
        key = (command, path if path is not None else os.environ.get("PATH"))
        if key not in self._found:
            if shutil.which(command, path=key[1]) is None:
                return False
            self._found.add(key)
        return True

    def _prefix(self, spec: RunSpec, scratch: Path | None) -> list[str]:
        """The bubblewrap argv of a run (empty when it runs unsandboxed)."""
        if not spec.files and not self.settings.sandbox:
            if not self._warned:
                self._warned = True
                logger.warning("runs are NOT sandboxed (sandbox = false, LEV_SANDBOX=0): they "
                               "see and can write the host's files, and processes they leave "
                               "behind outlive them")
            return []
        if self.bwrap is None and not self.settings.sandbox:
            raise ExecutorError(
                f"run {spec.name!r} places files at absolute paths, which the process executor "
                "does with bubblewrap: install it (apt-get install bubblewrap) or use "
                "LEV_EXECUTOR=docker")
        if self.bwrap is None:
            raise ExecutorError(f"run {spec.name!r}: " + NO_BWRAP)
        if not spec.files:
            if self._sandbox_argv is None:
                self._sandbox_argv = bwrap_argv({}, self._keep, binary=self.bwrap)
            return self._sandbox_argv
        assert scratch is not None
        try:
            return bwrap_argv(_write_files(spec.files, scratch), self._keep,
                              binary=self.bwrap)
        except SandboxError as exc:
            raise ExecutorError(f"run {spec.name!r}: {exc}") from None

    async def start(self, spec: RunSpec, observer: RunObserver) -> RunHandle:
        if spec.services or spec.links:
            raise ExecutorError(
                f"run {spec.name!r} uses services/links, which need a container executor: "
                "run with LEV_EXECUTOR=docker (or `lev run --executor docker`)"
            )
        argv = [self.python, "-u", self.shim] if spec.payload is not None else spec.cmd
        if not argv:
            raise ExecutorError(
                f"run {spec.name!r} has neither entry nor cmd; the process executor runs no "
                f"image ({spec.image}) by itself"
            )
        if spec.payload is None and not self._on_path(argv[0], spec.env.get("PATH")):
            # Inside the sandbox a missing command is only bwrap's exit code 1: say it here.
            raise ExecutorError(f"run {spec.name!r}: command {argv[0]!r} not found on PATH"
                                + missing_tool_hint(spec, argv[0]))
        scratch = Path(tempfile.mkdtemp(prefix=f"lev-{spec.job_id}-{spec.run_id}-")) \
            if spec.files else None
        try:
            prefix = self._prefix(spec, scratch)
        except BaseException:
            _remove(scratch)
            raise
        overrides = dict(spec.env)  # PWD in the sandbox: bubblewrap sets it (see bwrap_argv)
        if self.debug_dir is not None:
            # The relay's folder is kept at its own path in the sandbox (see _keep).
            overrides["LEV_DEBUG"] = os.path.join(self.debug_dir, SOCKET_NAME)
        # None: the child inherits this process's environment as it is, which spares every
        # run a copy and an encoding of the whole environment.
        env = {**os.environ, **overrides} if overrides else None
        spawn = functools.partial(_spawn, [*prefix, *self.limit, *argv], env,
                                  spec.payload is not None, bool(prefix))
        try:
            proc, status = await spawn()
        except FileNotFoundError:
            _remove(scratch)
            raise ExecutorError(
                f"run {spec.name!r}: command {(prefix or self.limit or argv)[0]!r} not found"
            ) from None
        handle = ProcessHandle(proc, spec, _Hints(observer, spec), scratch, status,
                               respawn=spawn if prefix else None,
                               timeout=self.settings.run_timeout)
        try:
            if spec.payload is not None:
                await handle.send_payload(spec.payload)
            if spec.ports:
                await handle.wait_for_ports(spec.ports)
        except BaseException:
            await handle.kill()
            raise
        return handle


class ProcessHandle(RunHandle):
    host = "localhost"

    def __init__(self, proc: asyncio.subprocess.Process, spec: RunSpec, observer: RunObserver,
                 scratch: Path | None, status: int | None, *,
                 respawn: Callable[[], Awaitable[tuple[asyncio.subprocess.Process, int | None]]]
                 | None, timeout: float) -> None:
        self._spec = spec
        self._observer = observer
        self._scratch = scratch
        self._sandboxed = respawn is not None
        self._respawn = respawn
        self._retries = SETUP_RETRIES
        self._timeout = timeout or None
        self._attach(proc, status)

    def _attach(self, proc: asyncio.subprocess.Process, status: int | None) -> None:
        self._proc = proc
        self._status = status
        self._stderr = _FirstLine(self._observer)
        assert proc.stdout is not None and proc.stderr is not None
        self._pumps = [
            asyncio.ensure_future(_pump(proc.stdout, stdout_reader(self._spec, self._observer))),
            asyncio.ensure_future(_pump(proc.stderr, LineSplitter("stderr", self._stderr))),
        ]

    async def send_payload(self, payload: dict) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(dumps(payload).encode())
        try:
            await self._proc.stdin.drain()
            self._proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the process died at once; wait() reports its exit code and log

    async def wait_for_ports(self, ports: list[int]) -> None:
        try:
            await wait_for_ports(self._spec.name, "127.0.0.1", ports,
                                 lambda: self._proc.returncode is not None)
        except ExecutorError:
            await self.kill()
            raise

    async def wait(self) -> int:
        try:
            while True:
                code = await self._wait_once()
                if not (code == 1 and self._retries and self._setup_failed()):
                    break
                # bubblewrap failed before the tool started: a mount it was copying went away
                # (a container or a network namespace of someone else's ended meanwhile).
                self._retries -= 1
                self._observer.on_log("stderr", ["[lev] the sandbox could not be set up; "
                                                 "starting the run again"])
                assert self._respawn is not None
                self._attach(*await self._respawn())
                if self._spec.payload is not None:
                    await self.send_payload(self._spec.payload)
            if self._sandboxed and 128 < code <= 128 + 64:
                code = -(code - 128)  # bubblewrap reports a signal's death as a shell does
            return code
        finally:
            await self.kill()

    async def _wait_once(self) -> int:
        try:
            code = await asyncio.wait_for(self._proc.wait(), self._timeout)
        except asyncio.TimeoutError:
            self._observer.on_error("Timeout", f"run took longer than {self._timeout:.0f}s "
                                               "(run_timeout) and was killed")
            self._signal_group(signals.SIGKILL)
            code = await self._proc.wait()
        # The run ends with its main process, as a container does: stop what it left behind
        # (in the sandbox its PID namespace is gone already) so that nothing holds the pipes.
        self._signal_group(signals.SIGKILL)
        await asyncio.gather(*self._pumps)
        return code

    def _setup_failed(self) -> bool:
        """Whether bubblewrap failed to make a mount and exited without ever running the
        tool: it reports the tool's exit on its status descriptor, and nothing when its own
        setup failed (a missing command too, which another attempt would not cure)."""
        if self._status is None or not _MOUNT_RACE.match(self._stderr.first or ""):
            return False
        report = b""
        try:
            while chunk := os.read(self._status, 4096):
                report += chunk
        except BlockingIOError:
            pass  # bubblewrap has exited: what it wrote is all there
        finally:
            os.close(self._status)
            self._status = None
        return b'"exit-code"' not in report

    async def signal(self, sig: str) -> None:
        number = _signal_number(sig)
        main = await self._sandboxed_main() if self._sandboxed else None
        if main is None:
            self._signal_group(number)
            return
        try:
            # Only the tool: bubblewrap dies of most signals, and takes the run with it.
            os.kill(main, number)
        except ProcessLookupError:
            pass

    async def _sandboxed_main(self) -> int | None:
        """The tool's pid once bubblewrap has started it (None if the run ended first). A
        signal sent while bubblewrap still sets the sandbox up reaches bubblewrap, which holds
        it until the run ends: a SIGTERM then took the whole run's length to act."""
        deadline = time.monotonic() + _SETUP_WAIT
        while self._proc.returncode is None and time.monotonic() < deadline:
            main = _sandboxed_main(self._proc.pid)
            if main is not None:
                return main
            await asyncio.sleep(0.01)
        return None

    def _signal_group(self, number: int) -> None:
        try:
            os.killpg(self._proc.pid, number)
        except (ProcessLookupError, PermissionError):
            pass  # already gone

    async def kill(self) -> None:
        self._signal_group(signals.SIGKILL)
        if self._proc.returncode is None:
            await self._proc.wait()
        for pump in self._pumps:
            if not pump.done():
                pump.cancel()
        if self._status is not None:
            os.close(self._status)
            self._status = None
        _remove(self._scratch)
        self._scratch = None


class _FirstLine:
    """Passes a run's stderr on, keeping its first line."""

    def __init__(self, observer: RunObserver) -> None:
        self._observer = observer
        self.first: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._observer, name)

    def on_log(self, stream: str, lines: list[str]) -> None:
        if self.first is None and lines:
            self.first = lines[0]
        self._observer.on_log(stream, lines)


class _Hints:
    """Passes a run's output on, adding what to do when an entry misses a tool by path."""

    def __init__(self, observer: RunObserver, spec: RunSpec) -> None:
        self._observer = observer
        self._spec = spec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._observer, name)

    def on_log(self, stream: str, lines: list[str]) -> None:
        self._observer.on_log(stream, lines)

    def on_ctx(self, data: dict[str, Any]) -> None:
        self._observer.on_ctx(data)

    def on_error(self, kind: str, message: str) -> None:
        if kind == "FileNotFoundError":
            path = _missing_path(message)
            if path:
                message += missing_tool_hint(self._spec, path)
        self._observer.on_error(kind, message)


def _missing_path(message: str) -> str | None:
    """The tool in ``[Errno 2] No such file or directory: '/usr/bin/x'``: an absolute path
    missing on this host, in a ``bin`` directory or in a directory this host lacks too
    (a file the run itself failed to open in a private ``/tmp`` is none of these)."""
    _, sep, quoted = message.rpartition(": ")
    path = quoted.strip("'\"")
    if not sep or not path.startswith("/") or os.path.exists(path):
        return None
    parent = os.path.dirname(path)
    if os.path.basename(parent) in ("bin", "sbin") or not os.path.exists(parent):
        return path
    return None


def missing_tool_hint(spec: RunSpec, command: str) -> str:
    """The hint for a tool this host lacks: the image has it, the docker executor runs it."""
    where = f"{command} is not on this host" if command.startswith("/") else \
        f"{command} is not installed on this host"
    return (f" ({where}: the process executor runs tools from the host, not from the image "
            f"{spec.image}; run in that image with the docker executor: "
            "`lev run --executor docker` or LEV_EXECUTOR=docker)")


def _sandboxed_main(bwrap_pid: int) -> int | None:
    """The run's main process: the child of the PID namespace's init, bubblewrap's child."""
    pid = bwrap_pid
    for _ in range(2):
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        if not children:
            return None
        pid = int(children[0])
    return pid


async def _spawn(argv: list[str], env: dict[str, str] | None, payload: bool,
                 sandboxed: bool) -> tuple[asyncio.subprocess.Process, int | None]:
    """Start one attempt of a run; in the sandbox, with bubblewrap's status descriptor (the
    read end is returned, non-blocking)."""
    if not sandboxed:
        proc = await spawn(
            *argv, stdin=PIPE if payload else DEVNULL, stdout=PIPE, stderr=PIPE, env=env,
            start_new_session=True)  # one process group: a kill reaches all of the run
        return proc, None
    read, write = os.pipe()
    try:
        os.set_blocking(read, False)
        proc = await spawn(
            argv[0], "--json-status-fd", str(write), *argv[1:],
            stdin=PIPE if payload else DEVNULL, stdout=PIPE, stderr=PIPE, env=env,
            start_new_session=True, pass_fds=(write,))
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return proc, read


def _prlimit() -> str:
    found = shutil.which("prlimit")
    if found is None:
        raise ExecutorError("the memory setting needs prlimit (util-linux) on the host: "
                            "install it, or unset memory")
    return found


@functools.cache
def _compiled_shim() -> str:
    """The shim compiled once for this interpreter, which saves every run its compile.

    The cache key holds the shim's path: a traceback through the shim names this
    install's file, never another checkout's with the same source.
    """
    source = SHIM_PATH.read_bytes()
    key = source + sys.version.encode() + str(SHIM_PATH).encode()
    tag = hashlib.sha256(key).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"levrt-shim-{os.getuid()}-{tag}.pyc"
    if not target.exists():
        try:
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            py_compile.compile(str(SHIM_PATH), cfile=str(partial), doraise=True)
            os.replace(partial, target)
        except (OSError, py_compile.PyCompileError):
            return str(SHIM_PATH)  # running the source works as well, a little slower
    return str(target)


def _signal_number(sig: str | int) -> int:
    if isinstance(sig, int):
        return sig
    name = sig.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(getattr(signals.Signals, name))
    except AttributeError:
        raise ValueError(f"unknown signal {sig!r}") from None


async def _pump(stream: asyncio.StreamReader, reader: LineSplitter) -> None:
    while True:
        data = await stream.read(65536)
        if not data:
            break
        reader.feed(data)
    reader.close()


def _write_files(files: dict[str, bytes], scratch: Path) -> dict[str, str]:
    placed: dict[str, str] = {}
    for i, (path, content) in enumerate(sorted(files.items())):
        host_file = scratch / f"{i}-{os.path.basename(path)}"
        host_file.write_bytes(content)
        placed[path] = str(host_file)
    return placed


def _remove(scratch: Path | None) -> None:
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
