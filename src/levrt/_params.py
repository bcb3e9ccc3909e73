"""Parameter values for an exported function, converted from its type hints.

Values come from the command line (strings, or lists of strings for a repeated
option) or from JSON (``--params``, the web form, the API), so every conversion accepts
both the text form and the already-typed JSON value.

One converter serves every origin, each with its own rules (:class:`Origin`): the command
line (:data:`CLI`) may name files of this machine — a path for a ``File``, ``@PATH`` for
``bytes``; the server (:data:`SERVER`) takes a ``File`` only as the digest of a stored file,
because a path would read the server's own files; and a server task's job
(:data:`CONVERTED`) gets values the server has converted already, in their typed JSON form
(:func:`jsonable`), so a string there is never taken for a file at all.

The converter is our own rather than pydantic's ``TypeAdapter``: its lax mode takes ``true``
for an int and ``t`` for a bool, knows none of the command line's text forms (``a,b,c``
lists, ``none``, ``@PATH``), tries union members by exact type first where a command line
means the first that fits, and its messages cannot name the option and the list item.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import inspect
import json
import math
import re
import reprlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cr import File
from .annot import get_meta
from .annot._manifest import render_type

if TYPE_CHECKING:
    from .store import Store

__all__ = ["CLI", "CONVERTED", "SERVER", "Origin", "ParamError", "convert", "convert_value",
           "describe", "flags", "jsonable", "name_of", "option"]

TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})
NONE_WORDS = frozenset({"none", "null"})

_UNIONS = (typing.Union, types.UnionType)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")



@dataclass(frozen=True)
class Origin:
    """Where values come from, and so what a string may name."""

    name: str
    #: A ``File`` may be a path, ``bytes`` an ``@PATH``, of the machine converting them.
    paths: bool
    #: A ``File`` may be a stored file's digest given as a plain string.
    digests: bool


#: ``lev run``'s options and ``--params``: the user's own machine.
CLI = Origin("the command line", paths=True, digests=True)
#: ``POST /api/tasks`` and the web form: never a path of the server.
SERVER = Origin("the server", paths=False, digests=True)
#: A server task's job: values the server converted, a file only in its tagged form.
CONVERTED = Origin("a converted task", paths=False, digests=False)

# Error messages quote the bad value; a pasted file must not flood them.
_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


class ParamError(ValueError):
    """A parameter value cannot be converted; ``str()`` names the parameter as an option."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        self.message = message
        super().__init__(f"{option(param)}: {message}")


class _Mismatch(Exception):
    """A value does not fit a type; `convert` adds the parameter's name."""


def option(name: str) -> str:
    """The command-line spelling of parameter ``name``: ``ping_all`` → ``--ping-all``."""
    return "--" + name.replace("_", "-")


def name_of(func: Callable[..., Any]) -> str:
    """The function's name for messages and job names (partials and callables have none)."""
    return getattr(func, "__qualname__", None) or repr(func)


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception as exc:
        raise TypeError(
            f"cannot resolve the type hints of {name_of(func)}: {type(exc).__name__}: {exc}; "
            "every name used in its annotations must be importable at run time"
        ) from exc


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in _UNIONS and type(None) in typing.get_args(tp)


def _members(tp: Any) -> tuple[Any, ...]:
    """The non-None alternatives of a union, or the type itself."""
    if typing.get_origin(tp) in _UNIONS:
        return tuple(arg for arg in typing.get_args(tp) if arg is not type(None))
    return (tp,)


def _noun(tp: Any, origin: Origin = CLI) -> str:
    if tp is str:
        return "a string"
    if tp is int:
        return "an int"
    if tp is float:
        return "a number"
    if tp is bool:
        return "a bool (true/false, yes/no, on/off, 1/0)"
    if tp is File:
        if origin.paths:
            return "the path of a readable local file"
        if origin.digests:
            return "the digest (sha256:...) of an uploaded file"
        return 'a stored file ({"$file": "sha256:..."})'
    if tp is bytes:
        return "text or @PATH of a file" if origin.paths else 'text or {"$bytes": base64}'
    generic = typing.get_origin(tp)
    if tp is list or generic is list:
        return "a list (JSON, or comma-separated)"
    if tp is dict or generic is dict:
        return "a JSON object"
    if generic is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(tp))
    if generic in _UNIONS:
        nouns = [_noun(arg, origin) for arg in _members(tp)]
        return " or ".join(nouns + (["none"] if _is_optional(tp) else []))
    return render_type(tp)


def _mismatch(tp: Any, value: Any, origin: Origin = CLI) -> _Mismatch:
    return _Mismatch(f"expected {_noun(tp, origin)}, got {_short.repr(value)}")


def _tagged(value: Any, tag: str) -> Any:
    """The payload of the typed JSON form ``{tag: payload}`` (see :func:`jsonable`), or None."""
    if isinstance(value, dict) and len(value) == 1 and tag in value:
        return value[tag]
    return None


class _Converter:
    def __init__(self, store: Store | None, origin: Origin) -> None:
        self.store = store
        self.origin = origin

    def to(self, tp: Any, value: Any) -> Any:
        if tp is Any:
            return value
        origin = typing.get_origin(tp)
        if origin in _UNIONS:
            return self._union(tp, value)
        if origin is typing.Literal:
            return self._literal(tp, value)
        if tp is list or origin is list:
            return self._list(tp, value)
        if tp is dict or origin is dict:
            return self._dict(tp, value)
        if tp is File:
            return self._file(value)
        if tp is bytes:
            return self._bytes(value)
        scalar = _SCALARS.get(tp)
        if scalar is None:
            raise _Mismatch(
                f"parameters of type {render_type(tp)} cannot be given as text or JSON; "
                "use str, int, float, bool, bytes, list, dict, Optional or levrt.File"
            )
        return scalar(tp, value)

    def _union(self, tp: Any, value: Any) -> Any:
        if _is_optional(tp) and (
            value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)
        ):
            return None
        for member in _members(tp):
            try:
                return self.to(member, value)
            except _Mismatch:
                continue
        raise _mismatch(tp, value, self.origin)

    def _literal(self, tp: Any, value: Any) -> Any:
        for choice in typing.get_args(tp):
            if value == choice or (isinstance(value, str) and value == str(choice)):
                return choice
        raise _mismatch(tp, value)

    def _list(self, tp: Any, value: Any) -> list[Any]:
        (item,) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = _json(text, "a JSON list")
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise _mismatch(tp, value)
        out = []
        for index, element in enumerate(value):
            try:
                out.append(self.to(item, element))
            except _Mismatch as exc:
                raise _Mismatch(f"{exc} (item {index})") from None
        return out

    def _dict(self, tp: Any, value: Any) -> dict[Any, Any]:
        key, item = typing.get_args(tp) or (Any, Any)
        if isinstance(value, str):
            value = _json(value, "a JSON object")
        if not isinstance(value, dict):
            raise _mismatch(tp, value)
        out = {}
        for name, element in value.items():
            try:
                out[self.to(key, name)] = self.to(item, element)
            except _Mismatch as exc:
                raise _Mismatch(f"{exc} (key {name!r})") from None
        return out

    def _file(self, value: Any) -> File:
        if isinstance(value, File):
            return value
        tagged = _tagged(value, "$file")
        if isinstance(tagged, str):
            digest = tagged
        elif isinstance(value, str) and value and (self.origin.paths or self.origin.digests):
            digest = value
        else:
            raise _mismatch(File, value, self.origin)
        if self.store is None:
            raise _Mismatch("a File parameter needs a store to keep the file in: pass store=")
        # A digest names a file uploaded earlier (the web form, a re-run of stored params).
        if _DIGEST.match(digest) and self.store.has_file(digest):
            return File(digest)
        if tagged is not None or not self.origin.paths:
            unknown = " (no such file is stored)" if _DIGEST.match(digest) else ""
            raise _Mismatch(f"expected {_noun(File, self.origin)}, got "
                            f"{_short.repr(value)}{unknown}")
        path = Path(value).expanduser()
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise _Mismatch(f"cannot read {value!r}: {exc.strerror or exc}") from None
        digest = self.store.put_file(content, name=path.name)
        return File(digest, path.name, len(content))

    def _bytes(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        tagged = _tagged(value, "$bytes")
        if isinstance(tagged, str):
            try:
                return base64.b64decode(tagged, validate=True)
            except (binascii.Error, ValueError):
                raise _Mismatch(f"$bytes: not base64: {_short.repr(tagged)}") from None
        if not isinstance(value, str):
            raise _mismatch(bytes, value, self.origin)
        if self.origin.paths and value.startswith("@"):
            if value.startswith("@@"):  # text that itself begins with @
                return value[1:].encode()
            path = Path(value[1:]).expanduser()
            try:
                return path.read_bytes()
            except OSError as exc:
                raise _Mismatch(f"cannot read {value[1:]!r}: {exc.strerror or exc}") from None
        return value.encode()


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _Mismatch(f"expected {what}, got {_short.repr(text)} ({exc})") from None


def _to_str(tp: Any, value: Any) -> str:
    if not isinstance(value, str):
        raise _mismatch(tp, value)
    return value


def _to_int(tp: Any, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _mismatch(tp, value)


def _to_float(tp: Any, value: Any) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    # nan and inf are no measure of anything a tool takes (and JSON cannot carry them).
    if number is None or not math.isfinite(number):
        raise _mismatch(tp, value)
    return number


def _to_bool(tp: Any, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise _mismatch(tp, value)


_SCALARS: dict[Any, Callable[[Any, Any], Any]] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
}


def convert(
    func: Callable[..., Any], raw: dict[str, Any], *, store: Store | None = None,
    origin: Origin = CLI,
) -> dict[str, Any]:
    """Keyword arguments for ``func`` from ``raw`` values, converted by its type hints and
    the rules of ``origin``.

    Parameters missing from ``raw`` keep their defaults. ``store`` keeps the
    content of ``levrt.File`` parameters (given as local paths). Raises
    :class:`ParamError` naming the parameter on the first bad value, a missing
    required parameter or an unknown name.
    """
    hints = _hints(func)
    params = inspect.signature(func).parameters
    named = {
        name: p for name, p in params.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [key for key in raw if key not in named]
    if unknown and not takes_any:
        known = ", ".join(option(name) for name in named) or "no parameters"
        also = f" (also {', '.join(option(k) for k in unknown[1:])})" if unknown[1:] else ""
        raise ParamError(
            unknown[0], f"unknown parameter{also}; {name_of(func)} takes {known}"
        )
    converter = _Converter(store, origin)
    values: dict[str, Any] = {}
    for name, param in named.items():
        if name not in raw:
            if param.default is param.empty:
                raise ParamError(name, "missing; this parameter has no default")
            continue
        try:
            values[name] = converter.to(hints.get(name, Any), raw[name])
        except _Mismatch as exc:
            raise ParamError(name, str(exc)) from None
    values.update({key: raw[key] for key in unknown})
    return values


def convert_value(tp: Any, value: Any, *, store: Store | None = None,
                  origin: Origin = CLI) -> Any:
    """``value`` converted to the type ``tp`` as :func:`convert` converts a parameter's; a
    ValueError says why not."""
    try:
        return _Converter(store, origin).to(tp, value)
    except _Mismatch as exc:
        raise ValueError(str(exc)) from None


def flags(func: Callable[..., Any]) -> set[str]:
    """Names of the bool parameters: a bare ``--flag`` means true, ``--no-flag`` false."""
    return {name for name, tp in _hints(func).items() if bool in _members(tp)}


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Converted values as the job record keeps them and a server task's job gets them: a
    ``File`` as ``{"$file": digest}`` (at any depth), the rest as it is (the store keeps
    ``bytes``; JSON shows them as ``{"$bytes": base64}``).

    Every origin converts this form back to the same values, so stored params can run again.
    """
    return {key: _typed(value) for key, value in values.items()}


def _typed(value: Any) -> Any:
    if isinstance(value, File):
        return {"$file": value.digest}
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_typed(item) for item in value]
    return value


def describe(func: Callable[..., Any]) -> list[dict[str, Any]]:
    """Each parameter's name, type, default, whether required and its ``annot.Param`` desc."""
    hints = _hints(func)
    meta = get_meta(func)
    descs = {param.name: param.desc for param in meta.params} if meta else {}
    out = []
    for name, param in inspect.signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        required = param.default is param.empty
        out.append({
            "name": name,
            "type": render_type(hints[name]) if name in hints else None,
            "default": None if required else param.default,
            "required": required,
            "desc": descs.get(name),
        })
    return out
