"""The device token an agent keeps: ``$LEV_HOME/device.json`` (mode 0600), with the server it
belongs to and the device's name. One device per ``LEV_HOME``: two agents on one machine
each need their own."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from levrt.store import default_home

DEVICE_FILE = "device.json"


class AgentError(Exception):
    """The agent cannot start or go on; the message says what to do."""


def device_path() -> Path:
    return default_home() / DEVICE_FILE


def save_enrolment(server: str, answer: dict[str, Any]) -> Path:
    """Keep the token of ``answer`` (``POST /api/agent/enrol``'s) for ``server``."""
    path = device_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{DEVICE_FILE}.{os.getpid()}")
    kept = {"server": server, "owner": answer["owner"], "name": answer["name"],
            "token": answer["token"]}
    # Created 0600, never chmod-ed after: the token is not readable by others at any moment.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(kept, out)
    os.replace(partial, path)
    return path


def load_enrolment(server: str) -> dict[str, Any]:
    """The kept ``{"server", "owner", "name", "token"}`` for ``server``; AgentError when
    there is none (or it is another server's)."""
    path = device_path()
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgentError(f"this machine is not enrolled ({path} is missing): run lev device "
                         f"add NAME where you use lev, then lev agent --server {server} "
                         "--enrol CODE here") from None
    except (OSError, ValueError) as exc:
        raise AgentError(f"cannot read {path}: {exc}; delete it and enrol again") from None
    if not isinstance(kept, dict) or not {"server", "token", "name"} <= kept.keys():
        raise AgentError(f"{path} is not a device file; delete it and enrol again")
    if kept["server"] != server:
        raise AgentError(f"this machine is enrolled with {kept['server']}, not {server}: "
                         f"use --server {kept['server']}, or another LEV_HOME to enrol with "
                         "both")
    return kept
