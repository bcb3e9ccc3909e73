"""What every ``lev`` command module shares: exit codes, the error that ends a command with
one line, and how statuses, log lines and ``--params`` look. A leaf: the command modules
import it, it imports none of them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ._text import visible

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "STATUS_STYLES", "CliError",
           "json_params", "prefixed", "status_text"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# By job status (levrt._status); a run's statuses are among them.
STATUS_STYLES = {"queued": "cyan", "running": "yellow", "done": "green", "failed": "red",
                 "cancelled": "magenta"}


class CliError(Exception):
    """Ends the command with one ``lev: error:`` line and ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def json_params(text: str | None) -> dict[str, Any]:
    """``--params JSON`` as a dict (empty when not given); CliError unless a JSON object."""
    if text is None:
        return {}
    try:
        given = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--params: not valid JSON: {exc}") from None
    if not isinstance(given, dict):
        raise CliError(f"--params: expected a JSON object, got {type(given).__name__}")
    return given


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _log_prefix(run_id: int | None) -> str:
    return "[job]" if run_id is None else f"[run {run_id}]"


def prefixed(run_id: int | None, lines: list[str], *, terminal: bool) -> list[str]:
    """Log lines as shown, each with its run's prefix. On a ``terminal``, control characters
    (colours, titles, clear-screen) show as escapes: a tool's output must not drive the
    user's terminal. Elsewhere (a pipe, a file) the text stays as the tool wrote it."""
    prefix = _log_prefix(run_id)
    # A log entry may hold several lines (a job's error with its run's log tail).
    return [f"{prefix} {part}" for line in lines
            for part in (visible(line) if terminal else line).splitlines() or [""]]


def print_listing(items: list[dict[str, Any]], *, as_json: bool, what: str,
                  columns: Sequence[str], row: Callable[[dict[str, Any]], Sequence[Any]],
                  right: Sequence[str] = ()) -> int:
    """Print ``items`` as JSON (``as_json``) or as a table of ``columns`` (those in ``right``
    right-aligned) with one ``row(item)`` each, or ``no WHAT`` when there are none; EXIT_OK."""
    if as_json:
        print(json.dumps(items, indent=2, ensure_ascii=False))
        return EXIT_OK
    console = Console()
    if not items:
        console.print(Text(f"no {what}", style="dim"))
        return EXIT_OK
    table = Table()
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for item in items:
        table.add_row(*row(item))
    console.print(table)
    return EXIT_OK
