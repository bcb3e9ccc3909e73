"""The `lev` subcommands for package authors: new, check."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any

from ._cli_base import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from .annot.cats import Attck
from .packages import PackageError, Problem, check_package, scaffold
from .packages.scaffold import new_name

_ATTCK_TITLES = {member.value: member.title for member in Attck}


def register(commands: Any) -> None:
    """Add this module's subcommands to ``lev``'s subparsers."""
    new = commands.add_parser(
        "new", help="create a package folder USER.TOOL to start a tool from",
        description="Create PARENT/USER.TOOL: pyproject.toml (lev.USER.TOOL), a tool module "
        "with one mode, a workflow, __lev__, main.py, a Dockerfile and a test that needs no "
        "tools. It passes lev check and its test as it is.")
    new.add_argument("name", metavar="USER.TOOL",
                     help="lowercase letters, digits and _, each part starting with a letter")
    new.add_argument("--dir", default=".", metavar="PARENT",
                     help="where to create the folder (default: here)")
    new.set_defaults(handler=_cmd_new)

    check = commands.add_parser(
        "check", help="show a package's manifest and what is wrong with it",
        description="Print the manifest of the package in DIR and its problems, each with "
        "file:line. The package is imported in a subprocess for its manifest. Exit code 1 "
        "when there are errors, 0 with warnings only.")
    check.add_argument("dir", nargs="?", default=".", metavar="DIR",
                       help="the package folder USER.TOOL (default: here)")
    check.add_argument("--json", action="store_true",
                       help='print {"manifest": ..., "problems": [...]} instead')
    check.add_argument("--no-import", dest="run_import", action="store_false",
                       help="static checks only: run none of the package's code (no manifest)")
    check.set_defaults(handler=_cmd_check)


def _cmd_new(args: argparse.Namespace, extras: list[str]) -> int:
    try:
        new_name(args.name)
    except PackageError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        folder = scaffold(args.dir, args.name)
    except PackageError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    print(f"created {folder} (lev.{args.name})")
    print(f"next: cd {folder} && lev check && python -m pytest")
    return EXIT_OK


def _cmd_check(args: argparse.Namespace, extras: list[str]) -> int:
    report = check_package(args.dir, run_import=args.run_import)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        if report.manifest is not None:
            print("\n".join(manifest_lines(report.manifest)))
            print()
        elif report.import_failed:
            print("no manifest: the package does not import (see the errors)")
        for problem in report.problems:
            print(_from_here(problem, args.dir))
        print(_counts(len(report.errors), len(report.warnings)))
    return EXIT_OK if report.ok else EXIT_FAILED


def _from_here(problem: Problem, directory: str) -> str:
    # Problems name files relative to the package folder; printed relative to where the
    # command runs, an editor or terminal can open them.
    if problem.file is None:
        return str(problem)
    path = os.path.normpath(os.path.join(directory, problem.file))
    return str(dataclasses.replace(problem, file=path))


def _counts(errors: int, warnings: int) -> str:
    return (f"{errors} error{'' if errors == 1 else 's'}, "
            f"{warnings} warning{'' if warnings == 1 else 's'}")


# -- the readable manifest ---------------------------------------------------------------


def manifest_lines(manifest: dict[str, Any]) -> list[str]:
    """The manifest as text: the package, then each export with its modes and parameters."""
    head = f"{manifest['package']} {manifest['version']}"
    lines = [f"{head}: {manifest['description']}" if manifest.get("description") else head,
             f"  user {manifest['user']}, tool {manifest['tool']}, levrt {manifest['levrt']}"]
    # The __init__'s annot.meta([...], desc=..., cats=..., tags=...) describes the package.
    if manifest.get("desc"):
        lines.append(f"  {manifest['desc']}")
    lines += _labelled(manifest, "  ", ("categories", "tags"))
    for export in manifest["exports"]:
        lines.append("")
        lines += _entry_lines(export, "")
        # A tool module lists its modes; a modeless tool (a function) is its own only mode.
        if "params" not in export:
            for mode in export.get("modes", []):
                lines += _entry_lines(mode, "  ")
    return lines


def _entry_lines(entry: dict[str, Any], indent: str) -> list[str]:
    kind = entry["kind"]
    params = entry.get("params", [])
    signature = f"({', '.join(_param_signature(p) for p in params)})" if "params" in entry else ""
    where = f"  [{entry['file']}:{entry['line']}]" if entry.get("file") else ""
    lines = [f"{indent}{kind} {entry['name']}{signature}{where}"]
    inner = indent + "    "
    if entry.get("desc"):
        lines += [f"{inner}{line}" for line in str(entry["desc"]).splitlines()]
    header = [f"{key} {entry[key]}" for key in ("homepage", "github", "type", "version")
              if entry.get(key)]
    if header:
        lines.append(f"{inner}{', '.join(header)}")
    for param in params:
        lines.append(f"{inner}--{param['name']}: {_param_detail(param)}")
    lines += _labelled(entry, inner, ("categories", "tags", "images", "schemas"))
    if entry.get("example"):
        example = str(entry["example"]).splitlines()
        lines.append(f"{inner}example: {example[0]}" + (" ..." if len(example) > 1 else ""))
    return lines


def _labelled(entry: dict[str, Any], indent: str, labels: tuple[str, ...]) -> list[str]:
    """``categories: ...``, ``tags: ...`` (and so on) lines of the non-empty ones."""
    cats = entry.get("cats") or {}
    shown = [f"{_ATTCK_TITLES.get(value, value)} ({value})" for value in cats.get("attck", [])]
    shown += [f"blackarch:{value}" for value in cats.get("blackarch", [])]
    values = {"categories": shown, **{key: entry.get(key) or []
                                      for key in ("tags", "images", "schemas")}}
    return [f"{indent}{label}: {', '.join(values[label])}" for label in labels if values[label]]


def _param_signature(param: dict[str, Any]) -> str:
    prefix = {"var_positional": "*", "var_keyword": "**"}.get(param["kind"], "")
    text = prefix + param["name"] + (f": {param['type']}" if param.get("type") else "")
    if not param["required"] and not prefix:
        text += f" = {param['default']!r}"
    return text


def _param_detail(param: dict[str, Any]) -> str:
    parts = [param.get("type") or "any",
             "required" if param["required"] else f"default {param['default']!r}"]
    if param.get("placeholder") is not None:
        parts.append(f"placeholder {param['placeholder']}")
    if param.get("regex"):
        parts.append(f"regex {param['regex']}")
    detail = ", ".join(parts)
    return f"{detail}; {param['desc']}" if param.get("desc") else detail
