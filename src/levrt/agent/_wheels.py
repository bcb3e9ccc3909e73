"""The published packages an agent runs jobs from: each wheel fetched once from the server,
checked against the sha256 the server named, and unpacked under ``$LEV_HOME/wheels/`` (a
version's files never change, so they are reused by every later job)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from levrt.agent._enrolment import AgentError
from levrt.store import default_home


def _unpack(content: bytes, folder: Path) -> None:
    """Unpack a wheel into ``folder``, written aside then renamed: a job never imports from
    a half-written folder. Refuses members that would land outside it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as wheel:
            for member in wheel.infolist():
                path = PurePosixPath(member.filename)
                if path.is_absolute() or ".." in path.parts:
                    raise AgentError(f"wheel member {member.filename!r} lies outside the wheel")
                if member.is_dir():
                    continue
                target = partial / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wheel.read(member))
        os.replace(partial, folder)
    except OSError:
        if not folder.is_dir():  # another job of the same version unpacked it meanwhile
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def search_path(wheels: list[dict[str, Any]], fetch: Callable[[str], bytes],
                home: Path | None = None) -> list[str]:
    """The folders a job's ``lev run`` needs on its path, one per wheel of ``wheels``
    (``filename``, ``sha256``), fetched with ``fetch(filename)`` when not unpacked yet.
    Raises :class:`AgentError` when a wheel's bytes do not have the sha256 the server named,
    or a member would land outside its folder."""
    root = (home or default_home()) / "wheels"
    folders = []
    for wheel in wheels:
        folder = root / f"{wheel['filename'].removesuffix('.whl')}-{wheel['sha256'][:16]}"
        if not folder.is_dir():
            content = fetch(wheel["filename"])
            digest = hashlib.sha256(content).hexdigest()
            if digest != wheel["sha256"]:
                raise AgentError(f"wheel {wheel['filename']}: sha256 {digest}, the server said "
                                 f"{wheel['sha256']}")
            _unpack(content, folder)
        folders.append(str(folder))
    return folders
