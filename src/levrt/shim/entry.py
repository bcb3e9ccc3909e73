"""The entry shim: runs one shipped ``@remote`` entry inside the sandbox.

Standard library only and compatible with Python 3.7+, because it runs on
whatever ``python3`` the tool image has. It is also imported on the host for
its value codec, so both sides agree on one wire format.

Protocol: ``python3 -u entry.py [PAYLOAD_FILE]``; the payload comes from the
``LEV_PAYLOAD`` environment variable, else that file, else stdin. Payload and
messages are tagged data (:func:`encode`) written as Python literals, so reading
them needs no import in the sandbox. The process's
original stdout becomes the result channel: one literal per line (``{"op":
"set", "data": ..., "n": 0}``, ``{"op": "error", ...}``, last ``{"op": "end"}``), each
numbered. Everything the entry prints,
and every subprocess it starts, writes to stderr, which is the run's log.
"""

from __future__ import annotations
import __future__

import binascii
import builtins
import importlib
import math
import os
import sys
import types

# Every run starts this file in a fresh interpreter: import only what each run needs (asyncio,
# typing, traceback and linecache each add milliseconds), the rest where it is used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

WIRE_VERSION = 1
#: the shim's last line on stderr: the host knows the log is complete when it sees it
LOG_END = "\x1elev:end\x1e"


def encode(value: Any, hook: Optional[Callable[[Any, str], Any]] = None,
           path: str = "value") -> Any:
    """Turn data into JSON-safe tagged form; ``hook(value, path)`` handles other types."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": binascii.b2a_base64(bytes(value), newline=False).decode("ascii")}
    if isinstance(value, list):
        return [encode(v, hook, "%s[%d]" % (path, i)) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, hook, "%s[%d]" % (path, i)) for i, v in enumerate(value)]}
    if isinstance(value, dict):
        plain = all(isinstance(k, str) and not k.startswith("$") for k in value)
        if plain:
            return {k: encode(v, hook, "%s[%r]" % (path, k)) for k, v in value.items()}
        return {"$dict": [[encode(k, hook, path + " key"), encode(v, hook, "%s[%r]" % (path, k))]
                          for k, v in value.items()]}
    if hook is not None:
        return hook(value, path)
    raise TypeError("%s: %s values cannot be stored (use str, int, float, bool, None, "
                    "bytes, list, tuple or dict)" % (path, type(value).__name__))


def decode(value: Any, hook: Optional[Callable[[str, Any], Any]] = None) -> Any:
    """Inverse of :func:`encode`; ``hook(tag, body)`` resolves tags it does not know."""
    if isinstance(value, list):
        return [decode(v, hook) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, body), = value.items()
        if tag == "$bytes":
            return binascii.a2b_base64(body)
        if tag == "$float":
            return float(body)
        if tag == "$tuple":
            return tuple(decode(v, hook) for v in body)
        if tag == "$dict":
            return {_hashable(decode(k, hook)): decode(v, hook) for k, v in body}
        if tag.startswith("$") and hook is not None:
            return hook(tag, body)
    return {k: decode(v, hook) for k, v in value.items()}


def dumps(value: Any) -> str:
    """Wire text of encoded data: a Python literal, which costs the sandbox no import to read."""
    return repr(value)


def loads(text: str) -> Any:
    """Read wire text from the trusted side (the host's payload). The host reads what comes
    back from the sandbox with ``ast.literal_eval`` instead: that side is not trusted."""
    return eval(text, {"__builtins__": {}})


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


class Channel:
    """One literal per line on the process's original stdout, numbered from 0: the host
    checks that it read every number up to the final ``end``."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w", encoding="utf-8", closefd=True)
        self._sent = 0

    def send(self, op: str, **fields: Any) -> None:
        fields["op"] = op
        fields["n"] = self._sent
        self._sent += 1
        self._file.write(dumps(fields) + "\n")
        self._file.flush()


class Context:
    """``ctx`` / ``lev`` as seen by an entry: writes go to this run's document."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def set(self, data: Optional[Dict[str, Any]] = None, **kw: Any) -> None:
        merged = dict(kw)
        if data is not None:
            if not isinstance(data, dict):
                raise TypeError("ctx.set() takes a dict or keywords, not %s" % type(data).__name__)
            merged.update(data)
        if merged:
            self._channel.send("set", data=encode(merged, path="ctx.set"))

    def update(self, data: Dict[str, Any]) -> None:
        self.set(data)


def cli(*args: Any, **kw: Any) -> List[Any]:
    """Build an argv list: the same rules as ``levrt.cli`` on the host."""
    argv = list(args)
    for key, value in kw.items():
        if value is None or value is False:
            continue
        flag = ("-" + key) if len(key) == 1 else ("--" + key.replace("_", "-"))
        argv.append(flag)
        if value is not True:
            argv.append(value)
    return argv


def _stub_levrt(context: Context) -> types.ModuleType:
    """A minimal ``levrt`` module so ``from levrt import ctx`` works inside entries."""
    module = types.ModuleType("levrt")
    module.ctx = module.lev = context
    module.cli = cli
    sys.modules["levrt"] = module
    return module


_SOURCES = {}  # type: Dict[str, List[str]]


def _register_source(filename: str, first_line: int, text: str) -> None:
    lines = _SOURCES.setdefault(filename, [])
    for i, line in enumerate(text.splitlines(True), first_line - 1):
        lines.extend(["\n"] * (i + 1 - len(lines)))
        lines[i] = line


def _print_traceback() -> None:
    # Tracebacks then show the author's file and line, although the file is not here.
    import linecache
    import traceback

    for filename, lines in _SOURCES.items():
        linecache.cache[filename] = (len("".join(lines)), None, lines, filename)
    traceback.print_exc()


_DEBUG = {"path": None, "file": None}  # type: Dict[str, Any]


def _breakpoint(frame: Any) -> None:
    """``breakpoint()`` or ``pdb.set_trace()`` in an entry. Under ``lev run --debug`` pdb
    talks to the user's terminal through the relay's socket; elsewhere nobody could answer
    it, so the run goes on and its log says where it would have stopped."""
    where = "%s:%d" % (frame.f_code.co_filename, frame.f_lineno)
    path = _DEBUG["path"]
    if not path:
        sys.stderr.write("lev: breakpoint at %s skipped: it stops only under `lev run --debug` "
                         "in a terminal\n" % where)
        return
    if _DEBUG["file"] is None:
        import socket

        conn = socket.socket(socket.AF_UNIX)
        conn.connect(path)  # the relay serves one run at a time: this run waits its turn here
        _DEBUG["file"] = conn.makefile("rw", encoding="utf-8", errors="replace")
    terminal = _DEBUG["file"]
    terminal.write("\nlev: breakpoint at %s\n" % where)
    import pdb

    pdb.Pdb(stdin=terminal, stdout=terminal).set_trace(frame)


def _set_trace(*args: Any, **kwargs: Any) -> None:
    _breakpoint(sys._getframe(1))


class _PdbFinder(object):
    """Gives ``pdb.set_trace`` to :func:`_breakpoint` when an entry imports pdb (importing pdb
    up front would cost every run a tenth of a second)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "pdb":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            load(module)
            module.set_trace = _set_trace

        spec.loader.exec_module = exec_module
        return spec


def install_breakpoints(path: Optional[str]) -> None:
    """Route this process's breakpoints to the debug relay listening at ``path`` (the
    ``LEV_DEBUG`` socket), or, with no path, skip them with a log line."""
    _DEBUG["path"] = path
    sys.breakpointhook = lambda *args, **kwargs: _breakpoint(sys._getframe(1))
    if "pdb" in sys.modules:
        sys.modules["pdb"].set_trace = _set_trace
    else:
        sys.meta_path.insert(0, _PdbFinder())


def _compile(fn: str, text: str, first_line: int, module: Dict[str, Any]) -> types.CodeType:
    _register_source(fn, first_line, text)
    flags = __future__.annotations.compiler_flag if module.get("future_annotations") else 0
    return compile("\n" * (first_line - 1) + text, fn, "exec", flags, dont_inherit=True)


def load(payload: Dict[str, Any], levrt_module: types.ModuleType) -> Tuple[Any, Any, Any]:
    """Rebuild the module namespaces and return the entry callable with its arguments."""
    if payload.get("v") != WIRE_VERSION:
        raise RuntimeError("payload version %r, shim speaks %d" % (payload.get("v"), WIRE_VERSION))
    namespaces = {}
    for name in payload["modules"]:
        namespaces[name] = {"__name__": name, "__builtins__": builtins}

    def resolve(tag: str, body: Any) -> Any:
        if tag == "$fn":
            return namespaces[body[0]][body[1]]
        if tag == "$module":
            return importlib.import_module(body)
        if tag == "$levrt":
            return getattr(levrt_module, body)
        if tag == "$attr":
            target = importlib.import_module(body[0])
            for part in body[1].split("."):
                target = getattr(target, part)
            return target
        raise ValueError("unknown tag %s" % tag)

    for name, module in payload["modules"].items():
        for fn in module["functions"]:
            exec(_compile(fn["file"], fn["source"], fn["line"], module), namespaces[name])
    for name, module in payload["modules"].items():
        for key, value in module["values"].items():
            namespaces[name][key] = decode(value, resolve)

    entry = payload["entry"]
    namespace = namespaces[entry["module"]]
    exec(_compile(entry["file"], entry["source"], entry["line"],
                  payload["modules"][entry["module"]]), namespace)
    closure = {k: decode(v, resolve) for k, v in entry["closure"].items()}
    func = namespace.pop("__lev_make__")(**closure) if entry["maker"] else namespace[entry["name"]]
    return func, decode(payload["args"], resolve), decode(payload["kwargs"], resolve)


def main(argv: List[str]) -> int:
    channel_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    channel = Channel(channel_fd)
    try:
        if "LEV_PAYLOAD" in os.environ:
            payload = loads(os.environ.pop("LEV_PAYLOAD"))
        elif len(argv) > 1:
            with open(argv[1], encoding="utf-8") as f:
                payload = loads(f.read())
        else:
            payload = loads(sys.stdin.read())
        context = Context(channel)
        install_breakpoints(os.environ.get("LEV_DEBUG"))
        func, args, kwargs = load(payload, _stub_levrt(context))
        result = func(*args, **kwargs)
        if isinstance(result, types.CoroutineType):
            import asyncio

            asyncio.run(result)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code:
            channel.send("error", type="SystemExit", message=str(exc.code))
        return code
    except BaseException as exc:  # the run's result must say why, whatever it was
        _print_traceback()
        channel.send("error", type=type(exc).__name__, message=str(exc))
        return 1
    finally:
        sys.stdout.flush()
        channel.send("end")
        os.write(2, (LOG_END + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
