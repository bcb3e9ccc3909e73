"""Import a hub package in this throwaway process and print its manifest as JSON.

``python -m levrt.packages._probe DIR`` is what `levrt.packages.package_manifest` runs:
package code executes here, never in the process that asked, and whatever goes wrong
comes back as data, never as a traceback. One JSON object goes to stdout:
``{"ok": true, "manifest": {...}}`` or ``{"ok": false, "error": {"message", "file",
"line"}}`` (file relative to DIR). What the package prints goes to stderr.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any

from .. import __version__
from ..annot._manifest import parse_header
from ..annot._model import describe
from ._source import parse_module
from .layout import PackageInfo, hub_search_path, read_package_folder
from .problems import PackageError

__all__ = ["build_manifest", "import_failure", "main", "probe"]

_EXPORT_KINDS = ("tool", "workflow")
# Frames in these folders are levrt's or the interpreter's, never the author's.
_NOT_AUTHOR = tuple(
    str(Path(folder).resolve()) + os.sep
    for folder in {sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parent.parent)}
)


def probe(directory: str | Path) -> dict[str, Any]:
    """Import the package in `directory` (with its sibling package folders importable, as
    ``lev run`` has them) and return its manifest; raises `PackageError`."""
    info, _ = read_package_folder(directory)
    if not info.installed:
        _, path = hub_search_path(info.root)
        sys.path[:0] = [folder for folder in path if folder not in sys.path]
        # A pdm workspace (PEP 582) keeps the package's dependencies in __pypackages__;
        # only this interpreter's version of them can be imported here.
        pypackages = info.root / "__pypackages__" / f"{sys.version_info[0]}.{sys.version_info[1]}"
        if (pypackages / "lib").is_dir():
            sys.path.append(str(pypackages / "lib"))
    try:
        module = importlib.import_module(info.module)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt at import too
        raise import_failure(exc, info) from None
    return build_manifest(module, info)


def import_failure(exc: BaseException, info: PackageInfo) -> PackageError:
    """The error of a failed import, at its innermost frame inside the package folder."""
    where: tuple[str, int | None] | None = None
    if isinstance(exc, SyntaxError) and exc.filename and _inside(exc.filename, info.path):
        where = (info.relative(exc.filename), exc.lineno)
        detail = exc.msg
    else:
        detail = next(iter(str(exc).strip().splitlines()), "")
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if not frame.filename.startswith("<")]
    ours = [frame for frame in frames if _inside(frame.filename, info.path)]
    if where is None and ours:
        where = (info.relative(ours[-1].filename), ours[-1].lineno)
    message = f"cannot import {info.module}: {type(exc).__name__}"
    message += f": {detail}" if detail else ""
    # Raised in another author's file (a sibling package): say where, too.
    if frames and frames[-1] not in ours and not frames[-1].filename.startswith(_NOT_AUTHOR):
        message += f" (raised at {frames[-1].filename}:{frames[-1].lineno})"
    if where is None:
        where = ((info.package_dir / "__init__.py").as_posix(), None)
    return PackageError(message, file=where[0], line=where[1])


def _inside(filename: str, root: Path) -> bool:
    return Path(filename).resolve().is_relative_to(root)


def build_manifest(module: types.ModuleType, info: PackageInfo) -> dict[str, Any]:
    """The manifest of an imported package: its ``__lev__`` exports with their source
    locations, plus what ``pyproject.toml`` and the package docstring say."""
    init = (info.package_dir / "__init__.py").as_posix()
    if not hasattr(module, "__lev__"):
        raise PackageError("no __lev__: add __lev__ = annot.meta([...]) naming the tool "
                           "modules, tool functions and workflows the platform shows", file=init)
    exports = _exports(module.__lev__, init, _lev_line(module))
    doc = inspect.getdoc(module)
    description, header = parse_header(doc)
    return {
        "manifest": module.__lev__["levrt"],
        "package": info.name,
        "version": info.version,
        "description": info.description,
        "user": info.user,
        "tool": info.tool,
        "module": info.module,
        "levrt": __version__,
        "doc": doc,
        "header": {"desc": "\n".join(description) or None, **header},
        # What the __init__'s annot.meta([...], desc=..., cats=..., tags=...) says of it.
        **{key: module.__lev__.get(key, default)
           for key, default in (("desc", None), ("cats", {}), ("tags", []), ("ext", {}))},
        "exports": [_with_source(entry, info) for entry in exports],
    }


def _exports(lev: object, init: str, line: int | None) -> list[dict[str, Any]]:
    if isinstance(lev, dict) and isinstance(lev.get("levrt"), int):
        exports = lev.get("exports")
        if isinstance(exports, list) and all(map(_is_entry, exports)):
            return exports
    raise PackageError(
        f"__lev__ must be the manifest annot.meta([...]) returns, not {describe(lev)}: "
        "write __lev__ = annot.meta([tool_module, workflow, ...])", file=init, line=line)


def _is_entry(entry: object) -> bool:
    return (isinstance(entry, dict) and entry.get("kind") in _EXPORT_KINDS
            and isinstance(entry.get("name"), str) and isinstance(entry.get("qualname"), str)
            and isinstance(entry.get("modes", []), list))


def _lev_line(module: types.ModuleType) -> int | None:
    try:
        source = parse_module(module.__name__, Path(module.__file__ or ""))
    except (OSError, SyntaxError, ValueError):
        return None
    statement = source.assignments.get("__lev__")
    return statement.lineno if statement is not None else None


def _with_source(entry: dict[str, Any], info: PackageInfo) -> dict[str, Any]:
    """The entry plus ``file`` (relative to the package folder) and ``line`` (where its
    definition starts, at its first decorator) of it and of its modes."""
    file, line = _source_of(entry["qualname"], info)
    located = {**entry, "file": file, "line": line}
    if "modes" in entry:
        located["modes"] = [_with_source(mode, info) for mode in entry["modes"]
                            if isinstance(mode, dict) and isinstance(mode.get("qualname"), str)]
    return located


def _source_of(qualname: str, info: PackageInfo) -> tuple[str | None, int | None]:
    module_name, _, path = qualname.partition(":")
    found: object = sys.modules.get(module_name)
    for part in path.split(".") if path else []:
        found = getattr(found, part, None)
    if inspect.ismodule(found) and found.__file__:
        return info.relative(found.__file__), 1
    if inspect.isfunction(found):
        code = inspect.unwrap(found).__code__
        return info.relative(code.co_filename), code.co_firstlineno
    return None, None


def _run(args: list[str]) -> str:
    try:
        if len(args) != 1:
            raise PackageError("usage: python -m levrt.packages._probe PACKAGE_DIR")
        return json.dumps({"ok": True, "manifest": probe(args[0])}, ensure_ascii=False)
    except PackageError as exc:
        error = {"message": exc.message, "file": exc.file, "line": exc.line}
    except Exception as exc:  # levrt's own bug: still an answer the caller can word
        error = {"message": f"levrt could not build the manifest: {type(exc).__name__}: {exc}",
                 "file": None, "line": None}
    return json.dumps({"ok": False, "error": error}, ensure_ascii=False)


def main() -> None:
    # The answer travels on a copy of stdout; stdout itself goes to stderr, so that
    # anything the package (or a process it starts) prints cannot corrupt the JSON.
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    answer.write(_run(sys.argv[1:]))
    answer.flush()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    # Threads or atexit handlers the package started must not keep this process alive.
    os._exit(0)


if __name__ == "__main__":
    main()
