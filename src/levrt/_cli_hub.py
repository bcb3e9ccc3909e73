"""The `lev` subcommands for the hub: serve, user, login, publish, install."""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    """Add this module's subcommands to ``lev``'s subparsers."""
    # Filled in by the issue that adds these commands.
