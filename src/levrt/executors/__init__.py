"""Executors run ``Cr`` specs: one protocol (:mod:`.base`), one backend per module."""

from __future__ import annotations

import os

from .base import Executor, ExecutorError, RunHandle, RunObserver, RunSpec

__all__ = [
    "Executor",
    "ExecutorError",
    "RunHandle",
    "RunObserver",
    "RunSpec",
    "NAMES",
    "create",
    "default_name",
]

NAMES = ("process",)


def default_name() -> str:
    return os.environ.get("LEV_EXECUTOR", "process")


def create(name: str | None = None) -> Executor:
    """The executor called ``name`` (default: ``LEV_EXECUTOR`` or ``process``)."""
    name = name or default_name()
    if name == "process":
        from .process import ProcessExecutor

        return ProcessExecutor()
    raise ExecutorError(f"unknown executor {name!r}; choose one of: {', '.join(NAMES)}")
