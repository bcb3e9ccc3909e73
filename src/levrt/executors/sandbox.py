"""The process executor's sandbox: one bubblewrap namespace per run.

What a run sees: the host's filesystem read-only (each top-level directory
bound read-only onto a writable tmpfs root, so new names such as
``/marker.txt`` can be made and vanish with the run), its own ``/proc``,
``/dev`` (with ``/dev/shm``), an empty ``/tmp``, an empty working directory
:data:`WORKDIR`, each run file at its absolute path, and the host paths the
run needs to start (the interpreter, its prefix and ``sys.path``, the shim)
at their own paths even where the sandbox hides the host's (a checkout and
its ``.venv`` under ``/tmp``). It has its own PID namespace whose init is
bubblewrap: when the run's main process exits, or bubblewrap or the driver
dies, everything the run started is killed.

Debian 12's bubblewrap (0.8.0) has no overlays, and a read-only bind cannot
take new mount points, so every directory on the way to a run file or a kept
path is rebuilt as a tmpfs holding binds of the host's entries beside it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import PurePosixPath

#: the run's working directory: fresh and empty, on the sandbox's own root
WORKDIR = "/lev-work"

# Top-level directories the sandbox provides itself, and how.
_SPECIAL = {"proc": "--proc", "dev": "--dev", "tmp": "--tmpfs"}

# Where container engines and `ip netns` mount and unmount all the time: runs see empty
# folders there (a tmpfs over each), which keeps other containers' files out of their view.
# The read-only bind of /run or /var under them still takes their mounts along one by one,
# and fails when one goes away meanwhile (1-2 of 200 runs beside a busy engine): bubblewrap
# then exits before the tool starts, and the executor starts the run again. Binding /run
# and /var whole, rather than each of their entries, halves what the sandbox costs: it
# re-reads the whole mount table for every bind it makes.
_VOLATILE = ("/run/netns", "/run/containers", "/run/libpod", "/run/docker", "/run/user",
             "/var/lib/containers", "/var/lib/docker")
# Container engines' API sockets: a run that reached one could start a container of its
# choosing with the engine's (root's) rights, so runs see /dev/null in their place.
_ENGINE_SOCKETS = ("/run/podman.sock", "/run/docker.sock", "/run/podman/podman.sock",
                   "/run/containerd/containerd.sock")

# A leaf is (bubblewrap option, host path): a run file bound writable, or a kept host path.
_Leaf = tuple[str, str]
_Tree = dict[str, "_Tree | _Leaf"]


class SandboxError(ValueError):
    """A run's files cannot be placed in the sandbox; the message names the path."""


def bwrap() -> str | None:
    """The bubblewrap binary, or None when it is not installed."""
    return shutil.which("bwrap")


def _add(root: _Tree, path: str, leaf: _Leaf) -> None:
    parts = PurePosixPath(path).parts
    node = root
    for part in parts[1:-1]:
        child = node.setdefault(part, {})
        if isinstance(child, tuple):
            raise SandboxError(f"files: {path!r} lies below {child[1]!r}, which the run needs")
        node = child
    if parts[-1] in node:
        raise SandboxError(f"files: {path!r} is also a directory of another run file")
    node[parts[-1]] = leaf


def _check(path: str) -> None:
    parts = PurePosixPath(path).parts
    if not PurePosixPath(path).is_absolute() or len(parts) < 2 or ".." in parts:
        raise SandboxError(f"files: {path!r} is not an absolute file path")
    if parts[1] in ("proc", "dev") or path == WORKDIR or path.startswith(WORKDIR + "/"):
        raise SandboxError(f"files: {path!r} lies in /{parts[1]}, which the sandbox provides")


def _hidden(path: str) -> bool:
    """Whether the sandbox shows something else than the host at ``path``."""
    parts = PurePosixPath(path).parts
    return len(parts) > 1 and (parts[1] in _SPECIAL or parts[1] == WORKDIR[1:])


def kept_paths(paths: Iterable[str]) -> list[str]:
    """Of the host paths a run needs, those the sandbox would hide, outermost only.

    A hidden directory itself (``/tmp`` in ``sys.path`` when a script ran from there) is
    left out: showing it would undo the private ``/tmp``.
    """
    found = sorted({os.path.abspath(p) for p in paths
                    if p and _hidden(os.path.abspath(p)) and os.path.exists(p)})
    kept: list[str] = []
    for path in found:
        if os.path.dirname(path) == "/":
            continue
        if not any(path.startswith(k + "/") for k in kept):
            kept.append(path)
    return kept


def _empty(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return False


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
            elif dest == "/" and target == WORKDIR:
                continue
            elif entry.is_symlink():
                argv += ["--symlink", os.readlink(entry.path), target]
            elif entry.is_dir() and _empty(entry.path):
                argv += ["--dir", target]  # the same to the run, and a mount less per run
            else:
                argv += ["--ro-bind", entry.path, target]
    for name, sub in sorted(needed.items()):
        target = os.path.join(dest, name)
        host_path = os.path.join(host_dir, name) if host_dir is not None else None
        if isinstance(sub, tuple):
            argv += [sub[0], sub[1], target]
        elif dest == "/" and name == "tmp":
            _splice(None, target, sub, argv)
        elif host_path is not None and os.path.islink(host_path):
            raise SandboxError(
                f"files: {target} is a symbolic link on this host; give the path it points to "
                f"({os.path.realpath(host_path)})"
            )
        elif host_path is not None and os.path.isdir(host_path):
            _splice(host_path, target, sub, argv)
        else:
            _splice(None, target, sub, argv)


def _kept_below(tree: _Tree, path: str) -> bool:
    """Whether ``tree`` already has something at or below ``path``."""
    node: _Tree | _Leaf = tree
    for part in PurePosixPath(path).parts[1:]:
        if not isinstance(node, dict) or part not in node:
            return isinstance(node, tuple)
        node = node[part]
    return True


def bwrap_argv(placed: dict[str, str], keep: Iterable[str] = (), *,
               binary: str = "bwrap") -> list[str]:
    """The bubblewrap prefix of one run, ending with ``--``.

    ``placed`` maps sandbox paths to host files (bound writable: copies the caller
    removes after the run); ``keep`` are host paths from :func:`kept_paths`, shown
    read-only at their own paths. Raises :class:`SandboxError` for a path that cannot
    be placed.
    """
    tree: _Tree = {}
    for path, host_file in sorted(placed.items()):
        _check(path)
        _add(tree, path, ("--bind", host_file))
    for path in keep:
        _add(tree, path, ("--ro-bind", path))
    argv = [binary, "--die-with-parent", "--unshare-pid", "--tmpfs", "/"]
    _splice("/", "/", tree, argv)
    if "tmp" not in tree and not os.path.isdir("/tmp"):
        argv += ["--tmpfs", "/tmp"]
    # Over what the binds above brought along: mounting over an existing name needs no
    # write access to the read-only folder that holds it.
    for path in _VOLATILE:
        if os.path.isdir(path) and not os.path.islink(path) and not _kept_below(tree, path):
            argv += ["--tmpfs", path]
    for path in _ENGINE_SOCKETS:
        if os.path.exists(path) and not _kept_below(tree, path):
            argv += ["--ro-bind", "/dev/null", path]
    return argv + ["--dir", WORKDIR, "--chdir", WORKDIR, "--setenv", "PWD", WORKDIR, "--"]
