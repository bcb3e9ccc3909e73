"""The embedded default: each run is a fresh host process.

Entries run in a new ``python3`` through the shim; ``cmd`` runs as a plain
subprocess; tools come from ``PATH`` and the image is only recorded. A run
with ``files`` gets its own mount namespace from bubblewrap, so the files
appear at their absolute paths for that run alone.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import py_compile
import shutil
import signal as signals
import sys
import tempfile
from asyncio.subprocess import DEVNULL, PIPE
from pathlib import Path

from .._debug import SOCKET_NAME
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
from .sandbox import bwrap_argv


class ProcessExecutor(Executor):
    name = "process"

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.shim = _compiled_shim() if self.python == sys.executable else str(SHIM_PATH)

    async def start(self, spec: RunSpec, observer: RunObserver) -> RunHandle:
        if spec.services or spec.links:
            raise ExecutorError(
                f"run {spec.name!r} uses services/links, which need a container executor: "
                "run with LEV_EXECUTOR=docker (or `lev run --executor docker`)"
            )
        # The compiled shim sits in the host's /tmp, which a bubblewrap sandbox replaces.
        shim = str(SHIM_PATH) if spec.files else self.shim
        argv = [self.python, "-u", shim] if spec.payload is not None else spec.cmd
        if not argv:
            raise ExecutorError(
                f"run {spec.name!r} has neither entry nor cmd; the process executor runs no "
                f"image ({spec.image}) by itself"
            )
        workdir: str | None = None
        if spec.files:
            if shutil.which("bwrap") is None:
                raise ExecutorError(
                    f"run {spec.name!r} places files at absolute paths, which the process "
                    "executor does with bubblewrap: install it (apt-get install bubblewrap) "
                    "or use LEV_EXECUTOR=docker"
                )
            workdir = tempfile.mkdtemp(prefix=f"lev-{spec.job_id}-{spec.run_id}-")
            argv = bwrap_argv(_write_files(spec.files, Path(workdir))) + list(argv)
        env = {**os.environ, **spec.env}
        if self.debug_dir is not None:
            env["LEV_DEBUG"] = os.path.join(self.debug_dir, SOCKET_NAME)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=PIPE if spec.payload is not None else DEVNULL,
                stdout=PIPE,
                stderr=PIPE,
                env=env,
                start_new_session=True,  # one process group: a kill reaches the tool's children
            )
        except FileNotFoundError:
            _remove(workdir)
            raise ExecutorError(
                f"run {spec.name!r}: command {argv[0]!r} not found on PATH"
            ) from None
        handle = ProcessHandle(proc, spec, observer, workdir)
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
                 workdir: str | None) -> None:
        self._proc = proc
        self._spec = spec
        self._workdir = workdir
        assert proc.stdout is not None and proc.stderr is not None
        self._pumps = [
            asyncio.ensure_future(_pump(proc.stdout, stdout_reader(spec, observer))),
            asyncio.ensure_future(_pump(proc.stderr, LineSplitter("stderr", observer))),
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
            code = await self._proc.wait()
            # The run ends with its main process, as a container does: stop what it left behind
            # so that nothing holds the output pipes open.
            self._signal_group(signals.SIGKILL)
            await asyncio.gather(*self._pumps)
            return code
        finally:
            await self.kill()

    async def signal(self, sig: str) -> None:
        self._signal_group(_signal_number(sig))

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
        _remove(self._workdir)
        self._workdir = None


@functools.cache
def _compiled_shim() -> str:
    """The shim compiled once for this interpreter, which saves every run its compile."""
    source = SHIM_PATH.read_bytes()
    tag = hashlib.sha256(source + sys.version.encode()).hexdigest()[:16]
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


def _write_files(files: dict[str, bytes], workdir: Path) -> dict[str, str]:
    placed: dict[str, str] = {}
    for i, (path, content) in enumerate(sorted(files.items())):
        host_file = workdir / f"{i}-{os.path.basename(path)}"
        host_file.write_bytes(content)
        placed[path] = str(host_file)
    return placed


def _remove(workdir: str | None) -> None:
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)

