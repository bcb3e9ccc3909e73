"""Result documents as flat rows, what changed between two jobs, and the assets they found.

A document with nested lists of records (an nmap host with its list of ports) becomes one
row per innermost record, carrying its parents' fields::

    {"host": "127.0.0.1", "os": [], "ports": [{"port": 22, ...}, {"port": 80, ...}]}
    -> {"host": "127.0.0.1", "port": 22, ...}, {"host": "127.0.0.1", "port": 80, ...}

The rules (docs/monitoring.md says the same for users):

- a list whose items are all objects is a list of records: each record makes rows of its
  own, with the fields of the records around it; several such lists in one record make
  rows each, one after the other (never their product);
- a list of plain values is one cell, unless it is the record's only list and the record
  holds no list of records: then each value is a row (``{"alive": [a, b]}`` is two rows);
- an object that is not in a list is part of its record: ``service.name``;
- an empty list is no cell;
- a field keeps its name unless a record around it has a field of that name already: then
  it is prefixed with the path of lists that lead to it (``ports.host``).

A table's **keys** name the columns that identify a row across jobs (``host, port``): a
tool declares them (``annot.meta(keys=[...])`` or ``Cr(keys=[...])``) and each run stores
them with its spec. Without keys, a row's key is the whole row: a changed value reads as one
row gone and one new.

Pure functions over data, plus :func:`job_tables` and :func:`asset_rows` which read a store.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._job_json import to_json

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Asset", "AssetIndex", "Change", "Table", "TableDiff", "asset_rows", "assets",
           "cell_text", "columns", "diff", "flatten", "job_tables", "key_names", "row_key",
           "tables", "to_csv"]

Row = dict[str, Any]


def flatten(data: Any) -> list[Row]:
    """The rows of one document's ``data`` (a dict; anything else is one row ``value``)."""
    if not isinstance(data, dict):
        return [{"value": data}]
    return _rows(data, {}, ())


def _name(key: str, outer: Mapping[str, Any], own: Mapping[str, Any],
          path: tuple[str, ...]) -> str:
    """``key``, or the path to it when a record around it (``outer``) or its own record
    (``own``) took that name already."""
    if key not in outer and key not in own:
        return key
    for depth in range(len(path) - 1, -1, -1):
        longer = ".".join((*path[depth:], key))
        if longer not in outer and longer not in own:
            return longer
    return ".".join((*path, key, "1"))


Lists = list[tuple[str, list[Any]]]


def _cells(record: dict[str, Any], prefix: str, into: Row, outer: Row,
           path: tuple[str, ...]) -> tuple[Lists, Lists]:
    """Put ``record``'s own cells in ``into``; its lists of records and of plain values,
    each with its dotted name."""
    record_lists: Lists = []
    value_lists: Lists = []
    # dict and list, not Mapping and Sequence: documents are decoded JSON, and checks
    # against the abstract classes were most of what flattening a store's jobs cost.
    for key, value in record.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            inner = _cells(value, f"{dotted}.", into, outer, path)
            record_lists += inner[0]
            value_lists += inner[1]
        elif isinstance(value, list):
            if value and all(isinstance(item, dict) for item in value):
                record_lists.append((dotted, value))
            elif value:
                value_lists.append((dotted, value))
        else:
            into[_name(dotted, outer, into, path)] = value
    return record_lists, value_lists


def _rows(record: dict[str, Any], outer: Row, path: tuple[str, ...]) -> list[Row]:
    own: Row = {}
    record_lists, value_lists = _cells(record, "", own, outer, path)
    if not record_lists and len(value_lists) == 1:
        # A record that is only a list of values (nmap's alive hosts): a row per value.
        name, values = value_lists[0]
        column = _name(name, outer, own, path)
        return [{**outer, **own, column: item} for item in values]
    for name, values in value_lists:
        own[_name(name, outer, own, path)] = list(values)
    here = {**outer, **own}
    if not record_lists:
        return [here]
    found: list[Row] = []
    for name, items in record_lists:
        for item in items:
            found += _rows(item, here, (*path, name))
    return found


@dataclass
class Table:
    """The rows of one collection of a job: ``columns`` as :func:`columns` orders them,
    ``keys`` the columns that identify a row (empty: the whole row does)."""

    coll: str
    keys: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"coll": self.coll, "keys": self.keys, "columns": self.columns,
                "rows": to_json(self.rows)}


def tables(documents: Iterable[Mapping[str, Any]],
           keys: Mapping[int | None, Sequence[str]] | None = None) -> list[Table]:
    """One :class:`Table` per collection of ``documents`` (the store's dicts: ``coll``,
    ``run_id``, ``data``), the job's own (``_``) first, then in the order of the documents.
    ``keys`` maps a run id to the keys its tool declared; a table takes the first it finds."""
    found: dict[str, Table] = {}
    ordered = sorted(documents, key=lambda doc: doc["coll"] != "_")
    for doc in ordered:
        table = found.setdefault(doc["coll"], Table(doc["coll"]))
        declared = key_names((keys or {}).get(doc["run_id"]))
        if declared and not table.keys:
            table.keys = declared
        table.rows += flatten(doc["data"])
    for table in found.values():
        table.columns = columns(table.rows)
    return list(found.values())


def key_names(declared: Any) -> list[str] | None:
    """The keys a run declared (its spec's ``keys``, which its driver wrote) when they are a
    list of column names; None for anything else, which names no row."""
    if isinstance(declared, list) and all(isinstance(key, str) for key in declared):
        return list(declared)
    return None


def columns(found: Iterable[Row]) -> list[str]:
    """The columns of rows in the order they first appear, those holding lists (nmap's OS
    guesses) last: they read best after the plain values that name a row."""
    seen: dict[str, bool] = {}
    for row in found:
        for column, value in row.items():
            seen[column] = seen.get(column, False) or isinstance(value, list)
    return sorted(seen, key=lambda column: seen[column])


def job_tables(store: Store, job_id: str) -> list[Table]:
    """The tables of the job ``job_id``'s documents, with the keys its runs declared."""
    declared = {run["run_id"]: (run["spec"] or {}).get("keys")
                for run in store.list_runs(job_id)}
    return tables(store.list_documents(job_id), declared)


def cell_text(value: Any) -> str:
    """A cell as text: plain values as they read, a list of plain values joined by ``, ``,
    anything else as JSON; ``None`` is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    return json.dumps(to_json(value), ensure_ascii=False, sort_keys=True)


# A spreadsheet opening CSV runs text starting with one of these as a formula (a scanned
# host's banner could call a program): such text is written after an apostrophe, which
# makes the spreadsheet show it as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    text = cell_text(value)
    if text.startswith(_FORMULA_STARTS) and not isinstance(value, (int, float)):
        return "'" + text
    return text


def to_csv(found: Sequence[Table]) -> str:
    """CSV text: one table's columns; several tables in one listing with a first column
    ``collection`` and the union of their columns. Text a spreadsheet would take for a
    formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) starts with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    several = len(found) != 1
    columns: list[str] = []
    for table in found:
        columns += [column for column in table.columns if column not in columns]
    writer.writerow([_csv_cell(name) for name in (["collection"] if several else []) + columns])
    for table in found:
        for row in table.rows:
            writer.writerow(([_csv_cell(table.coll)] if several else [])
                            + [_csv_cell(row.get(column)) for column in columns])
    return out.getvalue()


def row_key(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    """What identifies ``row`` across jobs, as text: its ``keys`` columns, or (without keys)
    the whole row."""
    picked = {key: _canonical(row.get(key)) for key in (keys or row)}
    return json.dumps(picked, sort_keys=True, ensure_ascii=False, default=_plain)


def _canonical(value: Any) -> Any:
    """``value`` with the items of its lists in one order: a list in a cell is a set of
    facts (nmap lists OS guesses of equal accuracy in any order from one scan to the next),
    so two lists with the same items are the same value."""
    if not isinstance(value, list):
        return value
    items = [_canonical(item) for item in value]
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=_plain))


def _plain(value: Any) -> Any:
    """What ``json.dumps`` cannot write itself (bytes), as :func:`to_json` writes it."""
    return to_json(value)


@dataclass
class Change:
    """A row found in both jobs under one key with other values: ``fields`` maps each
    column that changed to ``[before, after]``; ``row`` is the row now."""

    key: dict[str, Any]
    fields: dict[str, list[Any]]
    row: Row

    def to_json(self) -> dict[str, Any]:
        return to_json({"key": self.key, "fields": self.fields, "row": self.row})


@dataclass
class TableDiff:
    """What changed in one collection from an earlier job to a later one."""

    coll: str
    keys: list[str]
    columns: list[str]
    new: list[Row] = field(default_factory=list)
    gone: list[Row] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    same: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"coll": self.coll, "keys": self.keys, "columns": self.columns,
                "new": to_json(self.new), "gone": to_json(self.gone),
                "changed": [change.to_json() for change in self.changed], "same": self.same}


def _by_key(rows: Iterable[Row], keys: Sequence[str]) -> dict[str, Row]:
    # Two rows of one job under one key (a tool that reports a port twice): the last wins.
    return {row_key(row, keys): row for row in rows}


def diff(before: Sequence[Table], after: Sequence[Table]) -> list[TableDiff]:
    """Compare two jobs' tables, collection by collection (those of ``after`` first, in its
    order, then those only ``before`` has). A row is matched by its table's keys (``after``'s,
    else ``before``'s): ``new`` (only after), ``gone`` (only before), ``changed`` (both, with
    other values in some column; a list's order does not count), ``same`` counts the rest."""
    earlier = {table.coll: table for table in before}
    later = {table.coll: table for table in after}
    found = []
    for coll in [*later, *(coll for coll in earlier if coll not in later)]:
        old = earlier.get(coll) or Table(coll)
        new = later.get(coll) or Table(coll)
        keys = new.keys or old.keys
        columns = new.columns + [c for c in old.columns if c not in new.columns]
        result = TableDiff(coll, list(keys), columns)
        old_rows, new_rows = _by_key(old.rows, keys), _by_key(new.rows, keys)
        for key, row in new_rows.items():
            was = old_rows.get(key)
            if was is None:
                result.new.append(row)
                continue
            changed = {column: [was.get(column), row.get(column)] for column in columns
                       if _canonical(was.get(column)) != _canonical(row.get(column))}
            if changed:
                result.changed.append(Change({k: row.get(k) for k in keys}, changed, row))
            else:
                result.same += 1
        result.gone = [row for key, row in old_rows.items() if key not in new_rows]
        found.append(result)
    return found


@dataclass
class Asset:
    """The latest row known under one key of one collection, across jobs."""

    coll: str
    keys: list[str]
    row: Row
    first_seen: datetime
    last_seen: datetime
    first_job: str
    last_job: str
    jobs: int = 1

    def to_json(self) -> dict[str, Any]:
        return to_json({"coll": self.coll, "keys": self.keys, "row": self.row,
                        "first_seen": self.first_seen, "last_seen": self.last_seen,
                        "first_job": self.first_job, "last_job": self.last_job,
                        "jobs": self.jobs})


def _fold(known: dict[tuple[str, str], Asset], job_id: str, when: datetime,
          found: Sequence[Table]) -> None:
    """Add one job's rows to ``known``, in any order of jobs: the row of the job that ended
    last is kept."""
    for table in found:
        for key, row in _by_key(table.rows, table.keys).items():
            asset = known.get((table.coll, key))
            if asset is None:
                known[(table.coll, key)] = Asset(table.coll, list(table.keys), row, when, when,
                                                 job_id, job_id)
                continue
            asset.jobs += 1
            if when >= asset.last_seen:
                asset.row, asset.last_seen, asset.last_job = row, when, job_id
            if when < asset.first_seen:
                asset.first_seen, asset.first_job = when, job_id


def _newest_first(known: dict[tuple[str, str], Asset]) -> list[Asset]:
    return sorted(known.values(), key=lambda asset: asset.last_seen, reverse=True)


def assets(jobs: Iterable[tuple[str, datetime, Sequence[Table]]]) -> list[Asset]:
    """The latest row per key and collection over ``jobs`` (id, when it ended, its tables),
    with when and in which job it was first and last seen; newest seen first."""
    known: dict[tuple[str, str], Asset] = {}
    for job_id, when, found in jobs:
        _fold(known, job_id, when, found)
    return _newest_first(known)


def _read_jobs(store: Store, owner: str | None, since: datetime | None,
               ) -> Iterator[tuple[str, datetime, list[Table]]]:
    found = store.owned_results(owner, since=since)
    declared: dict[str, dict[int | None, Any]] = {}
    for run in found["runs"]:
        declared.setdefault(run["job_id"], {})[run["run_id"]] = run["keys"]
    by_job: dict[str, list[Mapping[str, Any]]] = {}
    for doc in found["documents"]:
        by_job.setdefault(doc["job_id"], []).append(doc)
    for job_id, ended in found["jobs"]:
        yield job_id, ended, tables(by_job.get(job_id, []), declared.get(job_id))


def asset_rows(store: Store, owner: str | None) -> list[Asset]:
    """:func:`assets` over the finished (``done``) jobs of ``owner`` (None: every job) in
    ``store``, read in three queries whatever the number of jobs."""
    return assets(_read_jobs(store, owner, None))


class AssetIndex:
    """The assets of one owner (None: everyone's), kept between calls: :meth:`update` reads
    only the jobs that ended since the last one it saw, so a page of assets costs what the
    new jobs hold, not all of them. Thread-safe. A done job never changes, so nothing read
    needs reading again."""

    def __init__(self, owner: str | None) -> None:
        self.owner = owner
        self._known: dict[tuple[str, str], Asset] = {}
        self._folded: set[str] = set()
        self._since: datetime | None = None
        self._lock = threading.Lock()

    def update(self, store: Store) -> list[Asset]:
        """The assets now, newest seen first, after reading the jobs that ended since."""
        with self._lock:
            # From the last end seen, itself included: a job that ended in the same instant
            # may have been written after the last read.
            for job_id, when, found in _read_jobs(store, self.owner, self._since):
                if job_id in self._folded:
                    continue
                _fold(self._known, job_id, when, found)
                self._folded.add(job_id)
                self._since = when if self._since is None else max(self._since, when)
            return _newest_first(self._known)
