"""Executors run ``Cr`` specs: one protocol (:mod:`.base`), one backend per module."""

from __future__ import annotations

import os

from .._config import EXECUTORS, Settings, config_path, load_settings, read_config
from .base import Executor, ExecutorError, RunHandle, RunObserver, RunSpec

__all__ = [
    "Executor",
    "ExecutorError",
    "RunHandle",
    "RunObserver",
    "RunSpec",
    "create",
]


def create(name: str | None = None, origin: str | None = None) -> Executor:
    """The executor called ``name``; by default the configured one (``LEV_EXECUTOR``).

    ``auto`` picks docker when a Docker API answers (``DOCKER_HOST`` or a usual
    socket), else process. Raises :class:`ExecutorError` starting with where the choice
    came from: ``origin`` when ``name`` is given (``"--executor"``), else ``LEV_EXECUTOR``,
    the config file or the default.
    """
    settings = load_settings()
    if not name:
        name = settings.executor
        origin = _configured_origin(name)
    origin = origin or f"executor={name!r}"
    try:
        if name == "auto":
            from .docker import engine_url

            url = engine_url()
            executor = create_named("docker" if url else "process", settings, url)
            executor.chosen_by = "auto: " + (f"a Docker API answers at {url}" if url else
                                             "no Docker API answers")
            return executor
        return create_named(name, settings)
    except ExecutorError as exc:
        raise ExecutorError(f"{origin}: {exc}") from None


def _configured_origin(name: str) -> str:
    """Where the configured executor comes from, in the precedence of :func:`load_settings`."""
    if os.environ.get("LEV_EXECUTOR"):
        return f"LEV_EXECUTOR={name}"
    path = config_path()
    if path.exists() and "executor" in read_config(path):
        return f"executor = {name!r} in {path}"
    return f"executor {name!r} (the default)"


def create_named(name: str, settings: Settings | None = None, url: str | None = None) -> Executor:
    if name == "process":
        from .process import ProcessExecutor

        return ProcessExecutor(settings=settings)
    if name == "docker":
        from .docker import DockerExecutor

        return DockerExecutor(url, settings)
    if name == "temporal":
        from .temporal import TemporalExecutor

        return TemporalExecutor.from_env()
    raise ExecutorError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
