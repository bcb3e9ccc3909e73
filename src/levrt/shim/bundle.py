"""Copies this container's Python into a volume, for images that have none.

Runs once per volume in the base image (``python3 bundle.py /lev-py NAME``): the
interpreter, its standard library and every shared library they load, the dynamic loader
included, go to ``/lev-py/NAME/``. Started through that loader, the copy runs on any
Linux image of the same architecture whatever its libc, or none:
``/lev-py/NAME/ld.so --library-path /lev-py/NAME/so /lev-py/NAME/bin/python3``
with ``PYTHONHOME=/lev-py/NAME``. Built in a scratch directory and renamed into place,
so a reader sees the whole copy or none. Standard library only, Python 3.7 syntax.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

SKIP = {"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
        "site-packages", "dist-packages"}


def shared_libraries(files: list[str]) -> tuple[dict[str, str], str | None]:
    """Path of every library the files load, and the loader's."""
    found = {}
    loader = None
    for path in files:
        out = subprocess.run(["ldd", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout
        for line in out.splitlines():
            match = re.search(r"=>\s+(/\S+)", line)
            if match:
                found[os.path.basename(match.group(1))] = os.path.realpath(match.group(1))
            elif re.match(r"\s*/\S+", line):
                loader = os.path.realpath(line.split()[0])
    return found, loader


def main(root: str, name: str) -> int:
    target = os.path.join(root, name)
    if os.path.isdir(target):
        return 0
    scratch = tempfile.mkdtemp(prefix=".fill-", dir=root)
    stdlib = sysconfig.get_paths()["stdlib"]
    version = "python{}.{}".format(*sys.version_info[:2])
    shutil.copytree(stdlib, os.path.join(scratch, "lib", version), symlinks=False,
                    ignore=lambda directory, names: [n for n in names if n in SKIP])
    os.makedirs(os.path.join(scratch, "bin"))
    shutil.copy2(os.path.realpath(sys.executable), os.path.join(scratch, "bin", "python3"))
    dynload = glob.glob(os.path.join(stdlib, "lib-dynload", "*.so"))
    libraries, loader = shared_libraries([sys.executable] + dynload)
    if loader is None:
        sys.exit(f"bundle: no dynamic loader found for {sys.executable}")
    os.makedirs(os.path.join(scratch, "so"))
    for base, path in libraries.items():
        shutil.copy2(path, os.path.join(scratch, "so", base))
    shutil.copy2(loader, os.path.join(scratch, "ld.so"))
    try:
        os.rename(scratch, target)
    except OSError:
        shutil.rmtree(scratch)  # another fill got there first
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
