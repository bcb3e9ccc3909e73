"""Results as rows (:mod:`levrt.rows`): a task's tables, what changed since another task, and
the user's assets, as API routes (JSON or CSV) and as pages.

The API routes only read, so they take a token or the pages' session cookie (the page's CSV
and JSON links are these routes). A task another user owns is a 404, as everywhere.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from levrt import rows
from levrt.server import labels
from levrt.server.auth import CurrentReader, StoreDep
from levrt.server.paging import Page
from levrt.server.schemas import errors
from levrt.server.tasks import find_job
from levrt.server.web import _not_found, _render, _user, templates
from levrt.store import Store

router = APIRouter()
pages = APIRouter(include_in_schema=False)

templates.env.filters["row_cell"] = rows.cell_text

# Guards the making of an app's asset indexes (routes run on a thread pool).
_INDEXES_LOCK = threading.Lock()
# Done jobs of the same target looked through for the previous run, and offered to compare.
_EARLIER_JOBS = 200
_CHOICES = 20

Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]
Coll = Annotated[str | None, Query(max_length=1000, description=(
    "only this collection (default: all; CSV then starts with a collection column)"))]


def _tables(store: Store, job_id: str, coll: str | None) -> list[rows.Table]:
    found = rows.job_tables(store, job_id)
    return [table for table in found if coll is None or table.coll == coll]


def _table_json(table: rows.Table | rows.TableDiff) -> dict[str, Any]:
    return {**table.to_json(), "label": labels.coll_label(table.coll)}


def _csv(found: list[rows.Table], name: str) -> Response:
    return Response(rows.to_csv(found), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.get("/api/tasks/{task_id}/rows", tags=["rows"], responses={
    **errors(401, 404, 422), 200: {"content": {"text/csv": {}}}})
def task_rows(task_id: str, store: StoreDep, user: CurrentReader, coll: Coll = None,
              format: Format = "json") -> Any:
    """The task's result documents as flat rows, one table per collection: ``{"task",
    "tables": [{"coll", "label", "keys", "columns", "rows"}]}``; with ``format=csv`` the
    same as CSV (see docs/monitoring.md for how documents become rows)."""
    job = find_job(store, user, task_id)
    found = _tables(store, job["id"], coll)
    if format == "csv":
        return _csv(found, f"task-{job['id']}")
    return {"task": job["id"], "tables": [_table_json(table) for table in found]}


def previous_job(store: Store, job: dict[str, Any]) -> dict[str, Any] | None:
    """The job ``job`` is compared with by default: its previous run as ``ctx.previous()``
    finds it (the same schedule's, else the same owner, target, package and parameters'),
    else the newest ``done`` job created before it with its owner and target, whatever its
    parameters; None when there is none."""
    found = store.previous_documents(job["id"])
    if found is not None:
        return store.get_job(found["job_id"])
    if not job["target"]:
        return None
    earlier = [other for other in store.list_jobs(
        limit=_EARLIER_JOBS, status="done", owner=job["owner"], search=job["target"])
        if other["target"] == job["target"] and other["created_at"] < job["created_at"]
        and other["id"] != job["id"]]
    return earlier[0] if earlier else None


def _compared(store: Store, user: dict[str, Any], task_id: str,
              other: str | None) -> tuple[dict[str, Any], dict[str, Any], list[rows.TableDiff]]:
    job = find_job(store, user, task_id)
    if other:
        try:
            # Among the jobs the caller may see: another user's would name their job ids.
            before = find_job(store, user, store.resolve_job(
                other, owner=None if user["is_admin"] else user["name"]))
        except LookupError as exc:
            raise HTTPException(404, f"with: {exc}") from None
    else:
        found = previous_job(store, job)
        if found is None:
            raise HTTPException(404, f"task {job['id']} has no earlier done task of the same "
                                "target to compare with; name one with ?with=ID")
        before = found
    return before, job, rows.diff(rows.job_tables(store, before["id"]),
                                  rows.job_tables(store, job["id"]))


@router.get("/api/tasks/{task_id}/diff", tags=["rows"], responses=errors(401, 404, 422))
def task_diff(task_id: str, store: StoreDep, user: CurrentReader,
              with_: Annotated[str | None, Query(
                  alias="with", min_length=1, max_length=40, description=(
                      "the earlier task (an id or a unique prefix; default: the previous "
                      "done task of the same target, with the same parameters if any)"))] = None,
              ) -> dict[str, Any]:
    """What changed from the task ``with`` to this one, collection by collection, rows
    matched by their keys: ``{"task", "with", "tables": [{"coll", "label", "keys",
    "columns", "new", "gone", "changed": [{"key", "fields": {column: [before, after]},
    "row"}], "same"}]}``."""
    before, job, found = _compared(store, user, task_id, with_)
    return {"task": job["id"], "with": before["id"],
            "tables": [_table_json(table) for table in found]}


def _index(request: Request, owner: str | None) -> rows.AssetIndex:
    """The server's :class:`~levrt.rows.AssetIndex` of ``owner`` (made on first use)."""
    state = request.app.state
    with _INDEXES_LOCK:
        if not hasattr(state, "asset_indexes"):
            state.asset_indexes = {}
        indexes: dict[str | None, rows.AssetIndex] = state.asset_indexes
        return indexes.setdefault(owner, rows.AssetIndex(owner))


def _assets(request: Request, store: Store, user: dict[str, Any], coll: str | None,
            q: str | None) -> list[rows.Asset]:
    found = _index(request, None if user["is_admin"] else user["name"]).update(store)
    needle = (q or "").casefold()
    return [asset for asset in found
            if (coll is None or asset.coll == coll)
            and (not needle or any(needle in rows.cell_text(value).casefold()
                                   for value in asset.row.values()))]


@router.get("/api/assets", tags=["rows"], responses=errors(401, 422))
def assets(request: Request, response: Response, store: StoreDep, user: CurrentReader,
           coll: Coll = None,
           q: Annotated[str | None, Query(max_length=200, description=(
               "only rows with a cell holding this text (any case)"))] = None,
           page: Annotated[int, Query(ge=1, le=1_000_000, description="from 1")] = 1,
           limit: Annotated[int, Query(ge=1, le=1000, description="assets per page")] = 100,
           ) -> list[dict[str, Any]]:
    """A page of the latest row known under each key across the caller's done tasks (an
    administrator's: everyone's), newest seen first: ``[{"coll", "keys", "row",
    "first_seen", "last_seen", "first_job", "last_job", "jobs"}]``. ``X-Total-Count`` says
    how many match over all pages, ``Link`` gives the ``next`` and ``prev`` pages."""
    found = _assets(request, store, user, coll, q)
    shown = Page(page, limit, len(found))
    shown.set_headers(request, response)
    return [asset.to_json() for asset in found[shown.offset:shown.offset + limit]]


# -- pages ---------------------------------------------------------------------------------


@pages.get("/tasks/{task_id}/rows", response_class=HTMLResponse)
async def rows_part(request: Request, task_id: str) -> Response:
    """The task page's tables of rows alone (its script fetches them)."""
    user = await _user(request)
    store: Store = request.app.state.store
    try:
        job = await run_in_threadpool(find_job, store, user, task_id)
    except HTTPException:
        return _not_found(request, user, f"no task {task_id!r}")
    found = await run_in_threadpool(rows.job_tables, store, job["id"])
    previous = await run_in_threadpool(previous_job, store, job)
    return _render(request, "_rows_tables.html", job=job, tables=found, previous=previous)


@pages.get("/tasks/{task_id}/diff", response_class=HTMLResponse)
async def diff_page(request: Request, task_id: str, with_: Annotated[
        str | None, Query(alias="with", max_length=40)] = None,
        other: Annotated[str | None, Query(max_length=40)] = None) -> Response:
    """What changed since ``with`` (the menu of tasks of the same target) or ``other`` (any
    task's id, typed; it wins)."""
    user = await _user(request)
    store: Store = request.app.state.store
    try:
        before, job, found = await run_in_threadpool(_compared, store, user, task_id,
                                                     (other or "").strip() or with_ or None)
    except HTTPException as exc:
        return _not_found(request, user, str(exc.detail))
    choices = await run_in_threadpool(_choices, store, job)
    return _render(request, "diff.html", user=user, job=job, before=before, tables=found,
                   choices=choices)


# The columns the assets page adds to each row.
_SEEN = ("first seen", "last seen", "tasks", "last task")


def _seen(asset: rows.Asset) -> dict[str, Any]:
    stamp = "%Y-%m-%d %H:%M"
    return dict(zip(_SEEN, (asset.first_seen.strftime(stamp), asset.last_seen.strftime(stamp),
                            asset.jobs, asset.last_job), strict=True))


def _choices(store: Store, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Done jobs of the same target to compare with, newest first (any of the owner's when
    the job has no target)."""
    found = store.list_jobs(limit=_EARLIER_JOBS, status="done", owner=job["owner"],
                            search=job["target"] or None)
    return [other for other in found
            if other["id"] != job["id"] and other["target"] == job["target"]][:_CHOICES]


@pages.get("/assets", response_class=HTMLResponse)
async def assets_page(request: Request, coll: Annotated[str | None, Query(max_length=1000)] = None,
                      q: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    user = await _user(request)
    store: Store = request.app.state.store
    found = await run_in_threadpool(_assets, request, store, user, coll or None, q or None)
    everything = found if not (coll or q) else await run_in_threadpool(
        _assets, request, store, user, None, None)
    by_coll: dict[str, dict[str, Any]] = {}
    for asset in found:
        table = by_coll.setdefault(asset.coll, {"coll": asset.coll, "keys": asset.keys,
                                                "assets": [], "rows": []})
        table["assets"].append(asset.row)
        table["rows"].append({**asset.row, **_seen(asset)})
    for table in by_coll.values():
        table["columns"] = [*rows.columns(table.pop("assets")), *_SEEN]
    colls = sorted({asset.coll for asset in everything}, key=labels.coll_label)
    return _render(request, "assets.html", user=user, tables=list(by_coll.values()),
                   colls=colls, coll=coll or "", q=q or "", count=len(found))
