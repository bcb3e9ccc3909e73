"""Where tasks run: ``GET /api/devices``. For now one device, the server's own runner; the
agents of DESIGN §8 will join it."""

from __future__ import annotations

import socket
from typing import Any

from fastapi import APIRouter, Request

from levrt.server.auth import CurrentReader
from levrt.server.runner import TaskRunner, choose_executor
from levrt.server.schemas import errors

router = APIRouter(prefix="/api/devices", tags=["devices"], responses=errors(401))


def local_device(request: Request) -> dict[str, Any]:
    """The server's own runner as a device, with its tasks of every user counted and the
    executor its next task gets (asks the container engine: call it off the event loop)."""
    runner: TaskRunner = request.app.state.runner
    executor = choose_executor(request.app.state.settings)
    return {"name": socket.gethostname(), "kind": "local runner", "status": "online",
            "executor": executor.name or "none", "executor_reason": executor.reason,
            "running": runner.running_count(), "queued": runner.queued_count(),
            "max_running_tasks": request.app.state.settings.max_running_tasks}


@router.get("")
def list_devices(request: Request, user: CurrentReader) -> list[dict[str, Any]]:
    """The devices tasks run on: ``name``, ``kind``, ``status`` (online / offline), the
    ``executor`` their tasks' tools get now (``docker``, ``process``, or ``none`` when tasks
    cannot run) and why (``executor_reason``), ``running`` and ``queued`` tasks
    (everyone's), ``max_running_tasks``."""
    return [local_device(request)]
