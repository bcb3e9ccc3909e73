"""Parameter values for an exported function, converted from its type hints.

Values come from the command line (strings, or lists of strings for a repeated
option) or from JSON (``--params``, the web form), so every conversion accepts
both the text form and the already-typed JSON value.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import re
import reprlib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cr import File
from .annot import get_meta
from .annot._manifest import render_type

if TYPE_CHECKING:
    from .store import Store

__all__ = ["ParamError", "convert", "convert_value", "describe", "flags", "jsonable", "name_of",
           "option"]

TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})
NONE_WORDS = frozenset({"none", "null"})

_UNIONS = (typing.Union, types.UnionType)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

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


def _noun(tp: Any) -> str:
    if tp is str:
        return "a string"
    if tp is int:
        return "an int"
    if tp is float:
        return "a number"
    if tp is bool:
        return "a bool (true/false, yes/no, on/off, 1/0)"
    if tp is File:
        return "the path of a readable local file"
    origin = typing.get_origin(tp)
    if tp is list or origin is list:
        return "a list (JSON, or comma-separated)"
    if tp is dict or origin is dict:
        return "a JSON object"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(tp))
    if origin in _UNIONS:
        nouns = [_noun(arg) for arg in _members(tp)]
        return " or ".join(nouns + (["none"] if _is_optional(tp) else []))
    return render_type(tp)


def _mismatch(tp: Any, value: Any) -> _Mismatch:
    return _Mismatch(f"expected {_noun(tp)}, got {_short.repr(value)}")


class _Converter:
    def __init__(self, store: Store | None, local_files: bool = True) -> None:
        self.store = store
        self.local_files = local_files

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
        scalar = _SCALARS.get(tp)
        if scalar is None:
            raise _Mismatch(
                f"parameters of type {render_type(tp)} cannot be given as text or JSON; "
                "use str, int, float, bool, list, dict, Optional or levrt.File"
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
        raise _mismatch(tp, value)

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
        if not isinstance(value, str) or not value:
            raise _mismatch(File, value)
        if self.store is None:
            raise _Mismatch("a File parameter needs a store to keep the file in: pass store=")
        # A digest names a file uploaded earlier (the web form, a re-run of stored params).
        if _DIGEST.match(value) and self.store.has_file(value):
            return File(value)
        if not self.local_files:
            raise _Mismatch(f"expected the digest (sha256:...) of an uploaded file, got "
                            f"{_short.repr(value)}")
        path = Path(value).expanduser()
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise _Mismatch(f"cannot read {value!r}: {exc.strerror or exc}") from None
        digest = self.store.put_file(content, name=path.name)
        return File(digest, path.name, len(content))


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
    func: Callable[..., Any], raw: dict[str, Any], *, store: Store | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``func`` from ``raw`` values, converted by its type hints.

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
    converter = _Converter(store)
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
                  local_files: bool = True) -> Any:
    """``value`` converted to the type ``tp`` as :func:`convert` converts a parameter's; a
    ValueError says why not. Without ``local_files`` a ``File`` must be the digest of a file
    in ``store``: a path would read a file of the machine converting it (a server's)."""
    try:
        return _Converter(store, local_files).to(tp, value)
    except _Mismatch as exc:
        raise ValueError(str(exc)) from None


def flags(func: Callable[..., Any]) -> set[str]:
    """Names of the bool parameters: a bare ``--flag`` means true, ``--no-flag`` false."""
    return {name for name, tp in _hints(func).items() if bool in _members(tp)}


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Converted values as the job record keeps them: a ``File`` by its digest.

    The digest converts back to the same ``File``, so stored params can run again.
    """
    return {key: v.digest if isinstance(v, File) else v for key, v in values.items()}


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
