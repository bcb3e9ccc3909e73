"""The `lev` subcommands for package authors: new, check."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add this module's subcommands to ``lev``'s subparsers."""
    del commands, argparse
