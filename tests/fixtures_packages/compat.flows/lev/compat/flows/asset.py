import asyncio as aio
from levrt import ctx, annot, Concurrent
from levrt.annot.cats import Attck, BlackArch

from . import checker


@annot.meta(
    desc="check many domains, two at a time",
    params=[annot.Param("domains", "domains to check", holder='["example.org", "example.com"]')],
    cats={
        Attck: [Attck.Reconnaissance],
        BlackArch: [BlackArch.Recon]
    }
)
async def concurrent(domains: list[str]):
    """
    Multi-thread execution, as the workflow chapter writes it.
    ```
    await concurrent(["example.org", "example.com"])
    ```
    """
    task_list = []
    docs = []
    async with Concurrent(limit=2) as c:
        for i in domains:
            task = c.start(checker.dmarc(i))
            task_list.append(task)

    for t in task_list:
        t_result = await t
        data = await t_result
        docs.append(data)
    print(docs)
    return docs


@annot.meta(desc="a check in the background", params=[annot.Param("domain", "domain to check")])
async def background(domain: str):
    """
    Background execution: start, let it finish, read its document.
    ```
    await background("example.org")
    ```
    """
    task = await checker.slow(domain).start()
    await aio.sleep(0)
    result = await task()
    data = await result.get()
    assert result.coll.collection_name == "compat/checker.slow@1.0"
    return data


@annot.meta(desc="a check in a namespace", params=[annot.Param("ip", "domain to check")])
async def extra_namespace(ip: str):
    """
    Stores the check under the namespace demo1.
    ```
    await extra_namespace("example.org")
    ```
    """
    with ctx / "demo1":
        result = await checker.dmarc(ip)
        data = await result.get()
        print(data)
    return result.coll.name


@annot.meta(desc="the namespace demo1 inside demo2", params=[annot.Param("ip", "domain to check")])
async def extra_namespace2(ip: str):
    """
    Reuses extra_namespace under another namespace.
    ```
    await extra_namespace2("example.org")
    ```
    """
    with ctx / "demo2":
        return await extra_namespace(ip)
