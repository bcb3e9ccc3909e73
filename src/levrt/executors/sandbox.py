"""Per-run mount namespaces with bubblewrap, for the process executor's ``files``.

The sandbox sees the host's filesystem read-only, a private ``/tmp``, its own
``/proc`` and ``/dev``, and each run file at its absolute path. A read-only
bind cannot take new mount points, so every directory on the way to a run
file is rebuilt as a tmpfs holding binds of the host's entries beside it.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

# Top-level directories bubblewrap provides itself.
_SPECIAL = {"proc": "--proc", "dev": "--dev", "tmp": "--tmpfs"}

_Tree = dict[str, "_Tree | str"]


def _tree(placed: dict[str, str]) -> _Tree:
    root: _Tree = {}
    for path, host_file in placed.items():
        parts = PurePosixPath(path).parts
        if not PurePosixPath(path).is_absolute() or len(parts) < 2 or ".." in parts:
            raise ValueError(f"files: {path!r} is not an absolute file path")
        if parts[1] in ("proc", "dev"):
            raise ValueError(f"files: {path!r} lies in /{parts[1]}, which the sandbox provides")
        node = root
        for part in parts[1:-1]:
            child = node.setdefault(part, {})
            if isinstance(child, str):
                raise ValueError(f"files: {path!r} lies below another run file")
            node = child
        if parts[-1] in node:
            raise ValueError(f"files: {path!r} is also a directory of another run file")
        node[parts[-1]] = host_file
    return root


def _splice(host_dir: str | None, dest: str, needed: _Tree, argv: list[str]) -> None:
    """Make ``dest`` a tmpfs holding binds of ``host_dir``'s entries, then add ``needed``."""
    if dest != "/":
        argv += ["--tmpfs", dest]
    if host_dir is not None:
        for entry in sorted(os.scandir(host_dir), key=lambda e: e.name):
            if entry.name in needed:
                continue
            target = os.path.join(dest, entry.name)
            if dest == "/" and entry.name in _SPECIAL:
                argv += [_SPECIAL[entry.name], target]
            elif entry.is_symlink():
                argv += ["--symlink", os.readlink(entry.path), target]
            else:
                argv += ["--ro-bind", entry.path, target]
    for name, sub in sorted(needed.items()):
        target = os.path.join(dest, name)
        host_path = os.path.join(host_dir, name) if host_dir is not None else None
        if isinstance(sub, str):
            argv += ["--bind", sub, target]
        elif dest == "/" and name == "tmp":
            argv += ["--tmpfs", target]
            _splice(None, target, sub, argv)
        elif host_path is not None and os.path.islink(host_path):
            raise ValueError(
                f"files: {target} is a symbolic link on this host; give the path it points to "
                f"({os.path.realpath(host_path)})"
            )
        elif host_path is not None and os.path.isdir(host_path):
            _splice(host_path, target, sub, argv)
        else:
            _splice(None, target, sub, argv)


def bwrap_argv(placed: dict[str, str]) -> list[str]:
    """The bubblewrap prefix that shows ``placed`` (sandbox path → host file) to the run."""
    argv = ["bwrap", "--die-with-parent", "--unshare-pid", "--tmpfs", "/"]
    _splice("/", "/", _tree(placed), argv)
    if "tmp" not in os.listdir("/"):
        argv += ["--tmpfs", "/tmp"]
    return argv + ["--chdir", _workdir(), "--"]


def _workdir() -> str:
    # The host's working directory is visible read-only, unless it lies where the sandbox
    # has its own fresh filesystems.
    cwd = os.getcwd()
    top = PurePosixPath(cwd).parts[1:2]
    return "/" if not top or top[0] in _SPECIAL else cwd
