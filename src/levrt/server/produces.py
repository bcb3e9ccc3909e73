"""What a published entry produces, read from its source without importing it (the server
never runs package code): the images its runs use, the collections they write with their
fields (``Cr(image, schema)`` and the keywords of ``ctx.set(...)`` in the same function),
the fields of the job's own document (``lev.doc.set(...)``), and, for a workflow, what the
modes of its package that it calls produce. A best guess from the text: what a function
computes at run time (an image name in a variable) is not seen."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from typing import Any

from levrt.server.labels import JOB_COLL
from levrt.store import Store


@dataclass
class Produces:
    """Of one entry: ``images`` it runs in, ``colls`` (collection → field names)."""

    images: list[str] = field(default_factory=list)
    colls: dict[str, list[str]] = field(default_factory=dict)

    def add(self, other: Produces) -> None:
        self.images.extend(i for i in other.images if i not in self.images)
        for coll, keys in other.colls.items():
            mine = self.colls.setdefault(coll, [])
            mine.extend(k for k in keys if k not in mine)


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) \
        else None


def _called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else \
        func.attr if isinstance(func, ast.Attribute) else ""


def _receiver(node: ast.Call) -> str:
    """``lev.doc`` of ``lev.doc.set(...)``, ``ctx`` of ``ctx.set(...)``."""
    func = node.func
    return ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""


def _own(function: ast.AST, functions: dict[str, ast.AST], modes: set[str],
         seen: set[str]) -> Produces:
    found = Produces()
    schema = None
    fields: list[str] = []
    for node in ast.walk(function):
        if not isinstance(node, ast.Call):
            continue
        name = _called(node)
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if name == "Cr":
            image = _text(node.args[0] if node.args else keywords.get("image"))
            schema = _text(node.args[1] if len(node.args) > 1 else keywords.get("schema"))
            if image and image not in found.images:
                found.images.append(image)
        elif name == "set" and _receiver(node) == "ctx":
            fields.extend(k for k in keywords if k not in fields)
        elif name == "set" and _receiver(node) in ("lev.doc", "doc"):
            found.add(Produces(colls={JOB_COLL: list(keywords)}))
        elif name in modes and name not in seen and name in functions:
            # A workflow calling a mode of its package: what that mode produces.
            found.add(_own(functions[name], functions, modes, seen | {name}))
    if schema or fields:
        found.add(Produces(colls={schema or "(its run's document)": fields}))
    return found


@functools.lru_cache(maxsize=64)
def _package_functions(source: tuple[tuple[str, str], ...]) -> dict[str, dict[str, ast.AST]]:
    """Top-level functions of each module (path → name → node); a file that does not parse
    has none."""
    found: dict[str, dict[str, ast.AST]] = {}
    for path, text in source:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        found[path] = {node.name: node for node in tree.body
                       if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return found


def _module_path(qualname: str) -> list[str]:
    module = qualname.partition(":")[0].replace(".", "/")
    return [f"{module}.py", f"{module}/__init__.py"]


def produces(store: Store, name: str, version: str,
             entries: list[dict[str, Any]]) -> dict[str, Produces]:
    """What each entry (by qualname) of a published version produces."""
    files = store.list_version_files(name, version) or []
    source = []
    for member in files:
        if member["path"].endswith(".py"):
            content = store.version_file(name, version, member["path"]) or b""
            source.append((member["path"], content.decode("utf-8", "replace")))
    modules = _package_functions(tuple(source))
    every = {fn: node for functions in modules.values() for fn, node in functions.items()}
    modes = {str(e.get("qualname", "")).rpartition(":")[2] for e in entries
             if e.get("kind") == "mode"}
    found = {}
    for entry in entries:
        qualname = str(entry.get("qualname") or "")
        function = qualname.rpartition(":")[2]
        module = next((modules[p] for p in _module_path(qualname) if p in modules), {})
        node = module.get(function)
        found[qualname] = _own(node, every, modes, {function}) if node else Produces()
    return found


def image_presence(images: list[str]) -> dict[str, bool | None]:
    """Whether the container engine here has each image: None for all when no engine
    answers (tools then run as host processes, if the server allows it). Blocks on the
    engine: call it off the event loop."""
    from levrt.executors.docker import _docker, engine_url

    url = engine_url()
    if url is None or not images:
        return dict.fromkeys(images)
    docker = _docker()
    client = docker.DockerClient(base_url=url, timeout=5)
    found: dict[str, bool | None] = {}
    try:
        for image in images:
            try:
                client.images.get(image)
                found[image] = True
            except docker.errors.ImageNotFound:
                found[image] = False
            except docker.errors.DockerException:
                found[image] = None
    finally:
        client.close()
    return found
