"""Build a package's wheel (what ``lev publish`` uploads) with pip, in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from .._config import tomllib
from .layout import read_package
from .problems import PackageError, output_tail

__all__ = ["BUILD_TIMEOUT", "build_wheel"]

#: seconds a build may take (with build isolation pip may first download the backend)
BUILD_TIMEOUT = 600.0


def _backend_here(root: Path) -> bool:
    """Whether the package's build backend (hatchling for ``lev new`` packages) is importable
    here: then pip can skip build isolation, which would download it, and work offline."""
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    backend = data.get("build-system", {}).get("build-backend")
    if not isinstance(backend, str) or not backend:
        return False
    return importlib.util.find_spec(backend.partition(".")[0]) is not None


def build_wheel(directory: str | Path, out_dir: str | Path) -> Path:
    """Build the wheel of the package in `directory` into `out_dir`; returns its path.

    Raises `PackageError` with the end of pip's output when the build fails.
    """
    info = read_package(directory)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-input",
               "--disable-pip-version-check", "-w", str(out), str(info.root)]
    if _backend_here(info.root):
        command.insert(4, "--no-build-isolation")
    # The wheel must hold the sources only, not bytecode a build step might compile.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.time()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise PackageError(f"building the wheel of {info.name} took longer than "
                           f"{BUILD_TIMEOUT:g} s") from None
    if done.returncode != 0:
        raise PackageError(f"building the wheel of {info.name} failed (pip exit code "
                           f"{done.returncode}){output_tail(done.stdout + done.stderr)}")
    # Wheel file names use the normalized project name (PEP 427): lev_user_tool-1.0-....
    prefix = re.sub(r"[-_.]+", "_", info.name).lower()
    built = [wheel for wheel in out.glob(f"{prefix}-*.whl")
             if wheel.stat().st_mtime >= started - 1]
    if not built:
        raise PackageError(f"pip built no wheel of {info.name} in {out}"
                           f"{output_tail(done.stdout + done.stderr)}")
    return max(built, key=lambda wheel: wheel.stat().st_mtime)
