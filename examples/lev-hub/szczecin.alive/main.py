"""Local test of the package: is this machine's loopback address alive?"""

from lev.szczecin.alive import alive

import levrt


async def main():
    doc = await alive("127.0.0.1")
    print((await doc.get())["alive"])


if __name__ == "__main__":
    levrt.run(main())
