"""The records `annot.meta` produces: `Param`, `Meta`, and JSON-like data checks."""

from __future__ import annotations

import json
import math
import re
import reprlib
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = ["ARGV", "JSON", "Meta", "Param", "describe", "get_meta", "to_json"]

JSON: TypeAlias = "None | bool | int | float | str | list[JSON] | dict[str, JSON]"

# Error messages quote the offending value; keep a huge list or string from flooding them.
_short_repr = reprlib.Repr()
_short_repr.maxstring = 60
_short_repr.maxother = 60


def describe(value: object) -> str:
    """Name a value's type and show a bounded repr of it, for error messages."""
    return f"{type(value).__name__} {_short_repr.repr(value)}"


def to_json(value: object, where: str) -> JSON:
    """Return `value` as JSON-like data (tuples become lists) or raise TypeError naming `where`.

    The manifest is uploaded and rendered by a server that never imports package code, so
    everything in it has to survive `json.dumps` unchanged.
    """
    return _to_json(value, where, set())


def _to_json(value: object, where: str, seen: set[int]) -> JSON:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where}: {value!r} cannot be stored; JSON has no NaN or infinity")
        return value
    if isinstance(value, (list, tuple, dict)):
        if id(value) in seen:
            raise TypeError(f"{where}: the value contains itself and cannot be stored as JSON")
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                out: dict[str, JSON] = {}
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise TypeError(
                            f"{where}: key {describe(key)} is not a str; JSON object keys must "
                            "be strings"
                        )
                    out[key] = _to_json(item, f"{where}[{key!r}]", seen)
                return out
            return [_to_json(item, f"{where}[{i}]", seen) for i, item in enumerate(value)]
        finally:
            seen.discard(id(value))
    raise TypeError(
        f"{where}: {describe(value)} is not JSON-like data "
        "(use str, int, float, bool, None, list or dict with str keys)"
    )


@dataclass(frozen=True, init=False)
class Param:
    """Form metadata for one parameter of a tool mode or workflow.

    `holder` is the placeholder text the platform's form shows; it is stored as
    `.placeholder`. `regex` is the pattern the form checks input against.
    """

    name: str
    desc: str
    regex: str | None = None
    placeholder: str | None = None

    def __init__(
        self,
        name: str,
        desc: str,
        *,
        regex: str | None = None,
        holder: JSON = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Param name must be a non-empty str, got {describe(name)}")
        if not isinstance(desc, str):
            raise TypeError(f"Param {name!r}: desc must be a str, got {describe(desc)}")
        if regex is not None:
            if not isinstance(regex, str):
                raise TypeError(f"Param {name!r}: regex must be a str, got {describe(regex)}")
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(
                    f"Param {name!r}: regex {regex!r} does not compile: {exc}"
                ) from exc
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "desc", desc)
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "placeholder", _placeholder_text(name, holder))

    def to_dict(self) -> dict[str, str | None]:
        """The Param as the JSON object the manifest stores."""
        return {
            "name": self.name,
            "desc": self.desc,
            "regex": self.regex,
            "placeholder": self.placeholder,
        }


def _placeholder_text(name: str, holder: object) -> str | None:
    if holder is None or isinstance(holder, str):
        return holder
    # Packages for the original platform pass list placeholders (holder=['127.0.0.1']);
    # the form shows them as the JSON text a user would type, like ARGV's '["-h"]'.
    return json.dumps(to_json(holder, f"Param {name!r}: holder"), ensure_ascii=False)


ARGV = Param("argv", "Raw command-line arguments passed to the tool", holder='["-h"]')


@dataclass(frozen=True)
class Meta:
    """What `@annot.meta(...)` attaches to a function as `__lev_meta__`.

    `cats` is normalized: ``{"attck": ["TA0043", ...], "blackarch": ["scanner", ...]}``
    with a key only when it has values.
    """

    desc: str | None = None
    params: list[Param] = field(default_factory=list)
    cats: dict[str, list[str]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    ext: dict[str, Any] = field(default_factory=dict)
    #: the columns that identify a row of the tool's results across jobs (levrt.rows)
    keys: list[str] = field(default_factory=list)


def get_meta(obj: object) -> Meta | None:
    """The `Meta` attached by `@annot.meta(...)`, or None when `obj` carries none."""
    found = getattr(obj, "__lev_meta__", None)
    return found if isinstance(found, Meta) else None
