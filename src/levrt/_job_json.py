"""A job as JSON data: what ``lev run --json`` and ``lev show --json`` print, what the
server's task routes answer and its pages embed, in one shape."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from .shim.entry import encode

if TYPE_CHECKING:
    from .store import Store

__all__ = ["BUNDLE_LOG_BYTES", "BUNDLE_LOG_ROWS", "job_bundle", "to_json"]

# How much of a job's log its bundle carries: the rest is read page by page.
BUNDLE_LOG_ROWS = 200
BUNDLE_LOG_BYTES = 1024 * 1024


def _json_hook(value: Any, path: str) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{path}: {type(value).__name__} is not JSON data")


def to_json(value: Any) -> Any:
    """``value`` (store rows, documents) as JSON data: datetimes as ISO 8601 text, bytes as
    the runtime encodes them. TypeError names the path of anything else that is not JSON."""
    return encode(value, _json_hook, "output")


def _result_json(result: Any) -> Any:
    try:
        return to_json(result)
    except TypeError:
        return repr(result)


def job_bundle(store: Store, job_id: str, result: Any = None) -> dict[str, Any]:
    """The job ``job_id`` of ``store`` as ``{"job", "runs", "documents", "log", "log_more",
    "result"}``: its record, runs, documents, the tail of its log (at most
    ``BUNDLE_LOG_ROWS`` rows and about ``BUNDLE_LOG_BYTES`` of text; ``log_more`` tells
    whether earlier rows exist, to be read page by page) and the workflow's ``result`` (its
    repr when it is not JSON data)."""
    tail = store.get_logs(job_id, limit=BUNDLE_LOG_ROWS, max_bytes=BUNDLE_LOG_BYTES, last=True)
    more = bool(tail) and bool(store.get_logs(job_id, limit=1)[0]["seq"] < tail[0]["seq"])
    return {
        "job": to_json(store.get_job(job_id)),
        "runs": to_json(store.list_runs(job_id)),
        "documents": to_json(store.list_documents(job_id)),
        "log": to_json(tail),
        "log_more": more,
        "result": _result_json(result),
    }
