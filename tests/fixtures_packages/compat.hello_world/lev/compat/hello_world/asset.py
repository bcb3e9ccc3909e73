from levrt import ctx, annot, Concurrent
from . import hello

@annot.meta(
    desc = "hello world",
    params = [annot.Param("length", "exp length", holder = "9")]
)
async def hello_world(length: int):
    """
    my first asset
    ```
    await hello_world(9)
    ```
    """

    import logging
    logging.basicConfig()
    logger = logging.getLogger("lev")
    logger.setLevel(logging.DEBUG)
    logger.debug("[lev app - hello world] log from asset - start point")

    said = []
    doc = await hello.hello()
    data = await doc.get()
    logger.debug(f"[lev app - hello world] {data['msg']}")
    said.append(data["msg"])

    doc = await hello.hi()
    data = await doc.get()
    logger.debug(f"[lev app - hello world] {data['msg']}")
    said.append(data["msg"])

    doc = await hello.exp(length)
    data = await doc.get()
    logger.debug(f"[lev app - hello world] {data['msg']}")
    said.append(data["msg"])

    logger.debug("[lev app - hello world] log from asset - end point")
    return said
