import levrt
from lev.compat.hello_world import hello, hello_world

async def main():
    data = await hello_world(9)
    print(data)

if __name__ == "__main__":
    import logging
    logging.basicConfig()
    logger = logging.getLogger("lev")
    logger.setLevel(logging.DEBUG)
    logger.debug("[lev app - hello world] debug test")
    levrt.run(main())
