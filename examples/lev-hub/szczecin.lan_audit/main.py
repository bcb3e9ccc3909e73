"""Local test of the package: list the open services of this machine's loopback address."""

from lev.szczecin.lan_audit import open_services

import levrt


async def main():
    return await open_services("127.0.0.1")


if __name__ == "__main__":
    levrt.run(main())
