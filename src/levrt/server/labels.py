"""What the web pages call things: collections, runs, log lines, parameter types and a
workflow's result in words a security engineer reads, rather than the store's names
(``szczecin/nmap.port_os@1.0``, ``port_os.entry``, ``int | None``)."""

from __future__ import annotations

import json
import re
from typing import Any

from levrt._job_json import to_json

# The collection of a job's own document (see levrt._context.collection_name).
JOB_COLL = "_"


def schema_label(schema: str) -> str:
    """``szczecin/nmap.port_os@1.0`` as ``nmap · port_os``: owner and version dropped, the
    tool and its mode apart."""
    name = schema.rpartition("/")[2].partition("@")[0] or schema
    tool, dot, mode = name.rpartition(".")
    return f"{tool} · {mode}" if dot and tool else name


def coll_label(coll: str) -> str:
    """A collection in words: ``_`` is the job's ``Summary``; ``<schema>|b|a`` (namespace
    ``a / b``) is ``nmap · port_os in a / b``; a namespace's own document is ``a / b``."""
    if coll == JOB_COLL:
        return "Summary"
    parts = coll.split("|")
    schema = parts[0] if "/" in parts[0] or "@" in parts[0] else None
    namespace = " / ".join(reversed(parts[1:] if schema else parts))
    if schema is None:
        return namespace
    return f"{schema_label(schema)} in {namespace}" if namespace else schema_label(schema)


def run_label(run: dict[str, Any]) -> str:
    """``port_os 127.0.0.1``: the mode (a nested entry's outer function, not ``.entry``)
    and what it works on (the spec summary's ``arg``)."""
    name = str(run.get("name") or "").partition(".")[0] or str(run.get("name") or "")
    arg = (run.get("spec") or {}).get("arg")
    return f"{name} {arg}" if arg else name


# A line that reads as a failure, whichever stream it came on.
ERROR_LINE = re.compile(r"\b(error|failed|failure|fatal|traceback|exception|denied|"
                         r"refused|cannot|could not|unable to)\b", re.IGNORECASE)


# levrt's own lines in a job's log: how the job started and ended, the "lev" logger's records.
NOTE_LINE = re.compile(r"^(job [0-9a-f]+ |job (failed|cancelled): |(DEBUG|INFO|WARNING) lev)")


def line_kind(stream: str, text: str) -> str:
    """What a log line is, for its colour: ``error`` (a line that says something failed,
    whichever stream it came on), ``note`` (levrt's own) or ``output`` (the tool's or the
    workflow's, stdout and stderr alike: many tools write progress on stderr)."""
    if ERROR_LINE.search(text):
        return "error"
    return "note" if stream == "job" and NOTE_LINE.match(text) else "output"


def type_words(annotation: str | None, required: bool) -> str:
    """A parameter's type in words: ``number``, ``list of text``, ``optional``…"""
    text = (annotation or "").replace(" ", "")
    optional = not required or "None" in text.split("|") or text.startswith("Optional[")
    text = re.sub(r"^Optional\[(.*)\]$", r"\1", text)
    text = "|".join(p for p in text.split("|") if p != "None")
    base, _, item = text.partition("[")
    words = _TYPE_WORDS.get(base.lower(), "text" if not base else base)
    if base.lower() in ("list", "tuple", "set") and item:
        words = f"list of {_TYPE_WORDS.get(item.rstrip(']').lower(), 'values')}"
    return f"{words}, optional" if optional else words


_TYPE_WORDS = {"str": "text", "int": "whole number", "float": "number", "bool": "yes or no",
               "list": "list", "tuple": "list", "set": "list", "dict": "key-value data",
               "bytes": "file", "file": "file", "levrt.file": "file", "any": "any value"}


def shape(value: Any) -> dict[str, Any]:
    """How to show a value: ``{"kind": "text"}`` for text (``multiline`` when it has line
    breaks), ``"pairs"`` for a dict (nested values as compact JSON), ``"rows"`` for a list
    of dicts (with their ``columns``), ``"list"`` for a list of plain values, ``"json"``
    otherwise; always with ``json``, the value as indented JSON."""
    data = to_json(value)
    shown: dict[str, Any] = {"json": json.dumps(data, indent=2, ensure_ascii=False)}
    if isinstance(data, str):
        return {**shown, "kind": "text", "text": data, "multiline": "\n" in data.strip()}
    if isinstance(data, dict) and data:
        return {**shown, "kind": "pairs", "pairs": [(k, cell(v)) for k, v in data.items()]}
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        columns = list(dict.fromkeys(key for item in data for key in item))
        return {**shown, "kind": "rows", "columns": columns,
                "rows": [[cell(item[key]) if key in item else "" for key in columns]
                         for item in data]}
    if isinstance(data, list) and data and all(_plain(v) for v in data):
        return {**shown, "kind": "list", "items": [cell(v) for v in data]}
    return {**shown, "kind": "json"}


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def cell(value: Any) -> str:
    """A value in a table cell: text as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))


def result_count(job: dict[str, Any]) -> str:
    """How much a task's result holds, for the task list: ``3 items``, ``1 value``, or
    nothing when it returned nothing (or is not done)."""
    result = job.get("result")
    if result is None:
        return ""
    if isinstance(result, dict) and set(result) == {"$document"}:
        return "1 document"
    if isinstance(result, (list, dict)):
        return f"{len(result)} item{'' if len(result) == 1 else 's'}"
    return "1 value"
