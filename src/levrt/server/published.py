"""Targets of published packages: which manifest entry a task's target names, and the
package's files unpacked where ``lev run`` imports them.

A task of the hub runs ``lev.<user>.<tool>.<module>:<function>`` of one published version.
The runner puts that version's files (and those of the hub packages it requires) on the
task's ``PYTHONPATH``, unpacked from the store into ``$LEV_HOME/unpacked/``: publishing is
enough to run a package, and the version a task was checked against is the one it runs, even
if a different one is installed in the server's Python. The server itself still only reads
manifests and writes files; ``lev run`` is what imports them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from levrt.store import Store, default_home


@dataclass(frozen=True)
class Published:
    """One runnable entry (a mode, a workflow, a modeless tool) of a published version."""

    package: str
    version: str
    entry: dict[str, Any]

    @property
    def pin(self) -> str:
        """``package==version``, as a job records where its target came from."""
        return f"{self.package}=={self.version}"


def entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Each export and each mode of a manifest."""
    found = []
    for export in manifest.get("exports") or []:
        if isinstance(export, dict):
            found.append(export)
            found += [m for m in export.get("modes") or [] if isinstance(m, dict)]
    return found


def runnable(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """What can be run: workflows and modeless tools (their ``params`` are their own) and
    the modes of tool modules."""
    return [entry for entry in entries(manifest) if "params" in entry]


def _stored(store: Store, package: str, version: str | None) -> dict[str, Any] | None:
    """A version of ``package`` with its manifest (the latest unless given); None when the
    hub has no such package, LookupError when it has but not that version."""
    found = store.get_package(package)
    if found is None:
        return None
    stored = store.get_version(found["name"], version or found["latest"])
    if stored is None:
        raise LookupError(f"{found['name']} has no version {version!r}")
    return stored


def _published(stored: dict[str, Any], qualname: str) -> Published:
    entry = next((e for e in runnable(stored["manifest"]) if e.get("qualname") == qualname),
                 None)
    if entry is None:
        raise LookupError(f"{stored['package']} {stored['version']} has no tool mode or "
                          f"workflow {qualname!r}")
    return Published(stored["package"], stored["version"], entry)


def find(store: Store, package: str, qualname: str, version: str | None = None) -> Published:
    """The runnable entry ``qualname`` of ``package`` (its latest version unless given);
    LookupError saying what is missing."""
    stored = _stored(store, package, version)
    if stored is None:
        raise LookupError(f"no package {package!r} on this hub")
    return _published(stored, qualname)


def resolve(store: Store, target: str, version: str | None = None) -> Published | None:
    """The published entry a task's ``module:function`` target names: its qualified name, or
    ``lev.<user>.<tool>:<function>`` for a workflow or modeless tool the package exports.
    None when no hub package has that module; LookupError when one has, but not the entry."""
    module, _, function = target.rpartition(":")
    parts = module.split(".")
    if len(parts) < 3 or parts[0] != "lev":
        return None
    stored = _stored(store, ".".join(parts[:3]), version)
    if stored is None:
        return None
    if module == stored["package"]:
        # The package's own name: the export of that name, wherever it is defined.
        exports = [e for e in stored["manifest"].get("exports") or [] if isinstance(e, dict)]
        target = next((e["qualname"] for e in exports
                       if "params" in e and e.get("name") == function), target)
    return _published(stored, target)


def _requirements(metadata: str) -> list[Requirement]:
    found = []
    for line in Parser().parsestr(metadata).get_all("Requires-Dist") or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        # Extras' requirements are not installed by default, so not here either.
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found.append(requirement)
    return found


def _metadata(store: Store, package: str, version: str) -> str:
    for member in store.list_version_files(package, version) or []:
        if member["path"].endswith(".dist-info/METADATA"):
            content = store.version_file(package, version, member["path"]) or b""
            return content.decode("utf-8", "replace")
    return ""


def _newest_matching(store: Store, requirement: Requirement) -> str | None:
    """The newest version of a hub package that meets ``requirement``; None if none."""
    package = store.get_package(requirement.name)
    if package is None:
        return None
    for stored in package["versions"]:  # newest first
        try:
            if requirement.specifier.contains(Version(stored["version"]), prereleases=True):
                return str(stored["version"])
        except InvalidVersion:
            continue
    return None


def closure(store: Store, package: str, version: str) -> list[tuple[str, str]]:
    """``(package, version)`` of the package and of every hub package it requires, directly
    or not (the newest version that fits); the package first. Requirements that are not
    on the hub are the server's Python's to have."""
    found: dict[str, tuple[str, str]] = {}
    pending = [(package, version)]
    while pending:
        name, wanted = pending.pop(0)
        key = canonicalize_name(name)
        if key in found:
            continue
        found[key] = (name, wanted)
        for requirement in _requirements(_metadata(store, name, wanted)):
            if canonicalize_name(requirement.name) in found:
                continue
            newest = _newest_matching(store, requirement)
            if newest is not None:
                pending.append((requirement.name, newest))
    return list(found.values())


def unpack(store: Store, package: str, version: str, home: Path | None = None) -> Path:
    """The folder holding the files of a published version, written once under
    ``$LEV_HOME/unpacked/`` and reused (a version's files never change)."""
    stored = store.get_version(package, version)
    if stored is None:
        raise LookupError(f"no version {version!r} of {package!r} on this hub")
    root = (home or default_home()) / "unpacked"
    folder = root / f"{stored['package']}-{stored['version']}-{stored['sha256'][:16]}"
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    # Written aside, then renamed: a task never imports from a half-written folder.
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    try:
        for member in store.list_version_files(package, version) or []:
            # The upload checks refused absolute paths, '..' and links: paths stay inside.
            path = partial / member["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(store.version_file(package, version, member["path"]) or b"")
        os.replace(partial, folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def search_path(store: Store, pin: str, home: Path | None = None) -> list[str]:
    """The folders ``lev run`` needs on its path for the published ``package==version``."""
    package, _, version = pin.partition("==")
    return [str(unpack(store, name, wanted, home)) for name, wanted in
            closure(store, package, version)]
