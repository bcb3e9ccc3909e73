"""The routes a job's driver writes its job through (``/api/driver/jobs/{job_id}/...``).

A driver (``lev run --job``, running package code) holds a job token, never a user's token
nor the database (docs/tasks.md#what-a-job-can-reach): each route here checks that the
token is the touched job's and that the job has not ended (:func:`~levrt.server.auth.
job_driver`), and touches that job's records only. The routes mirror the store methods the
job runtime calls, one for one, so that :class:`levrt.client.JobStore` can stand in for
the store; the log takes the lines of many runs in one request, since a chatty tool writes
often. Values travel in the runtime's tagged JSON (``{"$bytes": ...}``), decoded here.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request, Response
from pydantic import Field, field_validator
from starlette.concurrency import run_in_threadpool

from levrt import rows
from levrt._config import load_settings
from levrt._job import RECORD_BATCH
from levrt._job_json import to_json
from levrt._status import FINAL_STATUSES, JobStatus
from levrt.server.auth import JobDriver, StoreDep
from levrt.server.bodylimit import BodyLimit
from levrt.server.schemas import Body, errors
from levrt.shim.entry import decode
from levrt.store import Store
from levrt.store._logs import LOG_STREAMS, RunLog
from levrt.store._store import JobStateError

router = APIRouter(prefix="/api/driver/jobs/{job_id}", tags=["driver"],
                   responses=errors(400, 401, 403, 422))

# Lines one log request may carry: a driver flushes far fewer, a few times a second.
MAX_LOG_ENTRIES = 20_000
# The largest run id, exit code or log row the store keeps (32-bit integer columns).
MAX_INT = 2**31 - 1
RunId = Annotated[int, Path(ge=0, le=MAX_INT, description="the run's id")]


class DriverLogs:
    """The log writers of the jobs being driven, one per (job, run), kept between requests:
    each remembers how much of its run's log it has kept, to cut past ``log_max_bytes`` (the
    server's setting: a driver cannot lift it)."""

    def __init__(self) -> None:
        self._writers: dict[tuple[str, int | None], RunLog] = {}
        self._lock = threading.Lock()

    def writer(self, store: Store, job_id: str, run_id: int | None) -> RunLog:
        with self._lock:
            writer = self._writers.get((job_id, run_id))
            if writer is None:
                writer = self._writers[(job_id, run_id)] = store.run_log(
                    job_id, run_id, load_settings().log_max_bytes)
            return writer

    def forget(self, job_id: str) -> None:
        """Drop the writers of a job that has ended."""
        with self._lock:
            for key in [key for key in self._writers if key[0] == job_id]:
                del self._writers[key]


def _logs(request: Request) -> DriverLogs:
    logs: DriverLogs = request.app.state.driver_logs
    return logs


# -- shapes --------------------------------------------------------------------------------


class StartRequest(Body):
    executor: str | None = Field(None, max_length=64, description="the executor's name")
    driver: str | None = Field(None, max_length=300,
                               description="the driver's host:pid:start, when the server "
                               "did not start it itself")


class RunRequest(Body):
    free_form = frozenset({"spec"})
    run_id: int = Field(ge=0, le=MAX_INT)
    name: str = Field(max_length=1000)
    image: str | None = Field(None, max_length=1000)
    schema_: str | None = Field(None, alias="schema", max_length=1000)
    coll: str = Field(max_length=1000)
    spec: dict[str, Any] | None = None
    namespace: list[Annotated[str, Field(max_length=1000)]] | None = Field(None, max_length=64)


    @field_validator("spec")
    @classmethod
    def _keys_are_names(cls, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        # The rows of the job's results are matched by them (levrt.rows).
        if spec and spec.get("keys") is not None and rows.key_names(spec["keys"]) is None:
            raise ValueError("spec['keys'] must be a list of column names")
        return spec


class RunsRequest(Body):
    runs: list[RunRequest] = Field(min_length=1, max_length=RECORD_BATCH)


class RunEnd(Body):
    free_form = frozenset({"data", "error"})
    status: JobStatus
    exit_code: int | None = Field(None, ge=-MAX_INT - 1, le=MAX_INT)
    error: str | None = None
    coll: str | None = Field(None, max_length=1000)
    data: dict[str, Any] | None = Field(None, description="ctx writes still held, tagged JSON")


class DocumentWrite(Body):
    free_form = frozenset({"data"})
    coll: str = Field(max_length=1000)
    run_id: int | None = Field(None, ge=0, le=MAX_INT)
    data: dict[str, Any] = Field(description="top-level keys to set, tagged JSON")


class LogBatch(Body):
    free_form = frozenset({"entries"})
    run_id: int | None = Field(None, ge=0, le=MAX_INT,
                               description="null: the job's own lines")
    entries: list[tuple[str, str]] = Field(description=f"[stream, line] pairs; streams: "
                                           f"{', '.join(LOG_STREAMS)}")


class LogWrite(Body):
    free_form = frozenset({"batches"})
    batches: list[LogBatch] = Field(max_length=10_000)


class Progress(Body):
    value: float = Field(ge=0.0, le=1.0)


class JobEnd(Body):
    free_form = frozenset({"result", "error"})
    status: JobStatus
    error: str | None = None
    result: Any = Field(None, description="the workflow's result, tagged JSON")


def _decoded(value: Any, field: str) -> Any:
    """``value`` in the runtime's tagged JSON decoded; 422 naming ``field`` when a tag's
    body is not what the tag says (``{"$bytes": 5}``, ``{"$float": "x"}``)."""
    try:
        return decode(value)
    except (ValueError, TypeError) as exc:
        raise HTTPException(422, [{"loc": ["body", field], "type": "value_error",
                                   "msg": f"not the runtime's tagged JSON: {exc}"}]) from None


def _final(status: str, field: str) -> None:
    if status not in FINAL_STATUSES:
        raise HTTPException(422, f"{field}: must be one of {', '.join(FINAL_STATUSES)}, not "
                            f"{status!r}")


# -- routes --------------------------------------------------------------------------------


@router.post("/start", responses=errors(409))
async def start(job_id: JobDriver, body: StartRequest, store: StoreDep,
                request: Request) -> dict[str, str | None]:
    """Mark the queued job running (only one driver can: 409 for the others); answers
    ``{"driver"}``, the driver id recorded: the server's own when its runner started the
    driver (in a sandbox, the driver's pid there means nothing to the host)."""
    runner = getattr(request.app.state, "runner", None)
    driver = (runner.driver_of(job_id) if runner is not None else None) or body.driver
    try:
        await run_in_threadpool(store.start_job, job_id, executor=body.executor, driver=driver)
    except JobStateError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"driver": driver}


@router.get("")
async def job(job_id: JobDriver, store: StoreDep) -> dict[str, Any]:
    """The job's record, as the store keeps it (its ``params`` as the server converted them)."""
    found = await run_in_threadpool(store.get_job, job_id)
    answer: dict[str, Any] = to_json(found)
    return answer


@router.get("/previous")
async def previous(job_id: JobDriver, store: StoreDep) -> dict[str, Any] | None:
    """What the previous successful job of the same schedule (else of the same owner,
    target, package and parameters) left: ``{"job_id", "finished_at", "documents"}``, or
    null. The one read beyond the job's own, for ``ctx.previous()``."""
    answer: dict[str, Any] | None = to_json(
        await run_in_threadpool(store.previous_documents, job_id))
    return answer


@router.get("/runs")
async def runs(job_id: JobDriver, store: StoreDep) -> list[dict[str, Any]]:
    """The job's runs, by run id."""
    answer: list[dict[str, Any]] = to_json(await run_in_threadpool(store.list_runs, job_id))
    return answer


@router.post("/runs", status_code=204, responses=errors(409))
async def create_runs(job_id: JobDriver, body: RunsRequest, store: StoreDep) -> Response:
    """Record runs of the job as running, all or none (a fan-out's together: one request and
    one transaction); 409 when a ``run_id`` is taken."""
    runs = [{"run_id": run.run_id, "name": run.name, "image": run.image,
             "schema": run.schema_, "coll": run.coll, "spec": run.spec,
             "namespace": run.namespace} for run in body.runs]
    try:
        await run_in_threadpool(store.create_runs, job_id, runs)
    except ValueError as exc:
        raise HTTPException(409, f"runs: {exc}") from None
    return Response(status_code=204)


@router.delete("/runs/{run_id}", status_code=204)
async def discard_run(job_id: JobDriver, run_id: RunId, store: StoreDep,
                      keep_run: bool = False) -> Response:
    """Forget a run of an earlier attempt of the job, with its documents and log, to run it
    again under its number (``keep_run``: its record stays, for the same run started again
    on another agent)."""
    await run_in_threadpool(lambda: store.discard_run(job_id, run_id, keep_run=keep_run))
    return Response(status_code=204)


@router.post("/runs/{run_id}/finish", status_code=204, responses=errors(404))
async def finish_run(job_id: JobDriver, run_id: RunId, body: RunEnd,
                     store: StoreDep) -> Response:
    """Record a run's end, with the ``ctx`` writes still held, in one transaction."""
    _final(body.status, "status")
    if body.data and not body.coll:
        raise HTTPException(422, "coll: the run's collection is needed with data")
    data = _decoded(body.data, "data") if body.data else None
    try:
        await run_in_threadpool(lambda: store.finish_run(
            job_id, run_id, status=body.status, exit_code=body.exit_code, error=body.error,
            coll=body.coll, data=data))
    except KeyError:
        raise HTTPException(404, f"run_id: no run {run_id} in job {job_id}") from None
    return Response(status_code=204)


@router.post("/documents", status_code=204)
async def merge_document(job_id: JobDriver, body: DocumentWrite, store: StoreDep) -> Response:
    """Set top-level keys of one of the job's documents (``ctx`` writes, ``Document.set``)."""
    await run_in_threadpool(store.merge_document, body.coll, job_id, body.run_id,
                            _decoded(body.data, "data"))
    return Response(status_code=204)


@router.get("/documents")
async def documents(
    job_id: JobDriver, store: StoreDep,
    coll: Annotated[str | None, Query(max_length=1000)] = None,
    run: Annotated[str | None, Query(pattern=r"^(job|\d{1,9})$",
                                     description="a run id, or 'job' for the job's own "
                                     "documents; absent: all")] = None,
) -> list[dict[str, Any]]:
    """The job's documents (its own only, whatever the collection), tagged JSON."""
    run_id: Any = ... if run is None else None if run == "job" else int(run)
    found = await run_in_threadpool(
        lambda: store.find_documents(coll=coll, job_id=job_id, run_id=run_id))
    answer: list[dict[str, Any]] = to_json(found)
    return answer


@router.post("/logs", status_code=204, responses=errors(413))
async def append_logs(job_id: JobDriver, body: LogWrite, store: StoreDep,
                      request: Request) -> Response:
    """Append lines of the job's log, many runs' at once, each run's in order."""
    if sum(len(batch.entries) for batch in body.batches) > MAX_LOG_ENTRIES:
        raise HTTPException(413, f"batches: more than {MAX_LOG_ENTRIES} lines in one request")
    logs = _logs(request)

    def write() -> None:
        for batch in body.batches:
            logs.writer(store, job_id, batch.run_id).append(batch.entries)

    try:
        await run_in_threadpool(write)
    except ValueError as exc:  # a stream that is none of LOG_STREAMS
        raise HTTPException(422, f"batches: {exc}") from None
    return Response(status_code=204)


@router.get("/logs")
async def logs(
    job_id: JobDriver, store: StoreDep,
    after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    max_bytes: Annotated[int | None, Query(ge=1)] = None,
    last: bool = False,
) -> list[dict[str, Any]]:
    """Rows of the job's log, as :meth:`~levrt.store.Store.get_logs` reads them."""
    found = await run_in_threadpool(lambda: store.get_logs(
        job_id, after=after, limit=limit, max_bytes=max_bytes, last=last))
    answer: list[dict[str, Any]] = to_json(found)
    return answer


@router.get("/runs/{run_id}/log-tail")
async def log_tail(job_id: JobDriver, run_id: RunId, store: StoreDep,
                   lines: Annotated[int, Query(ge=0, le=1000)] = 20) -> list[str]:
    """The last ``lines`` log texts of one run, oldest first."""
    return await run_in_threadpool(store.log_tail, job_id, run_id, lines)


@router.get("/progress")
async def read_progress(job_id: JobDriver, store: StoreDep) -> dict[str, Any]:
    """How far the job is, as its agent's heartbeats carry it: ``status``, ``progress``
    (a fraction, as its driver recorded it), ``runs`` and how many of them ``finished``."""
    def read() -> dict[str, Any]:
        job = store.get_job(job_id)
        runs, finished = store.count_runs(job_id)
        return {"status": job["status"] if job else None,
                "progress": job["progress"] if job else 0.0,
                "runs": runs, "finished": finished}
    return await run_in_threadpool(read)


@router.post("/progress", status_code=204)
async def progress(job_id: JobDriver, body: Progress, store: StoreDep) -> Response:
    """Record the job's progress, a fraction."""
    await run_in_threadpool(store.set_job_progress, job_id, body.value)
    return Response(status_code=204)


@router.post("/finish", status_code=204)
async def finish(job_id: JobDriver, body: JobEnd, store: StoreDep, request: Request) -> Response:
    """End the job: its token dies with it."""
    _final(body.status, "status")
    result = _decoded(body.result, "result")
    await run_in_threadpool(lambda: store.finish_job(job_id, body.status, error=body.error,
                                                     result=result))
    _logs(request).forget(job_id)
    return Response(status_code=204)


async def _owned_file(job_id: str, digest: str, store: Store) -> bool:
    def check() -> bool:
        job = store.get_job(job_id)
        owner = job["owner"] if job else None
        return owner is not None and store.owns_file(owner, digest)
    return await run_in_threadpool(check)


@router.get("/files/{digest}/exists")
async def has_file(job_id: JobDriver, digest: str, store: StoreDep) -> dict[str, bool]:
    """Whether the job's owner has the file ``digest`` (``sha256:<hex>``)."""
    return {"exists": await _owned_file(job_id, digest, store)}


@router.get("/files/{digest}", response_class=Response, responses=errors(404))
async def get_file(job_id: JobDriver, digest: str, store: StoreDep) -> Response:
    """The content of a file the job's owner has (a ``File`` parameter of the job)."""
    if not await _owned_file(job_id, digest, store):
        raise HTTPException(404, f"digest: the job's owner has no file {digest}")
    content = await run_in_threadpool(store.get_file, digest)
    return Response(content, media_type="application/octet-stream")


def driver_app(store: Store, runner: Any, logs: DriverLogs, secret: bytes,
               max_json_bytes: int) -> FastAPI:
    """An app of the driver routes alone, for the runner's private socket: a driver reaches
    no other route of the server, nor sends it a JSON body past ``max_json_bytes``."""
    app = FastAPI(title="levrt job drivers", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, max_bytes=max_json_bytes)
    app.state.store = store
    app.state.runner = runner
    app.state.driver_logs = logs
    app.state.session_secret = secret
    app.include_router(router)
    return app
