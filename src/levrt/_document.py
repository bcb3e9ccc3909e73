"""Result documents and collections, read and written through the job's store.

A document is addressed by its collection and a filter: a run's document by
``{"job": id, "run": n}``, a namespace's own document by ``{"job": id,
"run": None}``. Queries are Mongo-style equality matches over stored fields
(with ``$in``, ``$ne``, ``$exists``, ``$gt``/``$gte``/``$lt``/``$lte``), and
projections Mongo-style inclusions or exclusions, both with dotted paths.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

_MISSING = object()


def _path(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, (list, tuple)) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return _MISSING
    return data


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _equal(value: Any, wanted: Any) -> bool:
    if value == wanted:
        return True
    # As in Mongo, a list field matches when one of its items does.
    return isinstance(value, (list, tuple)) and not isinstance(wanted, list) and wanted in value


def _match_one(value: Any, cond: Any) -> bool:
    if not (isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)):
        return value is not _MISSING and _equal(value, cond)
    for op, arg in cond.items():
        if op == "$exists":
            ok = (value is not _MISSING) == bool(arg)
        elif op == "$ne":
            ok = value is _MISSING or not _equal(value, arg)
        elif op == "$in":
            ok = value is not _MISSING and any(_equal(value, a) for a in arg)
        elif op in _COMPARE:
            try:
                ok = value is not _MISSING and _COMPARE[op](value, arg)
            except TypeError:
                ok = False
        else:
            raise ValueError(f"query operator {op!r} is not supported")
        if not ok:
            return False
    return True


def matches(data: dict[str, Any], query: dict[str, Any] | None) -> bool:
    """Whether ``data`` satisfies the Mongo-style ``query``."""
    if not query:
        return True
    if not isinstance(query, dict):
        raise TypeError(f"query must be a dict, not {type(query).__name__}")
    return all(_match_one(_path(data, key), cond) for key, cond in query.items())


def project(data: dict[str, Any], projection: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Apply a Mongo-style projection: ``{"a": 1}`` keeps, ``{"a": 0}`` drops."""
    if not projection:
        return data
    if isinstance(projection, (list, tuple)):
        projection = dict.fromkeys(projection, 1)
    flags = {bool(v) for v in projection.values()}
    if len(flags) > 1:
        raise ValueError("a projection either includes or excludes fields, not both")
    if flags == {True}:
        out: dict[str, Any] = {}
        for key in projection:
            value = _path(data, key)
            if value is not _MISSING:
                _put(out, key, value)
        return out
    out = _copy(data)
    for key in projection:
        _drop(out, key)
    return out


def _copy(data: Any) -> Any:
    return {k: _copy(v) for k, v in data.items()} if isinstance(data, dict) else data


def _put(out: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        out = out.setdefault(part, {})
    out[last] = value


def _drop(out: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        out = out.get(part)  # type: ignore[assignment]
        if not isinstance(out, dict):
            return
    out.pop(last, None)


def in_namespace(coll: str, namespace_coll: str) -> bool:
    """Whether collection ``coll`` lies in the namespace whose own collection is given."""
    if namespace_coll == "_":
        return True
    return coll == namespace_coll or coll.endswith("|" + namespace_coll)


class Collection:
    """A named collection of result documents, across jobs (motor-style reads)."""

    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self._store = store

    def __repr__(self) -> str:
        return f"Collection({self.name!r})"

    @property
    def collection_name(self) -> str:
        """The name, as the original's docs read it (``doc.coll.collection_name``)."""
        return self.name

    async def find_one(self, query: dict[str, Any] | None = None,
                       projection: dict[str, Any] | list[str] | None = None) -> dict | None:
        async for data in self.find(query, projection):
            return data
        return None

    async def find(self, query: dict[str, Any] | None = None,
                   projection: dict[str, Any] | list[str] | None = None) -> AsyncIterator[dict]:
        for row in self._store.find_documents(coll=self.name):
            if matches(row["data"], query):
                yield project(row["data"], projection)


class Document:
    """One result document: what a run's entry set, or a namespace's own data."""

    def __init__(self, coll: Collection, job_id: str, run_id: int | None) -> None:
        self.coll = coll
        self.filter = {"job": job_id, "run": run_id}
        self._store = coll._store

    def __repr__(self) -> str:
        return f"Document({self.coll.name!r}, job={self.filter['job']!r}, run={self.filter['run']})"

    def _own(self) -> dict[str, Any]:
        rows = self._store.find_documents(
            coll=self.coll.name, job_id=self.filter["job"], run_id=self.filter["run"]
        )
        return rows[0]["data"] if rows else {}

    async def get(self, query: dict[str, Any] | None = None,
                  projection: dict[str, Any] | list[str] | None = None) -> dict[str, Any] | None:
        """The stored fields (``{}`` when nothing was set); ``None`` when ``query`` fails."""
        data = self._own()
        if not matches(data, query):
            return None
        return project(data, projection)

    def __await__(self) -> Generator[Any, None, dict[str, Any] | None]:
        """``await doc`` is ``await doc.get()`` (the original's docs await documents)."""
        return self.get().__await__()

    async def set(self, data: dict[str, Any] | None = None, **kw: Any) -> None:
        """Merge fields into the document; a positional dict wins over keywords."""
        if data is not None and not isinstance(data, dict):
            raise TypeError(f"Document.set() takes a dict or keywords, not {type(data).__name__}")
        merged = {**kw, **(data or {})}
        if merged:
            self._store.merge_document(self.coll.name, self.filter["job"], self.filter["run"],
                                       merged)

    async def all(self, query: dict[str, Any] | None = None,
                  projection: dict[str, Any] | list[str] | None = None) -> AsyncIterator[dict]:
        """Run documents of this job at or below this document: itself for a run's document."""
        if self.filter["run"] is not None:
            rows = self._store.find_documents(
                coll=self.coll.name, job_id=self.filter["job"], run_id=self.filter["run"]
            )
        else:
            rows = [
                row for row in self._store.find_documents(job_id=self.filter["job"])
                if row["run_id"] is not None and in_namespace(row["coll"], self.coll.name)
            ]
            rows.sort(key=lambda r: r["run_id"])
        for row in rows:
            if matches(row["data"], query):
                yield project(row["data"], projection)
