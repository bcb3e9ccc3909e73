"""A job keeps what its workflow returned (``jobs.result``), for the task page's Result."""

from __future__ import annotations

import levrt
from levrt import Cr, ctx, remote
from levrt.store._store import RESULT_MAX_CHARS


def test_a_workflows_return_value_is_kept_with_its_job(store):
    async def answer() -> dict[str, str]:
        return {"22/tcp": "open", "80/tcp": "closed"}

    assert levrt.run(answer(), store=store, executor="process", echo=False)
    (job,) = store.list_jobs()
    assert job["result"] == {"22/tcp": "open", "80/tcp": "closed"}


def test_a_document_result_is_kept_as_a_pointer_to_it(store):
    @remote
    def entry():
        ctx.set(n=1)

    async def mode() -> Cr:
        return Cr("localhost/lev-base:bookworm", entry=entry())

    levrt.run(mode(), store=store, executor="process", echo=False)
    (job,) = store.list_jobs()
    (document,) = store.list_documents(job["id"])
    assert job["result"] == {"$document": {"coll": document["coll"], "run": 0}}


def test_results_that_are_not_json_or_too_large(store):
    async def returns(value: object) -> object:
        return value

    levrt.run(returns({1, 2}), "a set", store=store, executor="process", echo=False)
    levrt.run(returns("x" * (RESULT_MAX_CHARS + 1)), "huge", store=store,
              executor="process", echo=False)
    levrt.run(returns(None), "nothing", store=store, executor="process", echo=False)
    results = {job["name"]: job["result"] for job in store.list_jobs()}
    assert results["a set"] == "{1, 2}"
    assert results["huge"].startswith(f"(a result of {RESULT_MAX_CHARS + 3} characters")
    assert results["nothing"] is None
