"""A dispatched job's driver on the agent: ``lev run --job`` with the job's own token, in a
session of its own, with nothing of the agent's but what the job needs."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from typing import Any

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


async def start_driver(job_id: str, target: str, path: list[str], server: str,
                       token: str, executor: str = "auto",
                       extra: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """Start ``lev run --job job_id`` for ``target`` with ``path`` (the package's folders)
    on its ``PYTHONPATH``, reaching ``server`` with the job ``token``, its tools run by
    ``executor`` (``auto``: docker when a Docker API answers, else process; ``temporal``
    with ``extra`` naming the pool's queue and Temporal)."""
    url = await asyncio.to_thread(engine_url) if executor in ("auto", "docker") else None
    if executor == "auto":
        executor = "docker" if url is not None else "process"
    env: dict[str, Any] = {name: os.environ[name] for name in _PASSED if name in os.environ}
    # The agent's own path after the package's: where its levrt may come from.
    env.update(LEV_API_URL=server, LEV_JOB_TOKEN=token, PYTHONPATH=os.pathsep.join(
        [*path, *filter(None, [os.environ.get("PYTHONPATH")])]))
    if url is not None:  # the engine that answered, not another one lev run finds
        env["DOCKER_HOST"] = url
    env.update(extra or {})
    # lev run's options before TARGET: after it, a parameter named like one would take it.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "levrt", "run", "--job", job_id, "--executor", executor,
        "--quiet", "--json", target, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        start_new_session=True, preexec_fn=_die_with_agent)


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
