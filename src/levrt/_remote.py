"""``@remote`` entries and the transport that ships them into the sandbox.

An entry travels as source text, never bytecode, so the sandbox's ``python3``
may be another minor version than the host's. With it travel the values of its
closure, the module-level constants and plain functions it references
(recursively) and the modules it uses; anything else is refused when the ``Cr``
is built, naming the variable.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import dis
import functools
import inspect
import os
import sys
import sysconfig
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .shim.entry import WIRE_VERSION, encode

_GLOBAL_LOADS = {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"}


class TransportError(ValueError):
    """A value an entry needs cannot be sent into the sandbox."""


@dataclass(frozen=True)
class Call:
    """A call of a ``@remote`` function, to be made inside the sandbox."""

    func: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.func.__name__


def remote(func: Callable[..., Any]) -> Callable[..., Call]:
    """Mark ``func`` as an entry: calling it returns a :class:`Call` for ``Cr(entry=…)``."""
    if not isinstance(func, types.FunctionType) or func.__name__ == "<lambda>":
        raise TypeError(f"@remote takes a def function, not {func!r}")

    @functools.wraps(func)
    def make_call(*args: Any, **kwargs: Any) -> Call:
        return Call(func, args, kwargs)

    make_call.__lev_remote__ = func  # type: ignore[attr-defined]
    return make_call


def _levrt_name(value: Any) -> str | None:
    """The public levrt name of ``value`` when the sandbox must use its own stand-in."""
    import levrt

    for name in ("ctx", "lev", "cli"):
        if value is getattr(levrt, name, None):
            return name
    return None


def _library_ref(value: Any) -> list[str] | None:
    """``[module, qualname]`` for a function or class the sandbox can import itself.

    Objects of the standard library and installed third-party packages are
    imported in the sandbox by name; the author's own code (``lev.*`` packages,
    scripts) travels as source instead.
    """
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not (isinstance(module_name, str) and isinstance(qualname, str)) or "<" in qualname:
        return None
    if module_name == "__main__" or module_name.split(".")[0] in ("lev", "levrt"):
        return None
    module = sys.modules.get(module_name)
    if module is None or not _is_library(module):
        return None
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return [module_name, qualname] if target is value else None


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({os.path.realpath(paths[k]) + os.sep
                  for k in ("stdlib", "platstdlib", "purelib", "platlib")})


def _is_library(module: types.ModuleType) -> bool:
    file = getattr(module, "__file__", None)
    if file is None:
        return True  # built into the interpreter
    return os.path.realpath(file).startswith(_library_roots())


def _global_names(code: types.CodeType) -> list[str]:
    names: list[str] = []
    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_LOADS and ins.argval not in names:
            names.append(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(n for n in _global_names(const) if n not in names)
    return names


def _function_source(func: types.FunctionType) -> tuple[str, int, int]:
    """Source of ``func`` from its ``def`` line (decorators dropped), its line and indent."""
    try:
        lines, start = inspect.getsourcelines(func)
    except (OSError, TypeError) as exc:
        raise TransportError(
            f"cannot read the source of {func.__qualname__}: {exc}; entries and the helpers "
            "they call must be defined in a .py file"
        ) from None
    text = "".join(lines)
    # A nested def is indented; inside an `if` block it parses in place (one line down).
    wrapped = text[:1].isspace()
    tree = ast.parse("if 1:\n" + text if wrapped else text)
    node = tree.body[0].body[0] if wrapped else tree.body[0]  # type: ignore[attr-defined]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise TransportError(f"{func.__qualname__} is not a def statement")
    first, last = node.lineno - wrapped, node.end_lineno - wrapped  # type: ignore[operator]
    body = lines[first - 1 : last]
    indent = len(body[0]) - len(body[0].lstrip())
    return "".join(body), start + first - 1, indent


def _reindent(source: str, indent: int) -> str:
    return "".join(line[indent:] if line.strip() else line for line in source.splitlines(True))


class _Packer:
    """Collects everything one entry needs, module by module."""

    def __init__(self, entry_name: str) -> None:
        self.entry_name = entry_name
        self.modules: dict[str, dict[str, Any]] = {}
        self._seen: set[int] = set()

    def _module(self, func: types.FunctionType) -> dict[str, Any]:
        # `from __future__ import annotations` changes how the sandbox must compile the source.
        future = func.__globals__.get("annotations") is __future__.annotations
        return self.modules.setdefault(
            func.__module__, {"functions": [], "values": {}, "future_annotations": future}
        )

    def value(self, value: Any, where: str) -> Any:
        return encode(value, self._hook, where)

    def _hook(self, value: Any, where: str) -> Any:
        levrt_name = _levrt_name(value)
        if levrt_name:
            return {"$levrt": levrt_name}
        if isinstance(value, types.ModuleType):
            return {"$module": value.__name__}
        ref = _library_ref(value)
        if ref:
            return {"$attr": ref}
        if isinstance(value, types.FunctionType):
            self.function(value, where)
            return {"$fn": [value.__module__, value.__name__]}
        raise TransportError(
            f"entry {self.entry_name!r}: {where} is a {type(value).__name__}, which cannot be "
            "sent into the sandbox; pass str, int, float, bool, None, bytes, list, tuple or "
            "dict values, or module-level functions"
        )

    def function(self, func: types.FunctionType, where: str) -> None:
        if id(func) in self._seen:
            return
        self._seen.add(id(func))
        if func.__closure__:
            raise TransportError(
                f"entry {self.entry_name!r}: {where} ({func.__qualname__}) is a nested function "
                "with a closure; move it to module level"
            )
        if hasattr(func, "__wrapped__") or func.__name__ == "<lambda>":
            raise TransportError(
                f"entry {self.entry_name!r}: {where} must be a plain def function, "
                f"not {func!r}"
            )
        source, line, indent = _function_source(func)
        self._module(func)["functions"].append(
            {"source": _reindent(source, indent), "line": line, "file": func.__code__.co_filename}
        )
        self.globals_of(func)

    def globals_of(self, func: types.FunctionType) -> None:
        module = self._module(func)
        for name in _global_names(func.__code__):
            if name not in func.__globals__:
                continue  # a builtin, or a NameError the author will see as usual
            value = func.__globals__[name]
            if value is getattr(builtins, name, object()):
                continue
            module["values"][name] = self.value(value, f"module-level name {name!r}")


def pack(call: Call) -> dict[str, Any]:
    """The payload the shim runs: the entry, what it needs, and the call's arguments."""
    func = call.func
    packer = _Packer(func.__name__)
    source, line, indent = _function_source(func)
    closure: dict[str, Any] = {}
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=True):
        try:
            value = cell.cell_contents
        except ValueError:
            raise TransportError(
                f"entry {func.__name__!r}: variable {name!r} has no value yet when the Cr is built"
            ) from None
        closure[name] = packer.value(value, f"variable {name!r}")
    packer.globals_of(func)
    maker = indent > 0
    if maker:
        params = ", ".join(closure)
        source = f"def __lev_make__({params}):\n{source}{' ' * indent}return {func.__name__}\n"
        line -= 1
    packer._module(func)
    return {
        "v": WIRE_VERSION,
        "modules": packer.modules,
        "entry": {
            "module": func.__module__,
            "name": func.__name__,
            "source": source,
            "line": max(line, 1),
            "file": func.__code__.co_filename,
            "maker": maker,
            "closure": closure,
        },
        "args": packer.value(list(call.args), "argument"),
        "kwargs": packer.value(dict(call.kwargs), "keyword argument"),
    }
