"""A hub package folder: its name rules and `read_package`.

The layout (docs/packages.md#layout)::

    <user>.<tool>/pyproject.toml           name "lev.<user>.<tool>", version, dependencies
    <user>.<tool>/lev/<user>/<tool>/       the package: __init__.py (__lev__), modules
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from .._config import tomllib
from .problems import PackageError

__all__ = ["PackageInfo", "hub_search_path", "name_rule", "parse_name", "read_package",
           "read_package_folder"]

_PART = re.compile(r"[a-z][a-z0-9_]*")
_TOML_LINE = re.compile(r"at line (\d+)")
_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")


@dataclass(frozen=True)
class PackageInfo:
    """What ``pyproject.toml`` and the folder say about a package.

    ``name`` is both the distribution name and the import name (``lev.user.tool``).
    """

    name: str
    user: str
    tool: str
    version: str
    description: str | None
    root: Path
    #: read from an installed distribution rather than a package folder
    installed: bool = False

    @property
    def locator(self) -> str:
        """What `read_package` takes to find this package again."""
        return self.name if self.installed else str(self.root)

    @property
    def module(self) -> str:
        return self.name

    @property
    def package_dir(self) -> Path:
        """The package's folder relative to `root`: ``lev/<user>/<tool>``."""
        return Path("lev", self.user, self.tool)

    @property
    def path(self) -> Path:
        return self.root / self.package_dir

    def relative(self, path: Path | str) -> str:
        """`path` relative to the package folder, as problems and manifests show it."""
        path = Path(path)
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def name_rule(text: str) -> str | None:
    """The rule ``USER.TOOL`` breaks, or None when it is a good package name.

    Lowercase only: the hub's index (PEP 503) folds case, so ``Joe`` and ``joe`` would be
    one project there but two Python packages.
    """
    user, dot, tool = text.partition(".")
    if not dot or "." in tool:
        return "a package name is USER.TOOL: two parts joined by one dot"
    for label, part in (("USER", user), ("TOOL", tool)):
        if not _PART.fullmatch(part):
            return f"{label} must be lowercase letters, digits and _ starting with a letter"
        if keyword.iskeyword(part):
            return f"{label} must not be a Python keyword ({part}): it could not be imported"
    return None


def parse_name(text: str) -> tuple[str, str]:
    """``(user, tool)`` of ``USER.TOOL``; a `PackageError` names the rule a bad name breaks."""
    rule = name_rule(text)
    if rule is not None:
        raise PackageError(f"{text!r}: {rule}")
    user, _, tool = text.partition(".")
    return user, tool


def read_package(directory: str | Path) -> PackageInfo:
    """Read a hub package folder: ``pyproject.toml`` and the ``lev/<user>/<tool>`` package;
    or, given an import name ``lev.user.tool`` that is no folder, the installed package."""
    root = Path(directory)
    if not root.is_dir() and str(directory).startswith("lev.") and "/" not in str(directory):
        return _installed_package(str(directory))
    if not root.is_dir():
        raise PackageError(f"{directory}: no such directory")
    root = root.resolve()
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise PackageError(
            "missing: a hub package folder holds pyproject.toml ([project] name "
            '"lev.USER.TOOL", version) and lev/USER/TOOL/__init__.py; `lev new USER.TOOL` '
            "creates one", file="pyproject.toml")
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PackageError(f"cannot read it: {exc}", file="pyproject.toml") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        raise PackageError(f"not valid TOML: {exc}", file="pyproject.toml",
                           line=int(found.group(1)) if found else None) from None
    project = data.get("project")
    if not isinstance(project, dict):
        raise PackageError("no [project] table: add one with name, version and dependencies",
                           file="pyproject.toml")
    name = project.get("name")
    line = _key_line(text, "project", "name")
    if not isinstance(name, str):
        raise PackageError('[project] has no name: add name = "lev.USER.TOOL"',
                           file="pyproject.toml", line=line)
    rule = "hub packages are named lev.USER.TOOL" if not name.startswith("lev.") else (
        name_rule(name[4:]))
    if rule is not None:
        raise PackageError(f"project name {name!r}: {rule}", file="pyproject.toml", line=line)
    user, tool = parse_name(name[4:])
    version = project.get("version")
    if not isinstance(version, str):
        raise PackageError(
            '[project] has no version: add version = "0.1.0" (the hub needs it statically, '
            "not dynamic)", file="pyproject.toml", line=_key_line(text, "project", "version"))
    description = project.get("description")
    info = PackageInfo(name=name, user=user, tool=tool, version=version,
                       description=description if isinstance(description, str) else None,
                       root=root)
    if not (info.path / "__init__.py").is_file():
        raise PackageError(
            f"the package {name} is missing: create {info.package_dir.as_posix()}/__init__.py "
            "with __lev__ = annot.meta([...])",
            file=(info.package_dir / "__init__.py").as_posix())
    return info


def read_package_folder(directory: str | Path) -> tuple[PackageInfo, PackageError | None]:
    """`read_package`, except that a folder whose ``pyproject.toml`` is missing or unusable
    (a pdm workspace, a copied package) still gives the package it holds under
    ``lev/<user>/<tool>/``, with the pyproject's error beside it (version ``0.0.0``).

    Raises the `read_package` error when the folder holds no such package either.
    """
    try:
        return read_package(directory), None
    except PackageError as exc:
        root = Path(directory)
        if not root.is_dir():
            raise
        try:
            name, _ = hub_search_path(root)
        except PackageError:
            raise exc from None
        if name_rule(name[4:]) is not None:
            raise exc from None
        user, tool = parse_name(name[4:])
        info = PackageInfo(name=name, user=user, tool=tool, version="0.0.0", description=None,
                           root=root.resolve())
        return info, exc


def _key_line(text: str, table: str, key: str) -> int | None:
    """Line of ``key = ...`` inside ``[table]`` (for pointing at it), or of the table."""
    current = None
    table_line = None
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number, line in enumerate(text.splitlines(), 1):
        header = _TABLE.match(line)
        if header is not None:
            current = header.group(1).strip()
            if current == table:
                table_line = number
        elif current == table and pattern.match(line):
            return number
    return table_line


def hub_search_path(folder: Path) -> tuple[str, list[str]]:
    """``lev.<user>.<tool>`` of a hub package folder, and the folders to put on ``sys.path``:
    it and its siblings (``lev`` and ``lev.<user>`` are namespace packages, so they merge)."""
    inits = sorted(folder.glob("lev/*/*/__init__.py"))
    names = [f"lev.{init.parent.parent.name}.{init.parent.name}" for init in inits]
    wanted = f"lev.{folder.resolve().name}"
    if wanted in names:
        name = wanted
    elif len(names) == 1:
        name = names[0]
    elif names:
        raise PackageError(
            f"{folder} holds several packages ({', '.join(names)}); name the folder "
            "<user>.<tool> after the one to run"
        )
    else:
        raise PackageError(
            f"{folder} is not a hub package folder: it has no lev/<user>/<tool>/__init__.py"
        )
    siblings = sorted(
        str(sibling)
        for sibling in folder.resolve().parent.iterdir()
        if sibling.is_dir() and (sibling / "lev").is_dir() and sibling != folder.resolve()
    )
    return name, [str(folder.resolve()), *siblings]


def _installed_package(name: str) -> PackageInfo:
    """An installed hub package: metadata from its distribution, sources from site-packages.

    Finding it imports only ``lev`` and ``lev.<user>``, namespace packages with no code.
    """
    user, tool = parse_name(name[4:])
    try:
        distribution = importlib.metadata.distribution(name)
        spec = importlib.util.find_spec(name)
    except (importlib.metadata.PackageNotFoundError, ModuleNotFoundError):
        spec = None
    if spec is None or spec.origin is None:
        raise PackageError(f"{name} is neither a package folder here nor an installed package: "
                           f"install it (lev install {name}) or give its folder")
    return PackageInfo(name=name, user=user, tool=tool, version=distribution.version,
                       description=distribution.metadata.get("Summary"),
                       root=Path(spec.origin).resolve().parents[3], installed=True)
