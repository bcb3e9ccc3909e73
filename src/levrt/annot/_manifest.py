"""Describe an exported module or function as a JSON-like manifest entry.

The platform server never imports package code, so everything it shows (modes, parameter
forms, examples, images) must be extracted here, on the author's side, by introspection.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from ._model import Meta, describe, get_meta, to_json

__all__ = ["export_kind", "manifest_entry", "module_manifest", "render_type"]

_HEADER_KEYS = ("homepage", "github", "type", "version")
_HEADER_RE = re.compile(r"^\s*(homepage|github|type|version)\s*:\s*(.*?)\s*$", re.IGNORECASE)
# Authors write "Homepage: -" for "none"; the manifest says None so the UI needs no special case.
_HEADER_NONE = ("", "-")
FENCE_RE = re.compile(r"^[ \t]*(`{3,})[^\n]*\n(.*?)^[ \t]*\1`*[ \t]*$", re.MULTILINE | re.DOTALL)


def export_kind(obj: object) -> str | None:
    """``"module"``, ``"tool"`` (sync function), ``"workflow"`` (async function) or None."""
    if inspect.ismodule(obj):
        return "module"
    if not inspect.isfunction(obj):
        return None
    if inspect.iscoroutinefunction(obj):
        return "workflow"
    if inspect.isgeneratorfunction(obj) or inspect.isasyncgenfunction(obj):
        return None
    return "tool"


def manifest_entry(obj: object) -> dict[str, Any]:
    """The manifest entry of one export: a module (multi-mode tool), a sync function
    (modeless tool) or an async function (workflow)."""
    kind = export_kind(obj)
    if kind == "module":
        return _module_tool(typing.cast(types.ModuleType, obj))
    if kind == "workflow":
        return _function_entry(typing.cast(types.FunctionType, obj), "workflow")
    if kind == "tool":
        return _modeless_tool(typing.cast(types.FunctionType, obj))
    raise TypeError(
        f"cannot export {describe(obj)}: expected a module (a multi-mode tool), a sync function "
        "(a single-mode tool) or an async function (a workflow)"
    )


def _function_entry(fn: types.FunctionType, kind: str) -> dict[str, Any]:
    meta = get_meta(fn) or Meta()
    doc = inspect.getdoc(fn)
    module = fn.__module__
    entry: dict[str, Any] = {
        "kind": kind,
        "name": fn.__name__,
        "qualname": f"{module}:{fn.__qualname__}" if module else fn.__qualname__,
        "desc": meta.desc or _first_line(doc),
        "doc": doc,
        "example": _example(doc),
        "cats": {key: list(values) for key, values in meta.cats.items()},
        "tags": list(meta.tags),
        "ext": to_json(meta.ext, f"{fn.__qualname__}: ext"),
        "keys": list(meta.keys),
    }
    entry.update(_params(fn, meta))
    if kind != "workflow":
        images, schemas = _static_images(fn)
        entry["images"] = images
        entry["schemas"] = schemas
    return entry


def _modeless_tool(fn: types.FunctionType) -> dict[str, Any]:
    entry = _function_entry(fn, "tool")
    module = sys.modules.get(fn.__module__)
    _, header = parse_header(inspect.getdoc(module) if module is not None else None)
    entry.update(header)
    entry["modes"] = [_function_entry(fn, "mode")]
    return entry


def _module_tool(module: types.ModuleType) -> dict[str, Any]:
    doc = inspect.getdoc(module)
    description, header = parse_header(doc)
    own = module_manifest(module)
    if own is None:
        modes = [_function_entry(fn, "mode") for fn in _modes_of(module)]
        own = {}
    else:
        # The module's own list decides: its sync functions, in the order written. What
        # else it lists (a workflow, a module) is no mode; `lev check` says so.
        modes = [entry["modes"][0] for entry in own["exports"]
                 if entry.get("kind") == "tool" and "params" in entry and entry.get("modes")]
    return {
        "kind": "tool",
        "name": module.__name__.rpartition(".")[2],
        "qualname": module.__name__,
        "desc": own.get("desc") or "\n".join(description) or None,
        "doc": doc,
        "example": _example(doc),
        "cats": own.get("cats") or _merge_cats(mode["cats"] for mode in modes),
        "tags": own.get("tags") or list(dict.fromkeys(tag for mode in modes
                                                      for tag in mode["tags"])),
        "ext": own.get("ext") or {},
        **header,
        "images": sorted({image for mode in modes for image in mode["images"]}),
        "schemas": sorted({schema for mode in modes for schema in mode["schemas"]}),
        "modes": modes,
    }


def module_manifest(module: types.ModuleType) -> dict[str, Any] | None:
    """The module's own ``__lev__`` when it is a manifest `annot.meta([...])` built, else None."""
    found = getattr(module, "__lev__", None)
    if (isinstance(found, dict) and isinstance(found.get("levrt"), int)
            and isinstance(found.get("exports"), list)):
        return found
    return None


def _modes_of(module: types.ModuleType) -> list[types.FunctionType]:
    # Only functions defined here count: a module also holds what it imports (helpers, other
    # tools' modes), and those must not appear as modes of this tool.
    found: dict[int, types.FunctionType] = {}
    for value in vars(module).values():
        if (
            export_kind(value) == "tool"
            and get_meta(value) is not None
            and value.__module__ == module.__name__
        ):
            found.setdefault(id(value), value)
    return sorted(found.values(), key=lambda fn: fn.__code__.co_firstlineno)


def _merge_cats(all_cats: Iterable[dict[str, list[str]]]) -> dict[str, list[str]]:
    merged: dict[str, set[str]] = {}
    for cats in all_cats:
        for key, values in cats.items():
            merged.setdefault(key, set()).update(values)
    return {key: sorted(values) for key, values in sorted(merged.items())}


def _first_line(doc: str | None) -> str | None:
    for line in (doc or "").splitlines():
        if line.strip():
            return line.strip()
    return None


def _example(doc: str | None) -> str | None:
    match = FENCE_RE.search(doc or "")
    if match is None:
        return None
    return textwrap.dedent(match.group(2)).strip() or None


def parse_header(doc: str | None) -> tuple[list[str], dict[str, str | None]]:
    """Split a tool module docstring into its description lines and header fields."""
    header: dict[str, str | None] = dict.fromkeys(_HEADER_KEYS)
    description: list[str] = []
    in_header = False
    for line in (doc or "").splitlines():
        match = _HEADER_RE.match(line)
        if match is not None:
            in_header = True
            key, value = match.group(1).lower(), match.group(2)
            if header[key] is None and value not in _HEADER_NONE:
                header[key] = value
        elif not in_header and line.strip():
            description.append(line.strip())
    return description, header


def _params(fn: types.FunctionType, meta: Meta) -> dict[str, Any]:
    signature = inspect.signature(fn)
    hints = _type_hints(fn)
    by_name = {param.name: param for param in meta.params}
    params: list[dict[str, Any]] = []
    for name, parameter in signature.parameters.items():
        meta_param = by_name.get(name)
        if name in hints:
            rendered: str | None = render_type(hints[name])
        elif parameter.annotation is not inspect.Parameter.empty:
            rendered = render_type(parameter.annotation)
        else:
            rendered = None
        variadic = parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        has_default = parameter.default is not inspect.Parameter.empty
        params.append(
            {
                "name": name,
                "type": rendered,
                "kind": parameter.kind.name.lower(),
                "required": not has_default and not variadic,
                "default": _default_value(parameter.default) if has_default else None,
                "placeholder": meta_param.placeholder if meta_param else None,
                "regex": meta_param.regex if meta_param else None,
                "desc": meta_param.desc if meta_param else None,
            }
        )
    unknown = [param.name for param in meta.params if param.name not in signature.parameters]
    return {"params": params, "unknown_params": unknown}


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        # Evaluating string annotations runs arbitrary expressions (a name imported only
        # under TYPE_CHECKING, a typo); the raw annotation text is still worth showing.
        return {}


def _default_value(value: object) -> Any:
    try:
        return to_json(value, "default")
    except TypeError:
        return repr(value)


def render_type(tp: object) -> str:
    """Render an annotation the way an author would write it: ``"list[str]"``,
    ``"Optional[int]"``, ``"str | None"``, ``"Cr"``."""
    if tp is None or tp is type(None):
        return "None"
    if isinstance(tp, str):
        return tp
    if isinstance(tp, typing.ForwardRef):
        return tp.__forward_arg__
    if tp is Ellipsis:
        return "..."
    if isinstance(tp, list):  # the argument list of Callable[[int, str], bool]
        return "[" + ", ".join(render_type(arg) for arg in tp) + "]"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        rest = [arg for arg in args if arg is not type(None)]
        if len(args) == 2 and len(rest) == 1:
            return f"Optional[{render_type(rest[0])}]"
        return f"Union[{', '.join(render_type(arg) for arg in args)}]"
    if origin is types.UnionType:
        return " | ".join(render_type(arg) for arg in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is not None:
        name = _type_name(origin)
        return f"{name}[{', '.join(render_type(arg) for arg in args)}]" if args else name
    return _type_name(tp)


def _type_name(tp: object) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return repr(tp).removeprefix("typing.")


def _static_images(fn: types.FunctionType) -> tuple[list[str], list[str]]:
    """Image references and schemas passed as literals to `Cr(...)` calls in `fn`'s source.

    Found statically so `lev check` and the hub can list (and pre-pull) images without
    running the tool.
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, ValueError):
        # No source (built in a REPL or by exec) or an unparsable fragment: nothing to report.
        return [], []
    images: set[str] = set()
    schemas: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _callee_name(node.func) != "Cr":
            continue
        image = _literal_arg(node, 0, "image")
        schema = _literal_arg(node, 1, "schema")
        if image is not None:
            images.add(image)
        if schema is not None:
            schemas.add(schema)
    return sorted(images), sorted(schemas)


def _callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal_arg(call: ast.Call, position: int, keyword: str) -> str | None:
    node: ast.expr | None = None
    leading = call.args[: position + 1]
    # After a *args nobody can tell statically which value lands in which position.
    if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in leading):
        node = call.args[position]
    else:
        node = next((kw.value for kw in call.keywords if kw.arg == keyword), None)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None
