"""The `lev` subcommands for package authors: new, check."""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    """Add this module's subcommands to ``lev``'s subparsers."""
    # Filled in by the issue that adds these commands.
