"""``lev new USER.TOOL``: a package folder in the layout of docs/packages.md that passes
``lev check`` and its own tests as it is, for the author to change into their tool."""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

from .layout import parse_name
from .problems import PackageError

__all__ = ["RESERVED_TOOLS", "new_name", "scaffold"]

#: TOOL names the scaffold's own files would clash with: ``lev`` is levrt's job object
#: (``from levrt import lev``), ``asset`` the workflow module, ``annot`` what
#: ``__init__.py`` builds ``__lev__`` with.
RESERVED_TOOLS = ("lev", "asset", "annot")

# `string.Template`, not str.format: the files are full of braces. `$$` is a literal `$`.
_FILES: dict[str, str] = {
    "pyproject.toml": '''\
[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "lev.$user.$tool"
version = "0.1.0"
description = "$tool for levrt (made by lev new: describe your tool here)"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["levrt"]

[tool.hatch.build.targets.wheel]
# `lev` and `lev.$user` are namespace packages shared with other hub packages.
packages = ["lev"]

[tool.pytest.ini_options]
# The tests import the package from this folder, without installing it.
pythonpath = ["."]
testpaths = ["tests"]
''',
    "lev/$user/$tool/__init__.py": '''\
"""$user.$tool: the $tool tool and a workflow built on it."""

from levrt import annot

from . import $tool
from .asset import hello_$tool

# What the platform shows: the tool (with its modes) and the workflow.
__lev__ = annot.meta([$tool, hello_$tool])
''',
    "lev/$user/$tool/$tool.py": '''\
"""$tool: greets whoever you name. A starting point: put your tool's description here.
The modes below run echo; replace it with your tool's command.
Homepage: -
GitHub: -
Type: IMAGE-BASED
Version: v0.1.0
"""

from __future__ import annotations

import subprocess
import sys

from levrt import Cr, annot, ctx, remote
from levrt.annot.cats import Attck, BlackArch


# File each mode under the ATT&CK tactics and BlackArch groups that fit it.
@annot.meta(
    desc="Greet someone with echo",
    params=[annot.Param("name", "Who to greet", holder="world")],
    cats=[Attck.Discovery, BlackArch.Misc],
)
def hello(name: str = "world") -> Cr:
    """Run ``echo hello NAME``; stores ``greeting``, the line echo printed.
    ```
    await $tool.hello("world")
    ```
    """

    @remote
    def entry():
        # This runs in the sandbox (the image, or a host process), not in the caller.
        proc = subprocess.run(["echo", f"hello {name}"], stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            sys.exit(proc.returncode)
        ctx.set(greeting=proc.stdout.strip())

    # The image `lev image build .` makes from the Dockerfile (".user.tool:version").
    return Cr(".$user.$tool:0.1.0", "$user/$tool.hello@1.0", entry=entry())
''',
    "lev/$user/$tool/asset.py": '''\
"""Workflows built on the $tool tool."""

from __future__ import annotations

from levrt import Concurrent, annot, lev
from levrt.annot.cats import BlackArch

from . import $tool as tool

NAMES = annot.Param("names", "Who to greet: one run each", holder='["alice", "bob"]')


@annot.meta(desc="Greet several people, one run each", params=[NAMES], cats=[BlackArch.Misc])
async def hello_$tool(names: list[str]) -> list[str]:
    """Greet every name with the hello mode, four runs at a time; returns the greetings in
    the order of the names and stores them as ``greetings`` on the job's document.
    ```
    await hello_$tool(["alice", "bob"])
    ```
    """
    async with Concurrent(limit=4) as c:
        tasks = [c.start(tool.hello(name)) for name in names]
    greetings = []
    for task in tasks:
        data = await (await task).get()
        greetings.append(data["greeting"])
    await lev.doc.set(greetings=greetings)
    return greetings
''',
    "main.py": '''\
"""Local test of the package: greet two people as a real job (echo runs on this machine).

    python main.py      # the job, its runs and documents also land in the store (LEV_HOME)
"""

from lev.$user.$tool import hello_$tool

import levrt


async def main():
    return await hello_$tool(["alice", "bob"])


if __name__ == "__main__":
    print(levrt.run(main()))
''',
    "tests/test_$tool.py": '''\
"""Tests that need no tools: levrt.testing answers the runs, like httpx.MockTransport."""

from lev.$user.$tool import __lev__, hello_$tool

from levrt import testing


def test_workflow_collects_a_greeting_per_name():
    replies = {"hello.entry": {"greeting": "hello you"}}
    assert testing.replay(hello_$tool(["alice", "bob"]), replies) == ["hello you"] * 2


def test_exports_the_tool_and_the_workflow():
    exports = {entry["name"]: entry for entry in __lev__["exports"]}
    assert [mode["name"] for mode in exports["$tool"]["modes"]] == ["hello"]
    assert exports["hello_$tool"]["kind"] == "workflow"
''',
    "Dockerfile": '''\
# The image the modes of $tool run in: Debian with python3 (for the levrt entry shim) and
# echo. Install your tool here.
#
# `lev image build .` builds it as localhost/lev.$user.$tool:0.1.0, the ".$user.$tool:0.1.0"
# the modes name. Images are built locally: the base is a debootstrap'd bookworm (see images/
# in the levrt repository); on a connected machine pass --build-arg BASE=debian:bookworm-slim.
ARG BASE=localhost/lev-base:bookworm
FROM $${BASE}

RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/*

CMD ["python3", "--version"]
''',
    "README.md": '''\
# lev.$user.$tool

A levrt package made by `lev new`: the tool `$tool` (mode `hello`, which runs `echo`) and
the workflow `hello_$tool`. Change them into your own.

```
lev check              # the manifest, and what is wrong with file:line
python -m pytest       # tests with levrt.testing: no tools needed
python main.py         # a real job: the process executor runs echo here
lev image build .      # the tool image from the Dockerfile
```
''',
}


def new_name(name: str) -> tuple[str, str]:
    """``(user, tool)`` of a name ``lev new`` accepts; a `PackageError` names the rule a bad
    one breaks."""
    user, tool = parse_name(name)
    if tool in RESERVED_TOOLS:
        names = f"{', '.join(RESERVED_TOOLS[:-1])} or {RESERVED_TOOLS[-1]}"
        raise PackageError(f"{name!r}: TOOL must not be {names}: the package's own files "
                           "use those names")
    return user, tool


def scaffold(parent_dir: str | Path, name: str) -> Path:
    """Create the package folder ``PARENT_DIR/USER.TOOL`` and return it.

    Raises `PackageError` naming the rule a bad name breaks, or when the folder exists.
    """
    user, tool = new_name(name)
    parent = Path(parent_dir)
    if not parent.is_dir():
        raise PackageError(f"{parent}: no such directory")
    folder = parent / f"{user}.{tool}"
    try:
        folder.mkdir()
    except FileExistsError:
        raise PackageError(f"{folder} already exists: pick another --dir, or remove it "
                           "first") from None
    try:
        for template, text in _FILES.items():
            path = folder / Template(template).substitute(user=user, tool=tool)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Template(text).substitute(user=user, tool=tool), encoding="utf-8")
    except OSError as exc:
        # Half a package would pass for a whole one later: leave nothing behind.
        shutil.rmtree(folder, ignore_errors=True)
        raise PackageError(f"cannot create {folder}: {exc.strerror or exc}") from None
    return folder
