"""The server's in-process task dispatcher: the default, needing nothing beyond the server
(docs/tasks.md#the-runner).

A submitted task is a job recorded ``queued`` in the store, so it survives a restart of the
server: :meth:`TaskRunner.start` takes up every queued job again. It waits for one of
``max_running_tasks`` slots, then runs as

    python -m levrt run --job ID --executor EXECUTOR --quiet TARGET

inside a bubblewrap sandbox of its own, with that job's token and the runner's private API
socket (:mod:`~levrt.server.driver`) rather than the store: package code runs in that process
and must reach nothing but its own job (docs/tasks.md#what-a-job-can-reach). Its environment
is built anew (no database URL, no secret, none of the server's settings), the server's
``LEV_HOME`` and database folder are empty there, and for a published package's target that
version's files are on ``PYTHONPATH`` (:mod:`~levrt.server.published`), because the server
never imports or executes package code (docs/hub.md): ``lev run`` loads the target, marks
the queued job running (only one process can), takes the parameters from the job's record —
as the server converted them, never as text to convert again, and never through argv, whose
size is limited (``max_params_bytes`` bounds them instead) — and records its runs, documents
and logs. A ``lev run`` that fails before that (the target does not load, the parameters do
not fit it) leaves the job queued; the runner then records it failed with the one error line
``lev run`` printed.

Cancelling a queued task finishes its job at once; a running one gets SIGINT, which
``lev run`` turns into a cancelled job and killed runs, and ``cancel_grace`` seconds for that
before its whole session is killed (the runner then records the job cancelled, before the
kill: a reader that found its driver gone first would record it failed). When the server
stops, running tasks are cancelled (none may outlive the server) and queued ones stay
queued for its next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import uvicorn
from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from levrt._config import Settings as JobSettings
from levrt._driver import driver_gone, driver_id, error_line
from levrt._status import UNFINISHED_STATUSES
from levrt._subprocess import spawn
from levrt.executors.docker import engine_url
from levrt.executors.process import _sandboxed_main
from levrt.executors.sandbox import bwrap, bwrap_argv, kept_paths
from levrt.store import Store, default_home

from . import published
from .auth import make_job_token
from .driver import DriverLogs, driver_app
from .params import check_size
from .sessions import load_secret
from .settings import Settings

# Queued jobs a starting server takes up again, at most.
_REQUEUE_LIMIT = 100_000


@dataclass
class Task:
    """A queued or running job the runner has taken."""

    job_id: str
    target: str
    package: str | None = None  # "name==version" when the target is a published package's
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    process: asyncio.subprocess.Process | None = None
    sandboxed: bool = False  # its process is bubblewrap, the workflow its grandchild


@dataclass(frozen=True)
class ExecutorChoice:
    """What runs the tasks' tools now: ``name`` (``docker``, ``process``, or None when
    nothing may), why (``reason``), and the Docker API's ``url`` that answered."""

    name: str | None
    reason: str
    url: str | None = None


def choose_executor(settings: Settings) -> ExecutorChoice:
    """The executor for the next task. ``auto`` takes the container engine when a Docker API
    answers; without one, package code would run as plain processes of the server's user,
    outside any sandbox, which this server does only when told (``allow_host_execution``,
    or ``executor`` set to ``process``)."""
    if settings.executor != "auto":
        return ExecutorChoice(settings.executor,
                              f"chosen by the setting LEV_SERVER_EXECUTOR={settings.executor}")
    url = engine_url()
    if url is not None:
        return ExecutorChoice("docker", f"auto: a Docker API answers at {url}", url)
    if settings.allow_host_execution:
        return ExecutorChoice("process", "auto: no Docker API answers, so tools run as "
                              "processes on this host (LEV_SERVER_ALLOW_HOST_EXECUTION)")
    return ExecutorChoice(None, "auto: no Docker API answers (DOCKER_HOST or a usual "
                          "socket), and this server runs no package code outside a container "
                          "unless told: start a container engine, or set "
                          "LEV_SERVER_ALLOW_HOST_EXECUTION=true (or LEV_SERVER_EXECUTOR="
                          "process) to run tools as processes on the server")


# What a driver's environment takes from the server's: the system's basics and the job
# runtime's own settings (levrt._config), nothing of the server's.
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "COVERAGE_PROCESS_START",
               "LEV_PYTHON_IMAGE",  # the docker executor's image for tools without Python
               *(f"LEV_{f.name.upper()}" for f in dataclasses.fields(JobSettings)))
_SOCKET = "api.sock"


class _SocketServer(uvicorn.Server):
    """uvicorn on the runner's socket, inside the server's event loop: the signals stay the
    server's own."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _engine_sockets(executor: str, url: str | None) -> list[str]:
    """The container engine sockets the docker executor of a driver may ask: the one of
    ``url`` (or ``DOCKER_HOST``), else those it looks for, where they exist."""
    if executor != "docker":
        return []
    url = url or os.environ.get("DOCKER_HOST")
    candidates = [url] if url else [
        "unix:///var/run/docker.sock", "unix:///run/podman/podman.sock",
        "unix:///run/podman.sock"]
    return [os.path.realpath(found.removeprefix("unix://")) for found in candidates
            if found.startswith("unix://") and os.path.exists(found.removeprefix("unix://"))]


def _hidden_dirs(store: Store) -> list[str]:
    """The server's folders a driver must find empty: its LEV_HOME and the database's."""
    found = {str(default_home())}
    url = make_url(store.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        found.add(os.path.dirname(os.path.abspath(url.database)))
    return sorted(os.path.abspath(path) for path in found if os.path.isdir(path))


def _target_path(target: str) -> tuple[str, list[str]]:
    """An administrator's target naming a folder or file of the server (``DIR:function``,
    ``file.py:function``) made absolute, since the driver starts in a folder of its own, and
    that path, which its sandbox must show; any other target as it is."""
    where, colon, function = target.rpartition(":")
    if colon and where and os.path.exists(where):
        where = os.path.abspath(where)
        return f"{where}:{function}", [where]
    return target, []


@contextlib.contextmanager
def _driver_home() -> Iterator[str]:
    """A fresh folder for one driver's ``HOME`` and ``LEV_HOME``, holding a copy of the
    server's job settings (``$LEV_HOME/config.toml``: executor defaults, image aliases), not
    its secret nor its database; removed when the driver ends."""
    home = tempfile.mkdtemp(prefix="lev-driver-")
    try:
        config = default_home() / "config.toml"
        if config.is_file():
            shutil.copyfile(config, Path(home) / "config.toml")
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


class TaskRunner:
    """Runs queued jobs as ``lev run`` subprocesses on ``store``, a few at a time."""

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self._store = store
        self._settings = settings or Settings()
        self._slots = asyncio.Semaphore(self._settings.max_running_tasks)
        self._tasks: dict[str, Task] = {}  # by job id, until the task ends
        self._workers: set[asyncio.Task[None]] = set()
        self._stopping = False
        #: the log writers of the driver routes, on the runner's socket and the app alike
        self.driver_logs = DriverLogs()
        self._api_lock = asyncio.Lock()
        self._api: tuple[str, _SocketServer, asyncio.Task[None]] | None = None
        self._secret: bytes | None = None

    # -- what the app and the routes call --------------------------------------------------

    async def start(self) -> int:
        """Settle the running jobs whose process is gone and take up the store's queued
        jobs, oldest first (the server has just started); how many were queued."""
        await run_in_threadpool(self._settle_orphans)
        jobs = await run_in_threadpool(self._store.list_jobs, status="queued",
                                       limit=_REQUEUE_LIMIT, oldest_first=True)
        for job in jobs:
            # A task sent to a device waits in Temporal for its agent, not here.
            if job["id"] not in self._tasks and job["placement"] is None:
                self._take(Task(job["id"], job["target"] or "", job["package"]))
        return len(jobs)

    async def submit(self, target: str, params: dict[str, Any], name: str, owner: str,
                     package: str | None = None) -> str:
        """Record a queued job for ``target`` (of the published ``package==version``, if
        given) with ``params`` (converted, in their typed JSON form) and take it; its id.
        :class:`~levrt.server.params.ParamsInvalid` (``too_large``) names the parameters that
        pass ``max_params_bytes``."""
        check_size(params, self._settings.max_params_bytes)
        job_id = await run_in_threadpool(self._store.create_job, name, target=target,
                                         params=params, owner=owner, package=package,
                                         queued=True)
        self._take(Task(job_id, target, package))
        return job_id

    def driver_of(self, job_id: str) -> str | None:
        """The driver id (``host:pid:start``) of the process running ``job_id``'s workflow,
        as this host sees it, or None when this runner has no such process."""
        task = self._tasks.get(job_id)
        if task is None or task.process is None:
            return None
        pid = task.process.pid
        if task.sandboxed:
            # The workflow is bubblewrap's grandchild, in a PID namespace of its own: its
            # own pid there means nothing to this host.
            pid = _sandboxed_main(pid) or pid
        return driver_id(pid)

    def running_count(self) -> int:
        """Tasks whose ``lev run`` process is alive."""
        return sum(1 for task in list(self._tasks.values())
                   if task.process is not None and task.process.returncode is None)

    def queued_count(self) -> int:
        """Tasks waiting for a slot."""
        return sum(1 for task in list(self._tasks.values()) if task.process is None)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running task of this runner; False if it has no such task."""
        task = self._tasks.get(job_id)
        if task is None or task.cancel_requested.is_set():
            return task is not None
        task.cancel_requested.set()
        if task.process is None:
            # It never starts (and if its lev run is starting right now, that finds the job
            # no longer queued and stops).
            await run_in_threadpool(self._store.end_unfinished_job, job_id, "cancelled",
                                    error="cancelled before it started")
        elif task.process.returncode is None:
            await self._interrupt(task)
        return True

    async def _interrupt(self, task: Task) -> None:
        """SIGINT to the workflow's process: in the sandbox, not bubblewrap, which would
        die of it and take the workflow along before it recorded anything."""
        process = task.process
        assert process is not None
        pid = process.pid
        if task.sandboxed:
            deadline = asyncio.get_running_loop().time() + 10
            while process.returncode is None:
                main = await run_in_threadpool(_sandboxed_main, process.pid)
                if main is not None or asyncio.get_running_loop().time() > deadline:
                    pid = main or pid
                    break
                await asyncio.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)

    async def stop(self) -> None:
        """Cancel the running tasks and wait for their processes (the server is shutting
        down); queued tasks stay queued."""
        self._stopping = True
        for task in list(self._tasks.values()):
            if task.process is not None:
                await self.cancel(task.job_id)
        if self._workers:
            await asyncio.wait(self._workers, timeout=self._settings.cancel_grace + 5)
        if self._api is not None:
            folder, server, serving = self._api
            server.should_exit = True
            await serving
            shutil.rmtree(folder, ignore_errors=True)
            self._api = None

    async def _open_api(self) -> str:
        """The path of the runner's socket, serving the driver routes alone (started at the
        first task): a driver reaches the server through it and nothing else."""
        async with self._api_lock:
            if self._api is None:
                self._secret = await run_in_threadpool(load_secret)
                folder = tempfile.mkdtemp(prefix="lev-api-")  # mode 0700
                path = os.path.join(folder, _SOCKET)
                app = driver_app(self._store, self, self.driver_logs, self._secret,
                                 self._settings.max_json_bytes)
                server = _SocketServer(uvicorn.Config(app, uds=path, lifespan="off",
                                                      log_level="warning"))
                serving = asyncio.create_task(server.serve())
                while not server.started:
                    if serving.done():
                        shutil.rmtree(folder, ignore_errors=True)
                        serving.result()
                        raise RuntimeError(f"the driver API did not start on {path}")
                    await asyncio.sleep(0.01)
                self._api = (folder, server, serving)
            return os.path.join(self._api[0], _SOCKET)

    def _settle_orphans(self) -> None:
        # A job stays "running" when its process was killed outright (the server killed with
        # SIGKILL, the machine stopped): only a driver of this host can be seen to be gone.
        for job in self._store.list_jobs(status="running", limit=_REQUEUE_LIMIT):
            if driver_gone(job["driver"]):
                self._store.end_unfinished_job(
                    job["id"], "failed", error=f"its process ({job['driver']}) ended without "
                    "finishing it: it was killed, or the machine stopped")

    # -- running ---------------------------------------------------------------------------

    def _take(self, task: Task) -> None:
        self._tasks[task.job_id] = task
        worker = asyncio.create_task(self._run(task))
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _run(self, task: Task) -> None:
        try:
            async with self._slots:
                if not (task.cancel_requested.is_set() or self._stopping):
                    await self._execute(task)
        except Exception as exc:  # the task must end recorded, whatever went wrong here
            await run_in_threadpool(self._store.end_unfinished_job, task.job_id, "failed",
                                    error=f"cannot run lev run: {exc}")
        finally:
            self._tasks.pop(task.job_id, None)

    async def _execute(self, task: Task) -> None:
        executor = await run_in_threadpool(choose_executor, self._settings)
        if executor.name is None:
            await run_in_threadpool(self._store.end_unfinished_job, task.job_id, "failed",
                                    error=f"no executor may run it: {executor.reason}")
            return
        # lev run's options before TARGET: after it, a parameter named like one (job, json,
        # ...) would take it over.
        target, shown = _target_path(task.target) if task.package is None else (task.target, [])
        argv = [sys.executable, "-m", "levrt", "run", "--job", task.job_id,
                "--executor", executor.name, "--quiet", target]
        path = []
        if task.package:
            path = await run_in_threadpool(published.search_path, self._store, task.package)
        api = await self._open_api()
        assert self._secret is not None
        if self._stopping:  # the server began to stop meanwhile: the job stays queued
            return
        with _driver_home() as home:
            env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
            env.update(HOME=home, LEV_HOME=home, LEV_API_SOCKET=api,
                       LEV_JOB_TOKEN=make_job_token(self._secret, task.job_id))
            if executor.url is not None:  # the engine that answered, not another one
                env["DOCKER_HOST"] = executor.url
            elif executor.name == "docker" and os.environ.get("DOCKER_HOST"):
                env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
            python_path = [*path, *filter(None, os.environ.get("PYTHONPATH", "").split(
                os.pathsep))]
            if python_path:
                env["PYTHONPATH"] = os.pathsep.join(python_path)
            prefix = await run_in_threadpool(
                self._sandbox, api, home, _engine_sockets(executor.name, executor.url),
                [*python_path, *shown])
            task.sandboxed = bool(prefix)
            # The argument list goes to exec as it is: no shell ever sees the user's values.
            # A session of its own: a cancelled task's leftover processes are killed as a
            # group, and a Ctrl-C meant for the server does not reach the task behind the
            # runner's back.
            process = await spawn(
                *prefix, *argv, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
                start_new_session=True,
            )
            await self._follow(task, process)

    def _sandbox(self, api: str, home: str, engines: list[str],
                 python_path: list[str]) -> list[str]:
        """bubblewrap's argv for a driver (empty without bubblewrap): the host read-only
        and the server's folders empty, but for the runner's socket, the driver's home,
        the container engine's socket (for the docker executor) and the package's files;
        the network is the host's, for the tools."""
        binary = bwrap()
        if binary is None:
            return []
        placed = {api: api, home: home, **{engine: engine for engine in engines}}
        shown = [sys.prefix, sys.base_prefix, sys.executable, *sys.path, *python_path]
        argv = bwrap_argv(placed, kept_paths(shown), binary=binary)
        hide: list[str] = []
        for folder in _hidden_dirs(self._store):
            if PurePosixPath(folder).parts[1] in ("tmp", "proc", "dev"):
                continue  # the sandbox has its own: nothing of the host's shows there
            # What lies below it and must show is shown again, over the empty folder.
            hide += ["--tmpfs", folder]
            hide += [arg for kept in shown if kept.startswith(folder + os.sep)
                     and os.path.exists(kept) for arg in ("--ro-bind", kept, kept)]
            hide += [arg for path in placed if path.startswith(folder + os.sep)
                     for arg in ("--bind", path, path)]
        return [*argv[:-1], *hide, "--"]

    async def _follow(self, task: Task, process: asyncio.subprocess.Process) -> None:
        task.process = process
        cancelled = task.cancel_requested
        if self._stopping:  # stop() looked while the process was being started
            cancelled.set()
        if cancelled.is_set():  # cancelled while the process was being started
            await self._interrupt(task)
        output = asyncio.create_task(process.communicate())
        cancel = asyncio.create_task(cancelled.wait())
        await asyncio.wait({output, cancel}, return_when=asyncio.FIRST_COMPLETED)
        cancel.cancel()
        if cancelled.is_set():
            # SIGINT was sent: lev run records the cancellation and stops its runs. Past the
            # grace time, or if it left anything behind, its session is killed.
            grace = self._settings.cancel_grace
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(output), grace)
            if process.returncode is None:
                await run_in_threadpool(
                    self._store.end_unfinished_job, task.job_id, "cancelled",
                    error=f"cancelled: lev run did not stop within {grace:g} s of SIGINT "
                    "(cancel_grace), and was killed")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        _, stderr = await output
        status = "cancelled" if cancelled.is_set() else "failed"
        await run_in_threadpool(self._record_end, task.job_id, status, stderr,
                                process.returncode)

    def _record_end(self, job_id: str, status: str, stderr: bytes, code: int | None) -> None:
        # lev run finishes the job it started itself: this only settles one it did not
        # start (its error line says why) or one it left running (it was killed).
        job = self._store.get_job(job_id)
        if job is None or job["status"] not in UNFINISHED_STATUSES:
            return
        if job["status"] == "queued":
            error = error_line(stderr, code)
        else:
            error = f"lev run ended (exit code {code}) without finishing the job"
        self._store.end_unfinished_job(job_id, status, error=error)


def local_device(request: Request) -> dict[str, Any]:
    """The server's own runner as a device, with its tasks of every user counted and the
    executor its next task gets (asks the container engine: call it off the event loop)."""
    runner: TaskRunner = request.app.state.runner
    executor = choose_executor(request.app.state.settings)
    return {"name": socket.gethostname(), "kind": "local runner", "status": "online",
            "executor": executor.name or "none", "executor_reason": executor.reason,
            "engine": executor.url, "running": runner.running_count(),
            "queued": runner.queued_count(),
            "max_running_tasks": request.app.state.settings.max_running_tasks}
