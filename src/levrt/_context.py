"""``lev`` / ``ctx``: one object, seen from a workflow.

Inside a ``@remote`` entry the sandbox's stand-in replaces it and ``ctx.set``
writes that run's document. In a workflow it gives the job's identity, its
own document, and namespaces: ``with lev / "scan" / "hosts":`` stores the runs
started inside under ``"<schema>|hosts|scan"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from ._document import Collection, Document
from ._job import current_job

#: the namespace path of the running code, outermost first
_namespace: ContextVar[tuple[str, ...]] = ContextVar("lev_namespace", default=())


def collection_name(schema: str | None, namespace: tuple[str, ...]) -> str:
    """``"<schema>|b|a"`` for ``("a", "b")``, ``"b|a"`` without schema, ``"_"`` at root."""
    parts = ([schema] if schema else []) + list(reversed(namespace))
    return "|".join(parts) if parts else "_"


def current_namespace() -> tuple[str, ...]:
    return _namespace.get()


class Namespace:
    """``lev / "a" / "b"``: a context manager that yields the namespace's ``Document``."""

    def __init__(self, path: tuple[str, ...]) -> None:
        self.path = path

    def __truediv__(self, name: str) -> Namespace:
        return Namespace(self.path + (_segment(name),))

    def __repr__(self) -> str:
        return "lev / " + " / ".join(repr(p) for p in self.path)

    @contextlib.contextmanager
    def _enter(self) -> Iterator[Document]:
        token = _namespace.set(_namespace.get() + self.path)
        try:
            yield _namespace_document(_namespace.get())
        finally:
            _namespace.reset(token)

    def __enter__(self) -> Document:
        self._cm = self._enter()
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


def _segment(name: str) -> str:
    if not isinstance(name, str) or not name or "|" in name:
        raise ValueError(f"namespace names are non-empty strings without '|', not {name!r}")
    return name


def _namespace_document(path: tuple[str, ...]) -> Document:
    job = current_job()
    return Document(Collection(collection_name(None, path), job.store), job.id, None)


class Lev:
    """The ``lev`` / ``ctx`` object of the workflow side."""

    def __truediv__(self, name: str) -> Namespace:
        return Namespace((_segment(name),))

    def __repr__(self) -> str:
        return "<levrt.lev>"

    @property
    def job_id(self) -> str:
        return current_job().id

    @property
    def namespace(self) -> tuple[str, ...]:
        current_job()
        return _namespace.get()

    @property
    def doc(self) -> Document:
        """The job's own document (the root namespace's)."""
        return _namespace_document(())

    async def previous(self) -> dict[str, Any] | None:
        """What the previous successful job left, so a recurring scan can do only what is
        new: the last ``done`` job of this job's schedule (docs/schedules.md), else of the
        same owner, target, package version and parameters, before this one.

        ``{"job_id": str, "finished_at": datetime, "documents": [{"coll", "run_id",
        "data", ...}]}`` (as ``lev show --json`` lists documents), or None when there is
        no such job. Outside a job: LookupError."""
        job = current_job()
        found: dict[str, Any] | None = job.store.previous_documents(job.id)
        return found

    def set(self, data: dict | None = None, **kw: Any) -> None:
        raise RuntimeError(
            "ctx.set() writes a run's document from inside a @remote entry; in a workflow "
            "use `await lev.doc.set(...)` or `await doc.set(...)`"
        )

    update = set


lev = ctx = Lev()
