"""``lev check``: what is wrong with a package, each finding with its file and line.

Static checks read the source with `ast` (they work when the package does not import);
then the package is imported in a subprocess for its manifest (`manifest.py`), and an
import failure is one more error.
"""

from __future__ import annotations

import ast
import difflib
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..annot._manifest import FENCE_RE
from ..annot.cats import Attck, BlackArch, parse_category, suggest_categories
from ._source import (
    BUILTIN_NAMES,
    FunctionNode,
    SourceIndex,
    SourceModule,
    Target,
    parameter_names,
)
from .layout import PackageInfo, read_package_folder
from .manifest import package_manifest
from .problems import Level, PackageError, Problem

__all__ = ["CheckReport", "check_package"]

_META = {"levrt.annot.meta", "levrt.annot._meta.meta"}
_PARAM = {"levrt.annot.Param", "levrt.annot._model.Param"}
_ARGV = {"levrt.annot.ARGV", "levrt.annot._model.ARGV"}
_CR = {"levrt.Cr", "levrt._cr.Cr"}
_REMOTE = {"levrt.remote", "levrt._remote.remote"}
_CATEGORY_CLASSES: dict[str, type[Attck] | type[BlackArch]] = {
    f"levrt.annot.cats.{cls.__name__}": cls for cls in (Attck, BlackArch)
}
# A bare image id (``docker images -q``, ``sha256:...``) names an image only on the machine
# that built it: the tool would not run anywhere else.
_IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{64}|[0-9a-f]{12}")


@dataclass
class CheckReport:
    """The manifest (None when the package could not be imported) and the problems found."""

    manifest: dict[str, Any] | None
    problems: list[Problem] = field(default_factory=list)
    #: the package's import was tried and failed (no manifest for that reason)
    import_failed: bool = False

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.level == "warning"]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed): what ``lev check`` exits 0 on."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"manifest": self.manifest,
                "problems": [problem.to_dict() for problem in self.problems]}


def check_package(directory: str | Path, *, run_import: bool = True) -> CheckReport:
    """Check the package folder `directory`.

    With ``run_import=False`` only the static checks run and no package code executes
    (there is no manifest then). A folder whose ``pyproject.toml`` is missing or unusable
    is checked all the same when it holds a package (see `read_package_folder`): that file's
    problem is one ``layout`` error among the others.
    """
    try:
        info, layout_error = read_package_folder(directory)
    except PackageError as exc:
        return CheckReport(None, [Problem("error", exc.file, exc.line, "layout", exc.message)])
    checker = _Checker(info)
    problems = checker.run()
    if layout_error is not None:
        problems.append(Problem("error", layout_error.file, layout_error.line, "layout",
                                layout_error.message))
    manifest = None
    import_failed = False
    if run_import:
        try:
            manifest = package_manifest(info.locator)
        except PackageError as exc:
            import_failed = True
            # A static error at the same place (file and line, or the file alone when
            # neither names a line) already says what is wrong there.
            explained = any(p.level == "error" and (p.file, p.line) == (exc.file, exc.line)
                            for p in problems)
            if not explained:
                problems.append(Problem("error", exc.file, exc.line, "import", exc.message))
        else:
            problems += checker.unknown_params(manifest) + checker.empty_tools(manifest)
    problems.sort(key=lambda p: (p.file or "", p.line or 0, p.level, p.message))
    return CheckReport(manifest, problems, import_failed)


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _signature(function: FunctionNode) -> str:
    return f"{function.name}({', '.join(parameter_names(function.args))})"


def _docstring(node: ast.Module | FunctionNode) -> ast.Constant | None:
    first = node.body[0] if node.body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return first.value
    return None


def _member_suggestions(cls: type[Attck] | type[BlackArch], name: str) -> str:
    """`` (did you mean Attck.Reconnaissance?)``, from parse_category's suggestions."""
    try:
        members = [parse_category(f"{cls.__name__.lower()}:{name}")]
    except ValueError:
        members = suggest_categories(f"{cls.__name__.lower()}:{name}")
    names = [f"{type(member).__name__}.{member.name}" for member in members]
    return f" (did you mean {' or '.join(names)}?)" if names else ""


def _own_statements(function: FunctionNode) -> list[ast.AST]:
    """The nodes of a function's body, without those of the functions nested in it."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                 ast.ClassDef)):
            pending.extend(ast.iter_child_nodes(node))
    return found


def _dotted(expression: ast.expr) -> list[str] | None:
    """``["nmap", "alive"]`` for ``nmap.alive``; None for anything but names and attributes."""
    if isinstance(expression, ast.Name):
        return [expression.id]
    if isinstance(expression, ast.Attribute):
        base = _dotted(expression.value)
        return base + [expression.attr] if base else None
    return None


class _Checker:
    """The static checks of one package."""

    def __init__(self, info: PackageInfo) -> None:
        self.info = info
        self.index = SourceIndex(info)
        self.problems: list[Problem] = []
        # (file, function, param) of the unknown Params reported, so that the manifest's
        # own list of them adds only those the static check could not see.
        self.param_keys: set[tuple[str, str, str]] = set()

    def report(self, level: Level, module: SourceModule, line: int | None, code: str,
               message: str) -> None:
        self.problems.append(Problem(level, self.info.relative(module.path), line, code, message))

    def run(self) -> list[Problem]:
        modules = self.index.own_modules()
        init = self.index.module(self.info.module)
        exports = self.exports(init) if init is not None else []
        exported = {(target.module.name, target.function.name) for target in exports
                    if target.function is not None}
        modes = {id(target.module): self.tool_modes(target.module) for target in exports
                 if target.function is None}
        for module in modules:
            annotated = {name for name, function in module.functions.items()
                         if self.annotated(module, function)}
            self.imports(module)
            self.async_modes(module)
            self.breakpoints(module)
            self.decorators(module)
            self.categories(module)
            self.images(module)
            self.module_attributes(module)
            listed = {function.name for function in modes.get(id(module)) or []}
            self.undefined_names(module, annotated | listed | {
                function for name, function in exported if name == module.name})
        documented: set[int] = set()
        for target in exports:
            if target.function is None:
                self.tool_module_docs(target.module, modes[id(target.module)], documented)
            elif id(target.function) not in documented:
                documented.add(id(target.function))
                self.function_docs(target.module, target.function)
        return self.index.problems + self.problems

    # -- exports ---------------------------------------------------------------------------

    def exports(self, init: SourceModule) -> list[Target]:
        """Check ``__lev__ = annot.meta([...])`` and resolve its items that are package code."""
        statement = init.assignments.get("__lev__")
        if statement is None:
            self.report("error", init, None, "lev-missing",
                        "no __lev__: add __lev__ = annot.meta([...]) naming the tool modules, "
                        "tool functions and workflows the platform shows")
            return []
        items = self.lev_list(init, statement, "annot.meta([tool_module, workflow])")
        if items is None:
            return []
        if not items.elts:
            self.report("warning", init, statement.lineno, "lev-empty",
                        "__lev__ exports nothing: the platform shows no tool or workflow of "
                        "this package")
        found = []
        exported = {item.id for item in items.elts if isinstance(item, ast.Name)}
        for position, item in enumerate(items.elts):
            target = self.export(init, position, item, exported)
            if target is not None:
                found.append(target)
        return found

    def lev_list(self, module: SourceModule, statement: ast.Assign | ast.AnnAssign,
                 example: str) -> ast.List | ast.Tuple | None:
        """The list of ``__lev__ = annot.meta([...], desc=..., ...)``; reports its form."""
        call = statement.value
        if not (isinstance(call, ast.Call) and module.origin_of(call.func) in _META):
            self.report("error", module, statement.lineno, "lev-form",
                        f"__lev__ must be annot.meta([...]) with the list of exports, e.g. "
                        f"{example}")
            return None
        given = call.args[0] if call.args else next(
            (keyword.value for keyword in call.keywords if keyword.arg == "exports"), None)
        for keyword in call.keywords:
            if keyword.arg == "cats":
                self.category_values(module, keyword.value)
            elif keyword.arg == "params":
                self.report("warning", module, keyword.value.lineno, "lev-params",
                            "params in __lev__ describe no function: give them to "
                            "@annot.meta(params=[...]) on the function they belong to")
        if given is None:
            self.report("error", module, statement.lineno, "lev-form",
                        f"__lev__ = annot.meta(...) names no exports: write {example}")
            return None
        _, items = self.index.value_of(module, given)
        if not isinstance(items, (ast.List, ast.Tuple)):
            self.report("error", module, statement.lineno, "lev-form",
                        f"annot.meta(...) takes a list of exports, not {ast.unparse(items)}")
            return None
        return items

    # -- tool modules ----------------------------------------------------------------------

    def tool_modes(self, module: SourceModule) -> list[FunctionNode] | None:
        """The modes a tool module's own ``__lev__`` lists (None without one: then its
        annotated sync functions are its modes). Reports what is listed but no mode, the
        annotated functions left out, and a tool without modes."""
        tool = module.name.rpartition(".")[2]
        statement = module.assignments.get("__lev__")
        if statement is None:
            if not any(isinstance(function, ast.FunctionDef) and self.annotated(module, function)
                       for function in module.functions.values()):
                self.report("error", module, 1, "tool-empty",
                            f"tool {tool} has no modes: decorate its mode functions with "
                            "@annot.meta(...) or list them in __lev__ = annot.meta([...])")
            return None
        items = self.lev_list(module, statement, "annot.meta([mode, other_mode], desc=...)")
        if items is None:
            return []
        listed: list[FunctionNode] = []
        names: set[str] = set()
        for item in items.elts:
            function = self.mode_item(module, tool, item)
            if function is not None:
                listed.append(function)
            if isinstance(item, ast.Name):
                names.add(item.id)
        for name, function in module.functions.items():
            if (isinstance(function, ast.FunctionDef) and self.annotated(module, function)
                    and name not in names):
                self.report("warning", module, function.lineno, "mode-unlisted",
                            f"{name} is annotated but not in {tool}'s __lev__: the platform "
                            "shows only the listed modes; add it to the list or drop "
                            "@annot.meta")
        if not items.elts:
            self.report("error", module, statement.lineno, "tool-empty",
                        f"tool {tool} has no modes: its __lev__ lists none")
        return listed

    def mode_item(self, module: SourceModule, tool: str,
                  item: ast.expr) -> FunctionNode | None:
        """The sync function one item of a tool module's ``__lev__`` names, when it is
        package source; reports an item that is no mode."""
        def not_a_mode(what: str) -> None:
            self.report("error", module, item.lineno, "mode-kind",
                        f"{tool}'s __lev__ lists {ast.unparse(item)}, {what}: a mode is a sync "
                        "function returning a Cr")

        if isinstance(item, ast.Name) and item.id not in module.defined:
            self.report("error", module, item.lineno, "export-undefined",
                        f"{tool}'s __lev__ lists {item.id}, which is neither defined nor "
                        f"imported there{_suggest(item.id, module.functions)}")
            return None
        if not isinstance(item, (ast.Name, ast.Attribute)):
            not_a_mode("which is no function")
            return None
        origin = module.origin_of(item)
        target = self.index.lookup(origin) if origin else None
        if target is None:
            if isinstance(item, ast.Name) and item.id in module.assignments:
                not_a_mode("a value, not a function")
            return None  # imported from elsewhere: nothing to say statically
        if target.function is None:
            not_a_mode(f"the module {target.module.name}")
            return None
        if isinstance(target.function, ast.AsyncFunctionDef):
            not_a_mode("an async function (a workflow: export it from __init__.py)")
            return None
        return target.function

    def async_modes(self, module: SourceModule) -> None:
        """``async def mode(...) -> Cr: return Cr(...)``: the Cr comes back un-awaited."""
        for function in module.functions.values():
            if not isinstance(function, ast.AsyncFunctionDef):
                continue
            returns_cr = (function.returns is not None and (
                module.origin_of(function.returns) in _CR
                or (isinstance(function.returns, ast.Constant) and function.returns.value == "Cr")))
            returned = [node.value for node in _own_statements(function)
                        if isinstance(node, ast.Return) and isinstance(node.value, ast.Call)
                        and module.origin_of(node.value.func) in _CR]
            if returns_cr or returned:
                self.report("warning", module, function.lineno, "async-cr",
                            f"{function.name} is async and returns a Cr without running it: "
                            "write the mode as a plain def returning the Cr (levrt runs it), "
                            "or await it (return await Cr(...)) in a workflow")

    def breakpoints(self, module: SourceModule) -> None:
        """``breakpoint()`` and ``pdb.set_trace()`` in @remote entries."""
        for entry in ast.walk(module.tree):
            if not (isinstance(entry, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    module.origin_of(decorator) in _REMOTE for decorator in entry.decorator_list)):
                continue
            for node in ast.walk(entry):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                if ((isinstance(func, ast.Name) and func.id in ("breakpoint", "set_trace"))
                        or (isinstance(func, ast.Attribute) and func.attr == "set_trace")):
                    self.report("warning", module, node.lineno, "breakpoint",
                                f"{ast.unparse(func)}() in the entry {entry.name}: skipped "
                                "unless lev run --debug (in a terminal)")

    def export(self, init: SourceModule, position: int, item: ast.expr,
               exported: set[str]) -> Target | None:
        if isinstance(item, ast.Name) and item.id not in init.defined:
            if item.id in BUILTIN_NAMES:
                self.report("error", init, item.lineno, "export-kind",
                            f"__lev__ exports the builtin {item.id}: export tool modules, tool "
                            "functions and workflows of this package")
            else:
                self.report("error", init, item.lineno, "export-undefined",
                            f"export {item.id} is neither defined nor imported in __init__.py"
                            f"{self.import_hint(init, item.id, exported)}")
            return None
        if not isinstance(item, (ast.Name, ast.Attribute)):
            self.report("error", init, item.lineno, "export-kind",
                        f"__lev__ item {position} is {ast.unparse(item)}: export a tool module, "
                        "a tool function or a workflow by its name")
            return None
        origin = init.origin_of(item)
        return self.index.lookup(origin) if origin else None

    def import_hint(self, init: SourceModule, name: str, exported: set[str]) -> str:
        if self.index.module(f"{init.name}.{name}") is not None:
            return f": add `from . import {name}`"
        for module in self.index.own_modules():
            if name in module.functions and module is not init:
                return f": add `from .{module.name.removeprefix(init.name + '.')} import {name}`"
        # A name already in the list is not the one that was meant.
        return _suggest(name, init.defined - exported)

    # -- imports and module attributes -----------------------------------------------------

    def imports(self, module: SourceModule) -> None:
        """``from .asset import x`` where asset (package source) defines no x."""
        for origin, statement in module.imports.values():
            if not isinstance(statement, ast.ImportFrom):
                continue
            source, _, name = origin.rpartition(".")
            imported = self.index.module(source)
            if imported is not None and not self.index.has(imported, name):
                self.report("error", module, statement.lineno, "import-missing",
                            f"cannot import {name} from {source}: it defines no {name}"
                            f"{_suggest(name, imported.defined)}")

    def module_attributes(self, module: SourceModule) -> None:
        """``nmap.port_ox(...)`` where ``nmap`` is an imported package module without it."""
        called = {id(node.func) for node in ast.walk(module.tree) if isinstance(node, ast.Call)}
        for ref in module.refs:
            attribute = ref.attribute
            if (attribute is None or not isinstance(attribute.ctx, ast.Load)
                    or ref.name not in module.imports or attribute.attr.startswith("__")):
                continue
            target = self.index.module(module.imports[ref.name][0])
            if target is None or self.index.has(target, attribute.attr):
                continue
            modes = [name for name, fn in target.functions.items()
                     if self.annotated(target, fn) and isinstance(fn, ast.FunctionDef)]
            what = f"{ref.name}.{attribute.attr}" + ("(...)" if id(attribute) in called else "")
            listing = f"; its modes: {', '.join(modes)}" if modes else ""
            self.report("error", module, attribute.lineno, "mode-missing",
                        f"{what}: {target.name} has no {attribute.attr}{listing}"
                        f"{_suggest(attribute.attr, target.defined)}")

    # -- annotations -----------------------------------------------------------------------

    def meta_calls(self, module: SourceModule, function: FunctionNode) -> list[ast.Call]:
        return [decorator for decorator in function.decorator_list
                if isinstance(decorator, ast.Call) and module.origin_of(decorator.func) in _META]

    def annotated(self, module: SourceModule, function: FunctionNode) -> bool:
        return bool(self.meta_calls(module, function))

    def decorators(self, module: SourceModule) -> None:
        for function in module.functions.values():
            for call in self.meta_calls(module, function):
                for keyword in call.keywords:
                    if keyword.arg == "params":
                        self.params(module, function, keyword.value)
                    elif keyword.arg == "cats":
                        self.category_values(module, keyword.value)

    def params(self, module: SourceModule, function: FunctionNode, value: ast.expr) -> None:
        _, items = self.index.value_of(module, value)
        if not isinstance(items, (ast.List, ast.Tuple)):
            return  # computed: the manifest's unknown_params covers it
        names = parameter_names(function.args)
        for position, item in enumerate(items.elts):
            if isinstance(item, ast.Constant):
                self.report("error", module, item.lineno, "param-form",
                            f"params[{position}] of {function.name} is {ast.unparse(item)}, not "
                            'an annot.Param: write annot.Param("name", "description")')
                continue
            name = self.param_name(module, item)
            if name is not None and name not in names:
                self.param_keys.add((self.info.relative(module.path), function.name, name))
                self.report("error", module, item.lineno, "param-unknown",
                            f"Param {name!r} names no parameter of {_signature(function)}"
                            f"{_suggest(name, names)}")

    def param_name(self, module: SourceModule, item: ast.expr) -> str | None:
        """The name of a Param written inline, as ``annot.ARGV`` or through a module-level
        name; None when it is computed."""
        if module.origin_of(item) in _ARGV:
            return "argv"
        source, value = self.index.value_of(module, item)
        if not (isinstance(value, ast.Call) and source.origin_of(value.func) in _PARAM):
            return None
        given = value.args[0] if value.args else next(
            (k.value for k in value.keywords if k.arg == "name"), None)
        if isinstance(given, ast.Constant) and isinstance(given.value, str):
            return given.value
        return None

    def category_values(self, module: SourceModule, value: ast.expr) -> None:
        """Categories written as text or numbers instead of Attck/BlackArch members."""
        _, value = self.index.value_of(module, value)
        if isinstance(value, ast.Dict):
            items = [v for member in value.values
                     for v in (member.elts if isinstance(member, (ast.List, ast.Tuple, ast.Set))
                               else [member])]
        elif isinstance(value, (ast.List, ast.Tuple, ast.Set)):
            items = list(value.elts)
        else:
            items = [value]
        for item in items:
            if not isinstance(item, ast.Constant) or item.value is None:
                continue
            hint = ""
            if isinstance(item.value, str):
                try:
                    member = parse_category(item.value)
                    hint = f": write {type(member).__name__}.{member.name}"
                except ValueError as exc:
                    hint = f": {exc}"
            self.report("error", module, item.lineno, "category-form",
                        f"category {item.value!r} is not an Attck or BlackArch member{hint}")

    def categories(self, module: SourceModule) -> None:
        """``Attck.Recon``, ``BlackArch.Scaner``: members the category classes lack."""
        for node in ast.walk(module.tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)):
                continue
            cls = _CATEGORY_CLASSES.get(module.origin_of(node.value) or "")
            if cls is None or hasattr(cls, node.attr):
                continue
            self.report("error", module, node.lineno, "category-unknown",
                        f"unknown category {cls.__name__}.{node.attr}"
                        f"{_member_suggestions(cls, node.attr)}")

    def images(self, module: SourceModule) -> None:
        for node in ast.walk(module.tree):
            if not (isinstance(node, ast.Call) and module.origin_of(node.func) in _CR):
                continue
            image = next((k.value for k in node.keywords if k.arg == "image"), None)
            if node.args and not isinstance(node.args[0], ast.Starred):
                image = node.args[0]
            if isinstance(image, ast.Constant) and image.value == "":
                self.report("error", module, image.lineno, "image-empty",
                            "Cr(\"\"): the image is empty, so the run cannot start; name the "
                            "tool's image, e.g. localhost/lev-tool:latest or "
                            f".{self.info.user}.{self.info.tool}:TAG")
            elif (isinstance(image, ast.Constant) and isinstance(image.value, str)
                    and _IMAGE_ID.fullmatch(image.value)):
                self.report("warning", module, image.lineno, "image-id",
                            f"image {image.value!r} is a local image id: it exists only on the "
                            "machine that built it; use a reference such as "
                            f"localhost/lev-tool:latest or .{self.info.user}.{self.info.tool}:TAG")

    # -- function bodies -------------------------------------------------------------------

    def undefined_names(self, module: SourceModule, functions: set[str]) -> None:
        """Names an export's or a mode's body reads that nothing defines (NameError when it
        runs: a typo like ``print(os_reult)``)."""
        if module.open:
            return
        seen: set[tuple[str, str]] = set()
        for ref in module.refs:
            if (ref.function not in functions or ref.name in module.defined
                    or ref.name in BUILTIN_NAMES or (ref.function, ref.name) in seen):
                continue
            seen.add((ref.function, ref.name))
            function = module.functions[ref.function]
            local = {node.id for node in ast.walk(function)
                     if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)}
            local.update(parameter_names(function.args))
            self.report("error", module, ref.node.lineno, "name-undefined",
                        f"{ref.name} is not defined in {ref.function}"
                        f"{_suggest(ref.name, module.defined | local)}")

    # -- documentation ---------------------------------------------------------------------

    def tool_module_docs(self, module: SourceModule, modes: list[FunctionNode] | None,
                         documented: set[int]) -> None:
        if _docstring(module.tree) is None:
            self.report("warning", module, 1, "doc-missing",
                        f"tool module {module.name.rpartition('.')[2]} has no docstring: its "
                        "first lines describe the tool, then Homepage:, GitHub:, Type: and "
                        "Version: lines")
        if modes is None:
            modes = [function for function in module.functions.values()
                     if isinstance(function, ast.FunctionDef) and self.annotated(module, function)]
        for function in modes:
            if id(function) not in documented:
                documented.add(id(function))
                self.function_docs(self.module_of(function) or module, function)

    def module_of(self, function: FunctionNode) -> SourceModule | None:
        """The parsed module a function node belongs to (a mode may be imported)."""
        return next((module for module in self.index.own_modules()
                     if function in module.functions.values()), None)

    def function_docs(self, module: SourceModule, function: FunctionNode) -> None:
        doc = _docstring(function)
        if doc is None:
            self.report("warning", module, function.lineno, "doc-missing",
                        f"{function.name} has no docstring: the platform shows it; describe "
                        "what it does and give an example call in a ``` block")
            return
        match = FENCE_RE.search(doc.value)
        if match is None:
            self.report("warning", module, doc.lineno, "example-missing",
                        f"the docstring of {function.name} has no example: add a ``` block "
                        f"with a call such as await {function.name}(...)")
            return
        first_line = doc.lineno + doc.value[: match.start(2)].count("\n")
        try:
            example = ast.parse(textwrap.dedent(match.group(2)))
        except SyntaxError as exc:
            self.report("warning", module, first_line + (exc.lineno or 1) - 1, "example-syntax",
                        f"the example of {function.name} is not valid Python: {exc.msg}")
            return
        self.example_calls(module, function, example, first_line)

    def example_calls(self, module: SourceModule, function: FunctionNode, example: ast.Module,
                      first_line: int) -> None:
        """Calls in a docstring example must name things the package has."""
        init = self.index.module(self.info.module)
        spaces = [module] + ([init] if init is not None and init is not module else [])
        bound = {node.id for node in ast.walk(example)
                 if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)}
        for call in ast.walk(example):
            parts = _dotted(call.func) if isinstance(call, ast.Call) else None
            if not parts or parts[0] in bound or parts[0] in BUILTIN_NAMES:
                continue
            line = first_line + call.lineno - 1
            head = parts[0]
            submodule = self.index.module(f"{self.info.module}.{head}")
            if not any(head in space.defined for space in spaces) and submodule is None:
                names = set().union(*(space.defined for space in spaces))
                self.report("warning", module, line, "example-undefined",
                            f"the example of {function.name} calls {head}, which the package "
                            f"does not define{_suggest(head, names)}")
                continue
            space = next((s for s in spaces if head in s.imports), None)
            target = self.index.module(space.imports[head][0]) if space else submodule
            if target is not None and len(parts) > 1 and not self.index.has(target, parts[1]):
                self.report("warning", module, line, "example-undefined",
                            f"the example of {function.name} calls {head}.{parts[1]}, but "
                            f"{target.name} has no {parts[1]}{_suggest(parts[1], target.defined)}")

    # -- from the manifest -----------------------------------------------------------------

    def empty_tools(self, manifest: dict[str, Any]) -> list[Problem]:
        """Tools without modes that the static check could not see (modes built by code)."""
        seen = {problem.file for problem in self.problems if problem.code == "tool-empty"}
        return [Problem("error", export.get("file"), export.get("line"), "tool-empty",
                        f"tool {export['name']} has no modes: list its mode functions in its "
                        "__lev__ = annot.meta([...]) or decorate them with @annot.meta(...)")
                for export in manifest["exports"]
                if export.get("kind") == "tool" and export.get("modes") == []
                and export.get("file") not in seen]

    def unknown_params(self, manifest: dict[str, Any]) -> list[Problem]:
        """Params the manifest found unknown that the static check could not see (built by
        code rather than written out)."""
        found = []
        entries = [entry for export in manifest["exports"]
                   for entry in [export, *export.get("modes", [])]]
        for entry in entries:
            for name in entry.get("unknown_params", []):
                key = (entry.get("file"), entry["name"], name)
                if key in self.param_keys:
                    continue
                self.param_keys.add(key)
                found.append(Problem("error", entry.get("file"), entry.get("line"),
                                     "param-unknown",
                                     f"Param {name!r} names no parameter of {entry['name']}"))
        return found
