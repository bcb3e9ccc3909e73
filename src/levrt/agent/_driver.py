"""A dispatched job's driver on the agent: ``lev run --job`` with the job's own token, in a
session of its own, with nothing of the agent's but what the job needs."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from typing import Any

from levrt._subprocess import spawn
from levrt.executors.docker import engine_url

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# What the driver keeps of the agent's environment: the device token, LEV_HOME and the
# rest stay with the agent.
_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "DOCKER_HOST")


def _die_with_agent() -> None:
    # A driver must not outlive a killed agent: Temporal gives its job to another agent
    # after the heartbeat timeout, and two drivers would write the same job. SIGKILL keeps
    # the job running for that one to take (SIGINT would record it cancelled); the runs die
    # with the driver (the sandbox's --die-with-parent; containers are reaped as those of a
    # driver that is gone).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _base_env() -> dict[str, str]:
    return {name: os.environ[name] for name in _PASSED if name in os.environ}


async def _spawn(*argv: str, env: dict[str, str], stdin: int) -> asyncio.subprocess.Process:
    return await spawn(
        sys.executable, *argv, stdin=stdin, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
        preexec_fn=_die_with_agent)


class Drivers:
    """Starts the drivers of an agent's jobs. One is kept started ahead (``warm``, the
    default): a Python process that has imported ``lev run``'s modules and waits for its
    job (:mod:`levrt._cli_warm`), which takes about 0.4 s off each job's start. The next one
    starts as one is handed its job (a job that comes before it is ready waits for its
    imports to end, which is still sooner than a new process). :meth:`aclose` stops the one
    waiting."""

    def __init__(self, *, warm: bool = True) -> None:
        self._warm = warm
        self._closed = False
        self._later: asyncio.Task[None] | None = None
        self._spare: asyncio.subprocess.Process | None = None

    async def start(self, job_id: str, target: str, path: list[str], server: str,
                    token: str, executor: str = "auto",
                    extra: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        """Start ``lev run --job job_id`` for ``target`` with ``path`` (the package's
        folders) on its ``PYTHONPATH``, reaching ``server`` with the job ``token``, its tools
        run by ``executor`` (``auto``: docker when a Docker API answers, else process;
        ``temporal`` with ``extra`` naming the pool's queue and Temporal)."""
        url = await asyncio.to_thread(engine_url) if executor in ("auto", "docker") else None
        if executor == "auto":
            executor = "docker" if url is not None else "process"
        # The agent's own path after the package's: where its levrt may come from.
        env = {"LEV_API_URL": server, "LEV_JOB_TOKEN": token, "PYTHONPATH": os.pathsep.join(
            [*path, *filter(None, [os.environ.get("PYTHONPATH")])])}
        if url is not None:  # the engine that answered, not another one lev run finds
            env["DOCKER_HOST"] = url
        env.update(extra or {})
        # lev run's options before TARGET: after it, a parameter named like one would take it.
        argv = ["run", "--job", job_id, "--executor", executor, "--quiet", target]
        if not self._warm:
            return await _spawn("-m", "levrt", *argv, env={**_base_env(), **env},
                                stdin=asyncio.subprocess.DEVNULL)
        process, self._spare = self._spare, None
        if process is None or process.returncode is not None:
            await _discard(process)
            process = await self._spawn_warm()
        order = json.dumps({"argv": argv, "env": env, "path": path}) + "\n"
        assert process.stdin is not None
        process.stdin.write(order.encode())
        process.stdin.close()
        if self._later is None or self._later.done():
            self._later = asyncio.create_task(self.prepare())
        return process

    async def prepare(self) -> None:
        """Start the driver kept ahead, unless one is waiting already."""
        if not self._warm or self._closed or self._spare is not None:
            return
        fresh = await self._spawn_warm()
        if self._spare is None and not self._closed:
            self._spare = fresh
        else:  # another job's start (or aclose) came first meanwhile
            await _discard(fresh)

    @staticmethod
    async def _spawn_warm() -> asyncio.subprocess.Process:
        return await _spawn("-m", "levrt._cli_warm", env=_base_env(),
                            stdin=asyncio.subprocess.PIPE)

    async def aclose(self) -> None:
        """Stop the driver kept ahead; none is kept after."""
        self._closed = True
        if self._later is not None:  # not cancelled: a process it started would be lost
            with contextlib.suppress(Exception):
                await self._later
        process, self._spare = self._spare, None
        await _discard(process)


async def _discard(process: asyncio.subprocess.Process | None) -> None:
    """End a driver that was never handed a job, and reap it."""
    if process is None:
        return
    if process.returncode is None:  # else its id may be another process's by now
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    await process.communicate()


async def stop_driver(process: asyncio.subprocess.Process, output: asyncio.Future[Any],
                      grace: float) -> None:
    """Interrupt the driver (it records its job cancelled and stops its runs); past
    ``grace`` seconds, or once it exited, kill whatever is left of its session."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(output), grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await output
