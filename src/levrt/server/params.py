"""Task parameters checked against a published manifest, without the package's code.

The manifest gives each parameter's type as text (``int``, ``list[str]``, ``str | None``);
:func:`parse_type` reads that text into a typing object with :mod:`ast` — never ``eval`` —
so the runtime's own converter (:func:`levrt._params.convert_value`, what ``lev run`` uses)
converts the values once, by the server's rules (:data:`levrt._params.SERVER`: a ``File`` is
a stored file's digest, never a path). The job gets them in their typed JSON form and takes
them as they are (:data:`levrt._params.CONVERTED`): what was text stays text there.
A type it does not know is checked by ``lev run`` when the task starts, by the same rules.
"""

from __future__ import annotations

import ast
import json
import re
import typing
from typing import Any

from levrt import File
from levrt._params import SERVER, convert_value, jsonable
from levrt.shim.entry import encode
from levrt.store import Store

# Parameters given by name; *args and **kwargs take none.
NAMED_KINDS = ("positional_or_keyword", "keyword_only", "positional_only", None)

_TYPES: dict[str, Any] = {
    "str": str, "int": int, "float": float, "bool": bool, "list": list, "List": list,
    "dict": dict, "Dict": dict, "File": File, "bytes": bytes, "Any": Any,
}
_GENERICS = {"list": list, "List": list, "dict": dict, "Dict": dict}


class ParamsInvalid(ValueError):
    """Some parameters do not fit the manifest; ``errors`` maps each one to why."""

    def __init__(self, errors: dict[str, str], *, too_large: bool = False) -> None:
        self.errors = errors
        self.too_large = too_large  # answered 413, not 422
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


def _args(node: ast.expr) -> list[ast.expr]:
    return list(node.elts) if isinstance(node, ast.Tuple) else [node]


def _build(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    if isinstance(node, ast.Name):
        return _TYPES.get(node.id, Any)
    if isinstance(node, ast.Attribute):  # typing.Optional, levrt.File
        return _TYPES.get(node.attr, Any)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return typing.Union[_build(node.left), _build(node.right)]  # noqa: UP007
    if isinstance(node, ast.Subscript):
        base = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(
            node.value, "id", "")
        args = _args(node.slice)
        if base == "Literal" and all(isinstance(arg, ast.Constant) for arg in args):
            return typing.Literal[tuple(arg.value for arg in args)]  # type: ignore[misc]
        built = tuple(_build(arg) for arg in args)
        if base == "Optional":
            built = (*built, None)
        if base in ("Optional", "Union"):
            return typing.Union[built]  # noqa: UP007
        if base in _GENERICS and len(built) == (2 if _GENERICS[base] is dict else 1):
            return _GENERICS[base][built if len(built) > 1 else built[0]]
    return Any


def parse_type(text: str | None) -> Any:
    """The typing object of a manifest's type text; ``Any`` for what it cannot read."""
    try:
        return _build(ast.parse(text or "Any", mode="eval").body)
    except (SyntaxError, TypeError, ValueError, RecursionError):
        return Any


def _pattern_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def check_value(param: dict[str, Any], value: Any, store: Store | None) -> Any:
    """``value`` for the manifest parameter ``param``, converted to its type; a ValueError
    with the message to show beside the field."""
    regex = param.get("regex")
    if regex and value is not None:
        for item in value if isinstance(value, list) else [value]:
            try:
                matched = re.fullmatch(regex, _pattern_text(item))
            except re.error:
                break  # a manifest's bad regex is the package's problem, not the user's
            if not matched:
                raise ValueError(f"{_pattern_text(item)!r} does not match the pattern {regex}")
    return convert_value(parse_type(param.get("type")), value, store=store, origin=SERVER)


def check_params(entry: dict[str, Any], params: dict[str, Any],
                 store: Store | None) -> dict[str, Any]:
    """``params`` for the manifest entry (a mode or workflow), each converted to its type (as
    typed JSON: ``{"$file": digest}``, ``{"$bytes": base64}``); :class:`ParamsInvalid` names
    every parameter that is unknown, missing or does not fit."""
    declared = entry.get("params") or []
    named = {p["name"]: p for p in declared if p.get("kind") in NAMED_KINDS}
    takes_any = any(p.get("kind") == "var_keyword" for p in declared)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, value in params.items():
        if name in named:
            try:
                values[name] = check_value(named[name], value, store)
            except ValueError as exc:
                errors[name] = str(exc)
        elif takes_any:
            values[name] = value
        else:
            known = ", ".join(named) or "no parameters"
            errors[name] = f"unknown parameter; {entry.get('name')} takes {known}"
    for name, param in named.items():
        if param.get("required") and name not in params:
            errors[name] = "required"
    if errors:
        raise ParamsInvalid(errors)
    return jsonable(values)


def check_size(params: dict[str, Any], limit: int) -> None:
    """:class:`ParamsInvalid` (with ``too_large``) naming the parameters that make ``params``
    (as the job record keeps them, JSON) more than ``limit`` bytes in all: each one over the
    limit on its own, else the largest."""
    sizes = {name: len(json.dumps(encode(value), ensure_ascii=False).encode())
             for name, value in params.items()}
    total = sum(sizes.values())
    if total <= limit:
        return
    named = [name for name, size in sizes.items() if size > limit] or [max(sizes,
                                                                           key=sizes.__getitem__)]
    raise ParamsInvalid({
        name: f"too large: {sizes[name]} bytes ({total} for all the parameters); a task takes "
        f"at most {limit} bytes of parameters (setting LEV_SERVER_MAX_PARAMS_BYTES)"
        for name in named
    }, too_large=True)
