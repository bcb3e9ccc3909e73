"""Executors run ``Cr`` specs: one protocol (:mod:`.base`), one backend per module."""

from __future__ import annotations

from .._config import EXECUTORS, Settings, load_settings
from .base import Executor, ExecutorError, RunHandle, RunObserver, RunSpec

__all__ = [
    "Executor",
    "ExecutorError",
    "RunHandle",
    "RunObserver",
    "RunSpec",
    "create",
]


def create(name: str | None = None) -> Executor:
    """The executor called ``name``; by default the configured one (``LEV_EXECUTOR``).

    ``auto`` picks docker when a Docker API answers (``DOCKER_HOST`` or a usual
    socket), else process.
    """
    settings = load_settings()
    name = name or settings.executor
    if name == "auto":
        from .docker import engine_url

        url = engine_url()
        executor = create_named("docker" if url else "process", settings, url)
        executor.chosen_by = "auto: " + (f"a Docker API answers at {url}" if url else
                                         "no Docker API answers")
        return executor
    return create_named(name, settings)


def create_named(name: str, settings: Settings | None = None, url: str | None = None) -> Executor:
    if name == "process":
        from .process import ProcessExecutor

        return ProcessExecutor(settings=settings)
    if name == "docker":
        from .docker import DockerExecutor

        return DockerExecutor(url, settings)
    raise ExecutorError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
