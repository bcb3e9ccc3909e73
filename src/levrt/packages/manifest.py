"""The package manifest, built by importing the package in a subprocess
(docs/packages.md#the-manifest).

Package code is only ever imported in a throwaway ``python -m levrt.packages._probe DIR``
process, on the author's or agent's machine: ``lev check`` and ``lev publish`` stay safe
from what it does at import time, and the hub server never imports it at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .layout import read_package_folder
from .problems import PackageError, output_tail

__all__ = ["PROBE_TIMEOUT", "package_manifest"]

#: seconds an import may take; more means the package does work at import time
PROBE_TIMEOUT = 30.0
# The probe must import this very levrt, also when it is not installed (a source checkout).
_LEVRT_PARENT = str(Path(__file__).resolve().parent.parent.parent)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # Checking a package must not leave __pycache__ folders in it (they would end up in
    # the wheel lev publish builds next).
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [_LEVRT_PARENT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    return env


def package_manifest(directory: str | Path, *, timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """Import the package in `directory` in a subprocess and return its manifest.

    A folder without a usable ``pyproject.toml`` is imported too (see
    `read_package_folder`): its manifest then says version ``0.0.0``.

    Raises `PackageError` with the failing file and line when the import fails, and when
    it takes longer than `timeout` seconds.
    """
    info, _ = read_package_folder(directory)
    init = (info.package_dir / "__init__.py").as_posix()
    # A session of its own, so that a timeout also ends whatever the package started.
    probe = subprocess.Popen(
        [sys.executable, "-m", "levrt.packages._probe", info.locator],
        cwd=info.root, env=_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        out, err = probe.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(probe.pid, signal.SIGKILL)
        probe.communicate()
        raise PackageError(
            f"importing {info.module} took longer than {timeout:g} s: does its code do work "
            "at import time (a scan, a network call, input())? Do it inside the functions",
            file=init) from None
    try:
        result = json.loads(out)
        ok = result["ok"]
    except (ValueError, TypeError, KeyError):
        raise PackageError(
            f"importing {info.module} ended without a manifest (exit code {probe.returncode})"
            f"{output_tail(err)}", file=init) from None
    if not ok:
        error = result["error"]
        raise PackageError(error["message"], file=error["file"], line=error["line"])
    manifest: dict[str, Any] = result["manifest"]
    return manifest
