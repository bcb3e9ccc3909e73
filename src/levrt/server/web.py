"""The web pages: login, the market, package pages with their sources, tasks (run again,
download), the Quick form that starts one (and the Customized tab of a raw argv mode), the
devices and the settings (API tokens). Server-rendered (Jinja2, autoescaped); the scripts
follow a task's log over the tasks API's event stream and edit a Customized argv list.

Every page but ``/login`` needs a session (see :mod:`levrt.server.sessions`); every form
POST is checked against the session's CSRF token. Like the API, the pages read packages as
stored manifests and never import package code: a task runs as ``lev run`` in the runner.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from levrt._job_json import job_bundle, to_json
from levrt._params import jsonable
from levrt._status import FINAL_STATUSES, JOB_STATUSES
from levrt.annot.cats import Attck
from levrt.server import dispatch, labels, produces, published, sessions
from levrt.server.auth import verify_login
from levrt.server.checks import MAX_DEPTH, check_json
from levrt.server.paging import Page
from levrt.server.params import NAMED_KINDS, ParamsInvalid, check_value
from levrt.server.runner import TaskRunner, local_device
from levrt.server.tasks import cancel_dispatched, device_filter, find_job
from levrt.server.throttle import LoginThrottled
from levrt.server.timeline import timeline_svg
from levrt.server.upload import OwnFiles, UploadRefused, keep_file
from levrt.store import Store
from levrt.store._schedules import HOOK_EVENTS

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).with_name("static")
templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))

_ATTCK_TITLES = {member.value: member.title for member in Attck}
# Log lines rendered with the task page; the live log fetches the rest.
_PAGE_LOG_LINES = 2000
_TASK_LIST_LIMIT = 200
# Cards and rows per page of the market and the task list.
_MARKET_PAGE = 30
_TASKS_PAGE = 50


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _dispatcher(request: Request) -> dispatch.Dispatcher:
    dispatcher: dispatch.Dispatcher = request.app.state.dispatcher
    return dispatcher


def _runner(request: Request) -> TaskRunner:
    runner: TaskRunner = request.app.state.runner
    return runner


async def _user(request: Request) -> dict[str, Any]:
    """The session's user; without a session, a 303 to the login page."""
    user = await sessions.session_user(request)
    if user is None:
        raise HTTPException(303, "log in first", headers={"Location": "/login"})
    return user


def _render(request: Request, template: str, status_code: int = 200,
            **context: Any) -> Response:
    session = sessions.read(request)
    return templates.TemplateResponse(
        request, template, {"csrf": session.csrf if session else "", **context},
        status_code=status_code,
    )


def _not_found(request: Request, user: dict[str, Any], message: str) -> Response:
    return _render(request, "error.html", 404, user=user, title="Not found", message=message)


async def refused_page(request: Request, exc: Exception) -> Response:
    """The page of a form post refused: its CSRF token (:class:`~levrt.server.sessions.
    CsrfRefused`) or its size (:class:`~levrt.server.upload.UploadRefused`)."""
    user = await sessions.session_user(request)
    if isinstance(exc, UploadRefused):
        status, message = exc.status, str(exc)
    else:
        status, message = 403, exc.detail if isinstance(exc, HTTPException) else str(exc)
    return _render(request, "error.html", status, user=user, title="Form refused",
                   message=message)


# -- sessions ------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    session = sessions.read(request)
    if session is not None and session.user is not None:
        return RedirectResponse("/", 303)
    if session is None:
        # The login form needs a CSRF token too: an anonymous session carries it.
        session = sessions.new_session(None)
        response = templates.TemplateResponse(
            request, "login.html", {"csrf": session.csrf, "user": None, "error": None})
        sessions.set_cookie(request, response, session)
        return response
    return _render(request, "login.html", user=None, error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await sessions.check_csrf(request)
    name, password = str(form.get("user", "")), str(form.get("password", ""))
    try:
        user = await run_in_threadpool(verify_login, request, _store(request), name, password)
    except LoginThrottled as exc:
        response = _render(request, "login.html", 429, user=None, name=name, error=str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if user is None:
        return _render(request, "login.html", 401, user=None, name=name,
                       error="wrong user name or password")
    response = RedirectResponse("/", 303)
    sessions.set_cookie(request, response, sessions.new_session(user["name"]))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await sessions.check_csrf(request)
    response = RedirectResponse("/login", 303)
    sessions.clear_cookie(response)
    return response


def _page_number(text: str | None) -> int:
    """The page a link asks for; the first for anything that is not a page number."""
    return int(text) if text and text.isdigit() and 0 < int(text) <= 1_000_000 else 1


# -- market --------------------------------------------------------------------------------


def _categories(manifest: dict[str, Any]) -> list[str]:
    """``attck:<id>`` and ``blackarch:<name>`` of every export and mode, once each."""
    found: dict[str, None] = {}
    for entry in published.entries(manifest):
        cats = entry.get("cats") or {}
        for scheme in ("attck", "blackarch"):
            for value in cats.get(scheme) or []:
                found[f"{scheme}:{value}"] = None
    return list(found)


def category_label(category: str) -> str:
    scheme, _, value = category.partition(":")
    if scheme == "attck":
        return f"ATT&CK {value} {_ATTCK_TITLES.get(value, '')}".rstrip()
    return f"BlackArch {value}"


templates.env.filters["category"] = category_label


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


templates.env.tests["http_url"] = _is_http_url


def _market(store: Store, q: str | None, kind: str | None, category: str | None,
            owner: str | None, page: int) -> dict[str, Any]:
    every = store.list_packages()
    cats_of = {}
    for package in every:
        version = store.get_version(package["name"], package["latest"])
        manifest = version["manifest"] if version else {}
        # What a card offers to run: workflows first.
        runs = sorted(published.runnable(manifest), key=lambda e: e.get("kind") != "workflow")
        cats_of[package["name"]] = (manifest.get("description"), _categories(manifest), runs)
    cards = []
    for package in store.list_packages(q, kind=kind, owner=owner):
        description, cats, runs = cats_of.get(package["name"], (None, [], []))
        if category and category not in cats:
            continue
        kinds = sorted({e["kind"] for e in package["exports"] if e["kind"]})
        cards.append({**package, "description": description or package["summary"],
                      "kinds": kinds, "categories": cats, "runs": runs})
    all_cats = sorted({cat for _, cats, _ in cats_of.values() for cat in cats})
    shown = Page(page, _MARKET_PAGE, len(cards))
    return {"cards": cards[shown.offset:shown.offset + shown.size], "page": shown,
            "owners": sorted({p["owner"] for p in every}), "all_categories": all_cats}


@router.get("/", response_class=HTMLResponse)
async def market(request: Request, q: str | None = None, kind: str | None = None,
                 category: str | None = None, owner: str | None = None,
                 page: str | None = None) -> Response:
    user = await _user(request)
    # Empty form fields mean "any".
    kind = kind if kind in ("tool", "workflow") else None
    found = await run_in_threadpool(_market, _store(request), q or None, kind,
                                    category or None, owner or None, _page_number(page))
    return _render(request, "market.html", user=user, q=q or "", kind=kind or "",
                   category=category or "", owner=owner or "", **found)


# -- package pages -------------------------------------------------------------------------


def _call_example(entry: dict[str, Any]) -> str:
    if entry.get("example"):
        return str(entry["example"])
    args = []
    for param in entry.get("params") or []:
        if param.get("kind") not in NAMED_KINDS:
            continue
        placeholder = param.get("placeholder")
        if placeholder is None:
            shown = repr(param.get("default"))
        else:
            # A placeholder is text as typed: quoted for a str, as it is for numbers or lists.
            is_str = _base_type(param.get("type"))[0] == "str"
            shown = repr(placeholder) if is_str else str(placeholder)
        args.append(f"{param['name']}={shown}")
    return f"await {entry['name']}({', '.join(args)})"


def _package(store: Store, name: str) -> dict[str, Any] | None:
    package = store.get_package(name)
    if package is None:
        return None
    version = store.get_version(package["name"], package["latest"])
    manifest = version["manifest"] if version else {}
    files = store.list_version_files(package["name"], package["latest"]) or []
    return {"package": package, "manifest": manifest, "files": files}


@router.get("/packages/{name}", response_class=HTMLResponse)
async def package_page(request: Request, name: str) -> Response:
    user = await _user(request)
    store = _store(request)
    found = await run_in_threadpool(_package, store, name)
    if found is None:
        return _not_found(request, user, f"no package {name!r} on this hub")
    manifest = found["manifest"]
    entries = list(published.entries(manifest))
    made = await run_in_threadpool(produces.produces, store, name, found["package"]["latest"],
                                   entries)
    images = sorted({image for item in made.values() for image in item.images})
    present = await run_in_threadpool(produces.image_presence, images)
    exports = []
    for export in manifest.get("exports") or []:
        # A tool module shows its modes; a workflow or a modeless tool is its own only mode.
        shown = list(export.get("modes") or []) if "params" not in export else []
        exports.append({"export": export, "modes": [
            {**entry, "call": _call_example(entry), "runnable": "params" in entry,
             "anchor": _anchor(entry), "produces": made.get(entry.get("qualname", ""))}
            for entry in shown or [export]]})
    # The index: workflows first, the entries a README points to.
    index = sorted((mode for item in exports for mode in item["modes"] if mode["runnable"]),
                   key=lambda mode: mode.get("kind") != "workflow")
    history = await run_in_threadpool(_package_history, store, name, user["name"])
    return _render(request, "package.html", user=user, exports=exports, jobs=history,
                   categories=_categories(manifest), index=index, present=present, **found)


def _anchor(entry: dict[str, Any]) -> str:
    return "run-" + re.sub(r"[^A-Za-z0-9_-]", "-", str(entry.get("qualname") or entry["name"]))


def _package_history(store: Store, name: str, owner: str) -> list[dict[str, Any]]:
    """The user's tasks that ran something of package ``name`` (by import name or folder)."""
    folder = f"{name.removeprefix('lev.')}:"
    return [job for job in store.list_jobs(limit=_TASK_LIST_LIMIT, owner=owner)
            if (job["target"] or "").startswith((f"{name}.", f"{name}:"))
            or folder in (job["target"] or "")]


@router.get("/packages/{name}/{version}/source/{path:path}", response_class=HTMLResponse)
async def source(request: Request, name: str, version: str, path: str) -> Response:
    user = await _user(request)
    content = await run_in_threadpool(_store(request).version_file, name, version, path)
    if content is None:
        return _not_found(request, user, f"{name} {version} has no file {path!r}")
    try:
        text: str | None = content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return _render(request, "source.html", user=user, name=name, version=version, path=path,
                   text=text, size=len(content))


# -- tasks ---------------------------------------------------------------------------------


def _duration(item: dict[str, Any]) -> str:
    """How long a job (or a run) has run: nothing while it is queued."""
    if item["started_at"] is None:
        return ""
    end = item["finished_at"] or datetime.now(timezone.utc)
    seconds = max(0, int((end - item["started_at"]).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


templates.env.filters["duration"] = _duration
templates.env.filters["run_label"] = labels.run_label
templates.env.filters["coll_label"] = labels.coll_label
templates.env.filters["line_kind"] = labels.line_kind
templates.env.filters["cell"] = labels.cell
templates.env.filters["type_words"] = labels.type_words
templates.env.filters["result_count"] = labels.result_count


def _tasks(store: Store, page: int, **filters: Any) -> dict[str, Any]:
    shown = Page(page, _TASKS_PAGE, store.count_jobs(**filters))
    return {"jobs": store.list_jobs(limit=shown.size, offset=shown.offset, **filters),
            "page": shown}


@router.get("/tasks", response_class=HTMLResponse)
async def tasks_page(request: Request, status: str | None = None, q: str | None = None,
                     page: str | None = None, device: str | None = None) -> Response:
    user = await _user(request)
    status = status if status in JOB_STATUSES else None
    owner = None if user["is_admin"] else user["name"]
    device = (device or "")[:255] or None
    try:
        on = (await run_in_threadpool(device_filter, _store(request), user, device)
              if device else {})
    except LookupError as exc:
        return _render(request, "tasks.html", 422, user=user, status=status or "",
                       q=q or "", statuses=JOB_STATUSES, device=device,
                       device_error=str(exc), jobs=[], page=Page(1, _TASKS_PAGE, 0))
    found = await run_in_threadpool(_tasks, _store(request), _page_number(page),
                                    status=status, owner=owner,
                                    search=(q or "")[:200] or None, **on)
    return _render(request, "tasks.html", user=user, status=status or "", q=q or "",
                   statuses=JOB_STATUSES, device=device, **found)


def _tables(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The result documents as tables, one per collection (the job's own first): a row per
    document, a column per top-level key (in the order they first appear); a cell's text
    with line breaks is shown preformatted."""
    tables: dict[str, dict[str, Any]] = {}
    ordered = sorted(documents, key=lambda doc: doc["coll"] != labels.JOB_COLL)
    for doc in ordered:
        data = doc["data"] if isinstance(doc["data"], dict) else {"value": doc["data"]}
        table = tables.setdefault(doc["coll"], {"coll": doc["coll"], "keys": {}, "rows": []})
        table["keys"].update(dict.fromkeys(data))
        table["rows"].append({"run_id": doc["run_id"], "data": data})
    return [{"coll": table["coll"], "label": labels.coll_label(table["coll"]),
             "keys": list(table["keys"]),
             "rows": [{"run_id": row["run_id"],
                       "cells": [labels.cell(row["data"][key]) if key in row["data"] else ""
                                 for key in table["keys"]]}
                      for row in table["rows"]]}
            for table in tables.values()]


def _result_document(job: dict[str, Any],
                     documents: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The document a tool mode returned: stored as a pointer to it (see levrt._job), or
    as its fields (``lev run`` gives a tool mode's document's fields); None for a result of
    another kind."""
    result = job.get("result")
    if not isinstance(result, dict):
        return None
    pointer = result.get("$document") if len(result) == 1 else None
    for doc in documents:
        if (isinstance(pointer, dict) and (doc["coll"], doc["run_id"])
                == (pointer.get("coll"), pointer.get("run"))) \
                or (doc["run_id"] is not None and doc["data"] == result):
            return doc
    return None


def _result(job: dict[str, Any], document: dict[str, Any] | None) -> dict[str, Any] | None:
    """The workflow's return value as :func:`labels.shape` shows it (a tool mode's: its
    run's ``document``); None when it returned nothing."""
    if document is not None:
        return {**labels.shape(document["data"]), "label": labels.coll_label(document["coll"])}
    return None if job.get("result") is None else labels.shape(job["result"])


def _failure(store: Store, job: dict[str, Any], runs: list[dict[str, Any]]) -> str | None:
    """What a failed task's tool said: the last lines of its first failed run's log, the
    words a user acts on (``Failed to resolve "x"``), before levrt's own error."""
    if job["status"] != "failed":
        return None
    for run in runs:
        if run["status"] == "failed":
            tail = [line for line in store.log_tail(job["id"], run["run_id"], 5) if line.strip()]
            return "\n".join(tail[-3:]) or run["error"]
    return None


def _run_tree(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs as the rows of a tree, depth first: a row per namespace (``with lev / "a":``)
    with how many of the runs below it are in each status, then its runs, then the
    namespaces inside it, each in the order it first ran."""
    root: dict[str, Any] = {"children": {}, "runs": []}
    for run in runs:
        node = root
        for part in run["namespace"] or []:
            node = node["children"].setdefault(part, {"children": {}, "runs": []})
        node["runs"].append(run)

    def counts(node: dict[str, Any]) -> dict[str, int]:
        found: dict[str, int] = {}
        for run in node["runs"]:
            found[run["status"]] = found.get(run["status"], 0) + 1
        for child in node["children"].values():
            for status, count in counts(child).items():
                found[status] = found.get(status, 0) + count
        return found

    rows: list[dict[str, Any]] = []

    def walk(node: dict[str, Any], path: list[str]) -> None:
        rows.extend({"kind": "run", "depth": len(path), "run": run} for run in node["runs"])
        for name, child in node["children"].items():
            rows.append({"kind": "namespace", "depth": len(path), "name": name,
                         "path": " / ".join([*path, name]), "counts": counts(child)})
            walk(child, [*path, name])

    walk(root, [])
    return rows


def _task(request: Request, user: dict[str, Any], task_id: str) -> dict[str, Any]:
    store = _store(request)
    job = find_job(store, user, task_id)
    stored = store.list_documents(job["id"])
    runs = store.list_runs(job["id"])
    # A tool mode's result is its run's document: shown as the result, not twice.
    returned = _result_document(job, stored)
    result = _result(job, returned)
    shown = [doc for doc in stored if doc is not returned]
    raw = json.dumps([{"collection": doc["coll"], "run": doc["run_id"],
                       "data": to_json(doc["data"])} for doc in stored],
                     indent=2, ensure_ascii=False)
    return {"job": job, "tree": _run_tree(runs), "runs": runs, "result": result,
            "tables": _tables(shown), "documents_json": raw if stored else None,
            "failure": _failure(store, job, runs), "run_names": _run_names(runs),
            "finished_runs": sum(run["status"] in FINAL_STATUSES for run in runs),
            "timeline": timeline_svg(runs),
            "hooks": store.list_hooks(job["owner"], job_id=job["id"]) if job["owner"] else [],
            "deliveries": (store.list_deliveries(job["owner"], job_id=job["id"])
                           if job["owner"] else []),
            "events": HOOK_EVENTS,
            "log": store.get_logs(job["id"], limit=_PAGE_LOG_LINES)}


def _run_names(runs: list[dict[str, Any]]) -> dict[int, str]:
    return {run["run_id"]: labels.run_label(run) for run in runs}


async def _users_job(request: Request, user: dict[str, Any],
                     task_id: str) -> dict[str, Any] | None:
    """The job of the task, or None when the user may not see it (or there is none)."""
    try:
        return await run_in_threadpool(find_job, _store(request), user, task_id)
    except HTTPException:
        return None


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: str) -> Response:
    return await render_task(request, task_id)


async def render_task(request: Request, task_id: str, status_code: int = 200,
                      **context: Any) -> Response:
    """The task's page; ``context`` adds to it (a hook just added, an error)."""
    user = await _user(request)
    try:
        found = await run_in_threadpool(_task, request, user, task_id)
    except HTTPException:
        return _not_found(request, user, f"no task {task_id!r}")
    job = found["job"]
    after = found["log"][-1]["seq"] if found["log"] else 0
    return _render(request, "task.html", status_code, user=user, task_id=task_id,
                   after=after, final=job["status"] in FINAL_STATUSES,
                   error_pattern=labels.ERROR_LINE.pattern,
                   note_pattern=labels.NOTE_LINE.pattern, **found, **context)


@router.get("/tasks/{task_id}/runs", response_class=HTMLResponse)
async def task_runs(request: Request, task_id: str) -> Response:
    """The task page's run tree alone, which its script fetches when the runs change."""
    user = await _user(request)
    job = await _users_job(request, user, task_id)
    if job is None:
        return _not_found(request, user, f"no task {task_id!r}")
    runs = await run_in_threadpool(_store(request).list_runs, job["id"])
    return _render(request, "_runs.html", tree=_run_tree(runs))


@router.get("/tasks/{task_id}/timeline.svg")
async def task_timeline(request: Request, task_id: str) -> Response:
    """The task's runs on a time axis (:mod:`levrt.server.timeline`), an SVG the task page
    shows and fetches again while the task runs."""
    user = await _user(request)
    job = await _users_job(request, user, task_id)
    if job is None:
        return _not_found(request, user, f"no task {task_id!r}")
    runs = await run_in_threadpool(_store(request).list_runs, job["id"])
    return Response(timeline_svg(runs), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store"})


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(request: Request, task_id: str) -> Response:
    user = await _user(request)
    await sessions.check_csrf(request)
    job = await _users_job(request, user, task_id)
    if job is None:
        return _not_found(request, user, f"no task {task_id!r}")
    # A task that ended meanwhile, or runs under another server, just shows as it is.
    if job["status"] in FINAL_STATUSES:
        return RedirectResponse(f"/tasks/{task_id}", 303)
    if job["placement"] is None:
        await _runner(request).cancel(job["id"])
        return RedirectResponse(f"/tasks/{task_id}", 303)
    try:
        await cancel_dispatched(request, _store(request), job)
    except HTTPException as exc:
        return _render(request, "error.html", exc.status_code, user=user,
                       title="Not cancelled", message=str(exc.detail))
    return RedirectResponse(f"/tasks/{task_id}", 303)


@router.post("/tasks/{task_id}/rerun")
async def rerun_task(request: Request, task_id: str) -> Response:
    """Submit the task's target with its parameters (and published version) again, as a
    new task of this user."""
    user = await _user(request)
    await sessions.check_csrf(request)
    job = await _users_job(request, user, task_id)
    if job is None:
        return _not_found(request, user, f"no task {task_id!r}")
    if not job["target"]:
        return _not_found(request, user, f"task {task_id!r} has no target to run again")
    # The same published version, on the same device or pool too: the same task, anew.
    store = _store(request)
    try:
        where = await run_in_threadpool(dispatch.chosen, store, user["name"], job["placement"])
        job_id = await _dispatcher(request).submit(
            store, where, target=job["target"], params=dict(job["params"] or {}),
            name=job["name"], owner=user["name"], package=job["package"])
    except (dispatch.PlacementError, RuntimeError) as exc:
        return _render(request, "error.html", 409 if isinstance(
            exc, dispatch.PlacementError) else 503, user=user, title="Not run again",
            message=f"task {task_id!r} cannot run again where it ran: {exc}")
    return RedirectResponse(f"/tasks/{job_id}", 303)


@router.get("/tasks/{task_id}/download")
async def download_task(request: Request, task_id: str) -> Response:
    """The task as ``lev run --json`` prints it (as ``GET /api/tasks/{id}``), to save."""
    user = await _user(request)
    job = await _users_job(request, user, task_id)
    if job is None:
        return _not_found(request, user, f"no task {task_id!r}")
    bundle = await run_in_threadpool(job_bundle, _store(request), job["id"])
    # Job ids are hex; anything else is kept out of the header all the same.
    filename = re.sub(r"[^A-Za-z0-9_.-]", "_", f"task-{job['id']}.json")
    return Response(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n",
                    media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- settings: API tokens ------------------------------------------------------------------

_TOKEN_NAME_MAX = 200


def _settings_page(request: Request, user: dict[str, Any], status_code: int = 200,
                   **context: Any) -> Response:
    tokens = _store(request).list_tokens(user["name"])
    context = {"created": None, "error": None, "token_name": "", **context}
    return _render(request, "settings.html", status_code, user=user, tokens=tokens, **context)


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request) -> Response:
    user = await _user(request)
    return await run_in_threadpool(_settings_page, request, user)


@router.post("/settings/tokens", response_class=HTMLResponse)
async def create_token(request: Request) -> Response:
    """A new API token of the user's, shown this once on the page that answers."""
    user = await _user(request)
    form = await sessions.check_csrf(request)
    name = str(form.get("name") or "").strip()
    if not name or len(name) > _TOKEN_NAME_MAX:
        error = f"give the token a name of 1 to {_TOKEN_NAME_MAX} characters"
        return await run_in_threadpool(_settings_page, request, user, 400, error=error,
                                       token_name=name)
    created = await run_in_threadpool(_store(request).create_token, user["name"], name)
    return await run_in_threadpool(_settings_page, request, user, created=created)


@router.post("/settings/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: int) -> Response:
    """Revoke one of the user's own tokens; anyone else's is 404, as one that does not
    exist."""
    user = await _user(request)
    await sessions.check_csrf(request)
    if not await run_in_threadpool(_store(request).revoke_token, user["name"], token_id):
        return _not_found(request, user, f"you have no API token {token_id}")
    return RedirectResponse("/settings", 303)


# -- new task: the Quick form --------------------------------------------------------------

def _base_type(annotation: str | None) -> tuple[str, str]:
    """``(kind, item)`` of a parameter's type text: ``int | None`` is ``("int", "")``,
    ``list[int]`` is ``("list", "int")``."""
    text = (annotation or "str").replace(" ", "")
    optional = re.fullmatch(r"Optional\[(.*)\]", text)
    if optional:
        text = optional.group(1)
    text = "|".join(part for part in text.split("|") if part != "None") or "str"
    base, _, item = text.partition("[")
    return base.lower(), item.rstrip("]")


def _field(param: dict[str, Any]) -> dict[str, Any]:
    base, item = _base_type(param.get("type"))
    widget = {"int": "number", "float": "number", "bool": "checkbox", "list": "textarea",
              "file": "file", "levrt.file": "file", "bytes": "file"}.get(base, "text")
    return {**param, "base": base, "item": item, "widget": widget,
            "step": "1" if base == "int" else "any"}


def _initial(field: dict[str, Any], given: dict[str, Any] | None = None) -> Any:
    """The field's first value: the task's own parameter when editing one (``given``),
    else the function's default."""
    default = (given or {}).get(field["name"], field.get("default"))
    if field["widget"] == "file":
        return ""
    if field["widget"] == "checkbox":
        return bool(default)
    if default is None:
        return ""
    if field["widget"] == "textarea" and isinstance(default, list):
        return "\n".join(str(item) for item in default)
    return default if isinstance(default, str) else labels.cell(default)


# What _form_value gives for an optional field left empty: the function's default applies.
_OMITTED = object()


def _form_value(field: dict[str, Any], raw: Any) -> Any:
    """The parameter's value as the form gives it (a checkbox's bool, a text area's lines,
    a field's text, a file's digest once stored), or _OMITTED; ValueError ``required`` for a
    required one left empty."""
    if field["widget"] == "checkbox":
        return raw is not None
    if isinstance(raw, UploadFile):  # a file field, kept by _store_files
        raw = ""
    if isinstance(raw, bytes):  # a bytes field's upload, read by _store_files
        return raw
    text = str(raw or "").strip()
    if field["widget"] == "textarea":
        value: Any = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        value = text
    if not value:
        if field["required"]:
            raise ValueError("required")
        return _OMITTED
    return value


def _argv_mode(fields: list[dict[str, Any]]) -> bool:
    """Whether the entry takes exactly one ``argv: list[str]`` (``annot.ARGV``, a raw mode):
    its run page also offers the Customized tab, an argv list editor."""
    return (len(fields) == 1 and fields[0]["name"] == "argv" and fields[0]["base"] == "list"
            and fields[0]["item"].lower() == "str")


def _argv_rows(form: Any) -> list[str]:
    """The Customized form's arguments as typed: the rows ``c_argv`` of the editor, or the
    lines of the fallback text area ``c_argv_text`` (without JavaScript)."""
    text = form.get("c_argv_text")
    if text is not None:
        return str(text).splitlines()
    return [str(row) for row in form.getlist("c_argv")]


def _check_argv(field: dict[str, Any], rows: list[str], store: OwnFiles) -> list[str]:
    """The argv of the Customized form's rows, blank rows skipped; ValueError when nothing
    is left or a row does not match the parameter's pattern."""
    argv = [row for row in rows if row.strip()]
    if not argv:
        raise ValueError("give at least one argument")
    checked: list[str] = check_value(field, argv, store)
    return checked


def _form_page(request: Request, user: dict[str, Any], found: published.Published,
               fields: list[dict[str, Any]], values: dict[str, Any],
               errors: dict[str, str], status_code: int = 200, *, tab: str = "quick",
               argv: list[str] | None = None, argv_error: str | None = None,
               task_name: str | None = None, device: dict[str, Any] | None = None,
               places: dict[str, Any] | None = None) -> Response:
    customized = _argv_mode(fields)
    if argv is None:
        default = fields[0].get("default") if customized else None
        argv = [str(item) for item in default] if isinstance(default, list) else []
    return _render(request, "run.html", status_code, user=user, package=found.package,
                   version=found.version, entry=found.entry, fields=fields, values=values,
                   errors=errors, customized=customized, tab=tab if customized else "quick",
                   argv=argv, argv_error=argv_error, tool=_tool_name(found),
                   task_name=task_name or _function(found), device=device, places=places)


def _places(store: Store, user: dict[str, Any], selected: str | None) -> dict[str, Any]:
    """Where the run form offers to send a task: the server's runner (``""``), each of the
    user's devices (``device:NAME``) and pools (``pool:NAME``); ``selected`` is chosen."""
    devices = store.list_devices(user["name"])
    return {"devices": [device["name"] for device in devices],
            "pools": sorted({pool for device in devices for pool in device["pools"]}),
            "selected": selected or ""}


def _function(found: published.Published) -> str:
    return str(found.entry["qualname"]).rpartition(":")[2]


def _tool_name(found: published.Published) -> str:
    """The command a raw argv mode runs, for the preview of its command line: the package's
    tool (``lev.szczecin.nmap_python`` runs ``nmap``)."""
    name = found.package.rpartition(".")[2]
    return name.removesuffix("_python").split("_")[0] or name


def _refusal(field: dict[str, Any], message: str) -> str:
    """A regex refusal in words: what the field expects (its description and example), the
    pattern secondary."""
    regex = field.get("regex")
    if not regex or not message.endswith(f"does not match the pattern {regex}"):
        return message
    words = field.get("desc") or "a value of the expected form"
    example = f", for example {field['placeholder']}" if field.get("placeholder") else ""
    return f"expected {words[0].lower()}{words[1:]}{example} (pattern {regex})"


async def _store_files(store: Store, fields: list[dict[str, Any]], form: FormData,
                       user: str) -> dict[str, str | bytes]:
    """What the form's file fields carry: for a ``File`` parameter, the digest of the file
    kept in the store's files as ``user``'s (a ``File`` takes only its user's uploads); for a
    ``bytes`` one, the file's content."""
    uploaded: dict[str, str | bytes] = {}
    for field in fields:
        if field["widget"] != "file":
            continue
        part = form.get(f"p_{field['name']}")
        if field["base"] == "bytes":
            if isinstance(part, UploadFile) and part.filename:
                uploaded[field["name"]] = await part.read()
            continue
        kept = await keep_file(store, part, user)
        if kept is not None:
            uploaded[field["name"]] = kept["digest"]
    return uploaded


def _fields(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [_field(p) for p in entry.get("params") or [] if p.get("kind") in NAMED_KINDS]


_TASK_NAME_MAX = 200


async def _run_page(request: Request, user: dict[str, Any], found: published.Published,
                    tab: str, given: dict[str, Any] | None = None,
                    task_name: str | None = None, where: str | None = None) -> Response:
    """The run form of ``found``, filled with ``given`` parameters (a task's, to edit and
    run) or the defaults."""
    fields = _fields(found.entry)
    values = {f["name"]: _initial(f, given) for f in fields}
    argv = None
    if given and _argv_mode(fields) and isinstance(given.get("argv"), list):
        argv, tab = [str(item) for item in given["argv"]], "customized"
    device = await run_in_threadpool(local_device, request)
    places = await run_in_threadpool(_places, _store(request), user, where)
    return _form_page(request, user, found, fields, values, {},
                      tab="customized" if tab == "customized" else "quick", argv=argv,
                      task_name=task_name, device=device, places=places)


@router.get("/packages/{name}/run/{export}", response_class=HTMLResponse)
async def run_form(request: Request, name: str, export: str, tab: str = "quick",
                   version: str | None = None) -> Response:
    user = await _user(request)
    try:
        found = await run_in_threadpool(published.find, _store(request), name, export,
                                        version or None)
    except LookupError as exc:
        return _not_found(request, user, str(exc))
    return await _run_page(request, user, found, tab)


@router.get("/tasks/{task_id}/edit", response_class=HTMLResponse)
async def edit_task(request: Request, task_id: str) -> Response:
    """Edit and run: the run form of the task's entry and published version, filled with
    its parameters and name."""
    user = await _user(request)
    job = await _users_job(request, user, task_id)
    if job is None:
        return _not_found(request, user, f"no task {task_id!r}")
    version = (job["package"] or "").partition("==")[2] or None
    try:
        found = await run_in_threadpool(published.resolve, _store(request),
                                        job["target"] or "", version)
    except LookupError as exc:
        return _not_found(request, user, str(exc))
    if found is None:
        return _not_found(request, user, f"task {task_id!r} runs no published package: run "
                                         "it again with lev run")
    return await _run_page(request, user, found, "quick", dict(job["params"] or {}),
                           job["name"], job["placement"])


@router.post("/packages/{name}/run/{export}", response_class=HTMLResponse)
async def run_submit(request: Request, name: str, export: str) -> Response:
    user = await _user(request)
    form = await sessions.check_csrf(request)
    store = _store(request)
    try:
        found = await run_in_threadpool(published.find, store, name, export,
                                        str(form.get("version") or "") or None)
    except LookupError as exc:
        return _not_found(request, user, str(exc))
    fields = _fields(found.entry)
    own = OwnFiles(store, user["name"])  # a File is a digest of the user's own uploads
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    task_name = str(form.get("task_name") or "").strip() or _function(found)
    device = await run_in_threadpool(local_device, request)
    where = str(form.get("where") or "")
    places = await run_in_threadpool(_places, store, user, where)
    page = {"task_name": task_name, "device": device, "places": places}
    if len(task_name) > _TASK_NAME_MAX:
        errors["task_name"] = f"at most {_TASK_NAME_MAX} characters"
    try:
        placed = await run_in_threadpool(dispatch.chosen, store, user["name"], where)
    except dispatch.PlacementError as exc:
        errors["where"] = str(exc)
    if form.get("tab") == "customized" and _argv_mode(fields):
        values = {f["name"]: _initial(f) for f in fields}
        typed = _argv_rows(form)
        try:
            params["argv"] = await run_in_threadpool(_check_argv, fields[0], typed, own)
        except ValueError as exc:
            return _form_page(request, user, found, fields, values, errors, 400,
                              tab="customized", argv=typed,
                              argv_error=_refusal(fields[0], str(exc)), **page)
        fields = []  # checked: nothing left for the Quick form's loop
    uploaded = await _store_files(store, fields, form, user["name"])
    for field in fields:
        raw = uploaded.get(field["name"], form.get(f"p_{field['name']}"))
        values[field["name"]] = (raw is not None if field["widget"] == "checkbox" else
                                 "" if isinstance(raw, bytes) else raw or "")
        try:
            value = _form_value(field, raw)
            if value is not _OMITTED:
                # Text typed as JSON may nest deeper than the task can take (or parse).
                params[field["name"]] = check_json(await run_in_threadpool(
                    check_value, field, value, own))
        except RecursionError:
            errors[field["name"]] = f"nested deeper than {MAX_DEPTH} levels"
        except ValueError as exc:
            errors[field["name"]] = _refusal(field, str(exc))
    if errors:
        return _form_page(request, user, found, fields, values, errors, 400, **page)
    # The task runs the published version's files (see levrt.server.published); the
    # parameters go to lev run as JSON, never through a shell.
    try:
        job_id = await _dispatcher(request).submit(
            store, placed, target=found.entry["qualname"], params=jsonable(params),
            name=task_name, owner=user["name"], package=found.pin)
    except ParamsInvalid as exc:  # too large for a task
        return _form_page(request, user, found, fields, values, exc.errors, 413, **page)
    except RuntimeError as exc:  # Temporal is not configured, or does not answer
        return _form_page(request, user, found, fields, values, {"where": str(exc)}, 503,
                          **page)
    return RedirectResponse(f"/tasks/{job_id}", 303)
