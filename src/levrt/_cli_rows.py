"""A job's results as rows on the terminal (``lev show JOB --table`` / ``--csv``) and what
changed between two jobs (``lev diff``), read from the local store like ``lev show``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from . import rows
from ._cli_base import EXIT_FAILED, EXIT_OK, CliError
from ._cli_hub import open_store

if TYPE_CHECKING:
    from .store import Store

__all__ = ["print_diff", "print_tables", "register", "show_rows"]


def _resolve(store: Store, prefix: str) -> str:
    try:
        return store.resolve_job(prefix)
    except LookupError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None


def _title(coll: str) -> str:
    # The pages' words for a collection, without importing the server.
    return "job document (_)" if coll == "_" else coll


# A cell's width at most, in characters, on the terminal: one long value (nmap's list of OS
# guesses) would squeeze every other column into a letter wide. Key columns are never cut.
_CELL_WIDTH = 24
_KEY_WIDTH = 45
# A cell's width at least: on a narrow terminal rich otherwise squeezes a column to nothing,
# header and all, and the table loses it without a sign.
_CELL_MIN_WIDTH = 5
_PIPED_WIDTH = 1000


def _console() -> Console:
    """The terminal's width on a terminal; piped or redirected, wide enough for any table
    (rich would take 80 columns and crop what is past them without a sign)."""
    console = Console()
    return console if console.is_terminal else Console(width=_PIPED_WIDTH)


def _add_columns(shown: RichTable, columns: Sequence[str], keys: Sequence[str],
                 found: Sequence[rows.Row]) -> None:
    for column in columns:
        if column in keys:
            # Two more for a diff's mark ("+ ").
            widest = 2 + max([len(column),
                              *(len(rows.cell_text(row.get(column))) for row in found)])
            shown.add_column(column, style="bold", no_wrap=True, min_width=min(widest, _KEY_WIDTH))
        else:
            shown.add_column(column, no_wrap=True, overflow="ellipsis", max_width=_CELL_WIDTH,
                             min_width=min(len(column), _CELL_MIN_WIDTH))


def _fit(shown: RichTable, console: Console) -> RichTable:
    """``shown`` at least as wide as its columns' minimum widths, cut at the terminal's right
    edge when that is narrower (rich would rather squeeze some columns to nothing)."""
    # Each cell has a space either side, and there is a rule before each column and after all.
    least = sum(column.min_width or 0 for column in shown.columns) + 3 * len(shown.columns) + 1
    if least > console.width:
        shown.width = least
    return shown


def print_tables(console: Console, found: Sequence[rows.Table]) -> None:
    """Each table as a terminal table, key columns bold, under its collection's name."""
    if not found:
        console.print(Text("no rows", style="dim"))
    for table in found:
        keys = f"; keys {', '.join(table.keys)}" if table.keys else ""
        # Its own line: a table's title wraps to the table's width, a narrow one's badly.
        console.print(Text(f"{_title(table.coll)}: {len(table.rows)} "
                           f"row{'' if len(table.rows) == 1 else 's'}{keys}"))
        shown = RichTable()
        _add_columns(shown, table.columns, table.keys, table.rows)
        for row in table.rows:
            shown.add_row(*(Text(rows.cell_text(row.get(column))) for column in table.columns))
        console.print(_fit(shown, console))


def show_rows(job: str, *, csv: bool, coll: str | None = None) -> int:
    """``lev show JOB --table`` (or ``--csv``): the job's rows, from the local store."""
    with open_store() as store:
        found = rows.job_tables(store, _resolve(store, job))
    if coll is not None:
        kept = [table for table in found if table.coll == coll]
        if not kept:
            held = ", ".join(table.coll for table in found) or "none"
            raise CliError(f"--coll {coll!r}: the job has no such collection (it has: {held})",
                           EXIT_FAILED)
        found = kept
    if csv:
        sys.stdout.write(rows.to_csv(found))
    else:
        print_tables(_console(), found)
    return EXIT_OK


def print_diff(console: Console, found: Sequence[rows.TableDiff]) -> None:
    """Per collection, its counts, then its rows marked ``+`` new, ``-`` gone, ``~`` changed
    (a changed cell as ``before → after``)."""
    for table in found:
        counts = (f"{len(table.new)} new, {len(table.gone)} gone, {len(table.changed)} changed, "
                  f"{table.same} same")
        if not (table.new or table.gone or table.changed):
            console.print(Text(f"{_title(table.coll)}: {counts}", style="dim"))
            continue
        console.print(Text(f"{_title(table.coll)}: {counts}"))
        shown = RichTable()
        # The mark goes in the first cell: rich squeezes a column of its own to nothing.
        _add_columns(shown, table.columns, [*table.columns[:1], *table.keys],
                     [*table.new, *table.gone, *(change.row for change in table.changed)])
        for mark, style, row in ([("+", "green", row) for row in table.new]
                                 + [("-", "red", row) for row in table.gone]):
            cells = [rows.cell_text(row.get(column)) for column in table.columns]
            shown.add_row(*(Text(f"{mark} {cell}" if not at else cell, style=style)
                            for at, cell in enumerate(cells)))
        for change in table.changed:
            changed = []
            for at, column in enumerate(table.columns):
                if column in change.fields:
                    before, after = change.fields[column]
                    text = Text(f"{rows.cell_text(before)} → {rows.cell_text(after)}",
                                style="yellow")
                else:
                    text = Text(rows.cell_text(change.row.get(column)))
                changed.append(Text("~ ", style="yellow") + text if not at else text)
            shown.add_row(*changed)
        console.print(_fit(shown, console))


def _cmd_diff(args: argparse.Namespace, extras: list[str]) -> int:
    with open_store() as store:
        before, after = _resolve(store, args.before), _resolve(store, args.after)
        found = rows.diff(rows.job_tables(store, before), rows.job_tables(store, after))
    if args.json:
        answer: dict[str, Any] = {"task": after, "with": before,
                                  "tables": [table.to_json() for table in found]}
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        console = _console()
        console.print(Text(f"from job {before} to job {after}", style="bold"))
        print_diff(console, found)
    return EXIT_OK


def register(commands: Any) -> None:
    """Add ``lev diff`` to ``lev``'s subparsers."""
    diff = commands.add_parser(
        "diff", help="what changed from one job's rows to another's",
        description="Compare the rows of two jobs of the local store, collection by "
        "collection, matched by the keys their tools declare (else whole rows): new, gone, "
        "changed (with the columns that changed).")
    diff.add_argument("before", metavar="JOB_A", help="the earlier job (id or unique prefix)")
    diff.add_argument("after", metavar="JOB_B", help="the later job (id or unique prefix)")
    diff.add_argument("--json", action="store_true",
                      help="print it as JSON (the shape of GET /api/tasks/ID/diff)")
    diff.set_defaults(handler=_cmd_diff)
