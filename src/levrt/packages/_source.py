"""A static model of a package's source for `lev check`: its modules, what each imports
and defines at module level, and the names each function reads from module scope.

Nothing here imports or runs package code: the checks must work on a package whose import
fails, and wherever running it is not wanted.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .layout import PackageInfo
from .problems import Problem

__all__ = ["BUILTIN_NAMES", "FunctionNode", "GlobalRef", "SourceIndex", "SourceModule", "Target",
           "parameter_names", "parse_module"]

# What every module can read without defining it.
BUILTIN_NAMES = frozenset(dir(builtins)) | {
    "__annotations__", "__builtins__", "__cached__", "__doc__", "__file__", "__loader__",
    "__name__", "__package__", "__path__", "__spec__",
}
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
# Re-exports are followed this far; deeper chains (or cycles) are left unresolved.
_MAX_HOPS = 8

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def parameter_names(args: ast.arguments) -> list[str]:
    """Every parameter a function or lambda declares, ``*args`` and ``**kwargs`` included."""
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    every += [arg for arg in (args.vararg, args.kwarg) if arg is not None]
    return [arg.arg for arg in every]


def _defaults(args: ast.arguments) -> list[ast.expr]:
    return [*args.defaults, *(d for d in args.kw_defaults if d is not None)]


class _Binder(ast.NodeVisitor):
    """The names one scope binds, found without entering the scopes nested in it."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.declared_global: set[str] = set()
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self.star = False

    @classmethod
    def of(cls, node: ast.Module | ast.ClassDef | FunctionNode | ast.Lambda) -> _Binder:
        binder = cls()
        body: list[ast.stmt] | list[ast.expr]
        if isinstance(node, ast.Lambda):
            binder.bound.update(parameter_names(node.args))
            body = [node.body]
        else:
            if not isinstance(node, (ast.Module, ast.ClassDef)):
                binder.bound.update(parameter_names(node.args))
            body = node.body
        for statement in body:
            binder.visit(statement)
        # `global x` makes x the module's even where this scope assigns it.
        binder.bound -= binder.declared_global
        return binder

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.bound.add(node.id)

    def visit_Import(self, node: ast.Import) -> None:
        self.imports.append(node)
        self.bound.update(alias.asname or alias.name.partition(".")[0] for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.imports.append(node)
        for alias in node.names:
            if alias.name == "*":
                self.star = True
            else:
                self.bound.add(alias.asname or alias.name)

    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        # The name is bound here; decorators, defaults and bases run here too (a walrus in
        # one would bind here), the body belongs to the nested scope.
        self.bound.add(node.name)
        for expression in node.decorator_list:
            self.visit(expression)
        if isinstance(node, ast.ClassDef):
            for expression in [*node.bases, *(k.value for k in node.keywords)]:
                self.visit(expression)
        else:
            for expression in _defaults(node.args):
                self.visit(expression)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expression in _defaults(node.args):
            self.visit(expression)

    def _comprehension(self, node: ast.AST) -> None:
        # Only an assignment expression binds in the enclosing scope (PEP 572).
        for inner in ast.walk(node):
            if isinstance(inner, ast.NamedExpr) and isinstance(inner.target, ast.Name):
                self.bound.add(inner.target.id)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_Global(self, node: ast.Global) -> None:
        self.declared_global.update(node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bound.add(node.rest)
        self.generic_visit(node)


@dataclass(frozen=True)
class GlobalRef:
    """A name read from module scope: bound in no function enclosing the read."""

    name: str
    node: ast.Name
    attribute: ast.Attribute | None  # ``name.attr`` when the name is the base of one
    function: str | None  # the module-level function whose body holds it


class _RefWalker(ast.NodeVisitor):
    """Finds every `GlobalRef` of a module, following Python's scoping rules: comprehensions
    and lambdas are scopes, class bodies are invisible to the functions inside them, and
    decorators, defaults and a comprehension's first iterable run in the enclosing scope.
    Annotations are skipped: with postponed evaluation they never run."""

    def __init__(self) -> None:
        self.scopes: list[tuple[set[str], bool]] = []  # (bound names, is a class body)
        self.refs: list[GlobalRef] = []
        self.function: str | None = None
        self._bases: dict[int, ast.Attribute] = {}

    def _bound(self, name: str) -> bool:
        for depth, (names, is_class) in enumerate(reversed(self.scopes)):
            if is_class and depth > 0:
                continue
            if name in names:
                return True
        return False

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and not self._bound(node.id):
            self.refs.append(GlobalRef(node.id, node, self._bases.pop(id(node), None),
                                       self.function))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name):
            self._bases[id(node.value)] = node
        self.generic_visit(node)

    def _scope(self, names: set[str], body: list[ast.stmt] | list[ast.expr],
               is_class: bool = False) -> None:
        self.scopes.append((names, is_class))
        for item in body:
            self.visit(item)
        self.scopes.pop()

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for expression in [*node.decorator_list, *_defaults(node.args)]:
            self.visit(expression)
        outer = self.function
        if not self.scopes:
            self.function = node.name
        self._scope(_Binder.of(node).bound, node.body)
        self.function = outer

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expression in _defaults(node.args):
            self.visit(expression)
        self._scope(_Binder.of(node).bound, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expression in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expression)
        self._scope(_Binder.of(node).bound, node.body, is_class=True)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp
                       | ast.GeneratorExp) -> None:
        first, *rest = node.generators
        self.visit(first.iter)
        names = {target.id for generator in node.generators for target in ast.walk(generator.target)
                 if isinstance(target, ast.Name)}
        parts: list[ast.expr] = [*first.ifs]
        for generator in rest:
            parts += [generator.iter, *generator.ifs]
        if isinstance(node, ast.DictComp):
            parts += [node.key, node.value]
        else:
            parts.append(node.elt)
        self._scope(names, parts)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def visit_arg(self, node: ast.arg) -> None:
        """Parameters bind; their annotations are not run."""


@dataclass(frozen=True)
class Target:
    """What an exported or imported name stands for: a module, or a function in one."""

    module: SourceModule
    function: FunctionNode | None = None


@dataclass(eq=False)
class SourceModule:
    """One parsed module and its module-level names."""

    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    imports: dict[str, tuple[str, ast.stmt]] = field(init=False)  # name -> (origin, statement)
    assignments: dict[str, ast.Assign | ast.AnnAssign] = field(init=False)  # NAME = ... only
    functions: dict[str, FunctionNode] = field(init=False)
    defined: set[str] = field(init=False)
    # Names may exist that no statement shows (`from x import *`, a module __getattr__).
    open: bool = field(init=False)

    def __post_init__(self) -> None:
        binder = _Binder.of(self.tree)
        declared = {name for node in ast.walk(self.tree) if isinstance(node, ast.Global)
                    for name in node.names}
        self.defined = binder.bound | declared
        self.imports = {}
        for statement in binder.imports:
            for local, origin in self._import_names(statement):
                self.imports[local] = (origin, statement)
        self.assignments = {}
        self.functions = {}
        for statement in self.tree.body:
            if isinstance(statement, _FUNCTIONS):
                self.functions[statement.name] = statement
            elif isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name):
                    self.assignments[target.id] = statement
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                if isinstance(statement.target, ast.Name):
                    self.assignments[statement.target.id] = statement
        self.open = binder.star or "__getattr__" in self.functions

    @property
    def package(self) -> str:
        """The package relative imports in this module start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    def absolute(self, statement: ast.ImportFrom) -> str | None:
        """The module a ``from ... import`` statement imports from, made absolute."""
        if statement.level == 0:
            return statement.module
        parts = self.package.split(".")
        if statement.level - 1 >= len(parts):
            return None  # beyond the top-level package: the import itself fails
        base = parts[: len(parts) - (statement.level - 1)]
        return ".".join(base + ([statement.module] if statement.module else []))

    def _import_names(self, statement: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str]]:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.asname:
                    yield alias.asname, alias.name
                else:
                    head = alias.name.partition(".")[0]
                    yield head, head
            return
        source = self.absolute(statement)
        if source is None:
            return
        for alias in statement.names:
            if alias.name != "*":
                yield alias.asname or alias.name, f"{source}.{alias.name}"

    def origin_of(self, expression: ast.expr) -> str | None:
        """The absolute dotted name an expression like ``annot.meta`` or ``nmap`` refers to
        at module level: ``levrt.annot.meta``, ``lev.user.tool.nmap``."""
        if isinstance(expression, ast.Attribute):
            base = self.origin_of(expression.value)
            return f"{base}.{expression.attr}" if base else None
        if not isinstance(expression, ast.Name):
            return None
        if expression.id in self.imports:
            return self.imports[expression.id][0]
        if expression.id in self.defined:
            return f"{self.name}.{expression.id}"
        return None

    @cached_property
    def refs(self) -> list[GlobalRef]:
        """Every name the module reads from module scope, in source order."""
        walker = _RefWalker()
        walker.visit(self.tree)
        return walker.refs


def parse_module(name: str, path: Path) -> SourceModule:
    """Parse one file; raises SyntaxError (or UnicodeDecodeError, ValueError) as `ast` does."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    return SourceModule(name, path, tree, path.name == "__init__.py")


class SourceIndex:
    """The modules of a package, and of the sibling package folders of a lev-hub checkout
    (``lev.<user>.<tool>`` is looked for in ``../<user>.<tool>/``), parsed on demand."""

    def __init__(self, info: PackageInfo) -> None:
        self.info = info
        self.problems: list[Problem] = []
        self._parsed: dict[str, SourceModule | None] = {}

    def own_modules(self) -> list[SourceModule]:
        found = []
        for path in sorted(self.info.path.rglob("*.py")):
            relative = path.relative_to(self.info.root).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            if all(part.isidentifier() for part in parts):
                module = self.module(".".join(parts))
                if module is not None:
                    found.append(module)
        return found

    def _file(self, name: str) -> Path | None:
        parts = name.split(".")
        if len(parts) < 3 or parts[0] != "lev":
            return None
        if (parts[1], parts[2]) == (self.info.user, self.info.tool):
            folder = self.info.root
        else:
            folder = self.info.root.parent / f"{parts[1]}.{parts[2]}"
        base = folder.joinpath(*parts)
        for candidate in (base / "__init__.py", base.parent / f"{parts[-1]}.py"):
            if candidate.is_file():
                return candidate
        return None

    def module(self, name: str) -> SourceModule | None:
        """The parsed module ``name``, or None when it is not package source or cannot parse."""
        if name not in self._parsed:
            self._parsed[name] = self._parse(name)
        return self._parsed[name]

    def _parse(self, name: str) -> SourceModule | None:
        path = self._file(name)
        if path is None:
            return None
        try:
            return parse_module(name, path)
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
            # Only the package's own files are this check's business; a broken sibling is
            # left for its own `lev check`.
            if path.is_relative_to(self.info.path):
                if isinstance(exc, SyntaxError):
                    line, message = exc.lineno, f"cannot parse: {exc.msg}"
                else:
                    line, message = None, f"cannot read: {exc}"
                self.problems.append(Problem("error", self.info.relative(path), line, "syntax",
                                             message))
            return None

    def lookup(self, origin: str, hops: int = 0) -> Target | None:
        """What an absolute dotted name stands for, following re-exports (``from .asset
        import x`` in an ``__init__``); None when it is not package source."""
        module = self.module(origin)
        if module is not None:
            return Target(module)
        head, _, attr = origin.rpartition(".")
        module = self.module(head) if head else None
        if module is None:
            return None
        if attr in module.functions:
            return Target(module, module.functions[attr])
        if attr in module.imports and hops < _MAX_HOPS:
            return self.lookup(module.imports[attr][0], hops + 1)
        return None

    def has(self, module: SourceModule, attr: str) -> bool:
        """Whether ``module.attr`` exists: defined there, or a submodule of a package."""
        if module.open or attr in module.defined or attr in BUILTIN_NAMES:
            return True
        return module.is_package and self._file(f"{module.name}.{attr}") is not None

    def value_of(self, module: SourceModule, expression: ast.expr,
                 hops: int = 0) -> tuple[SourceModule, ast.expr]:
        """Follow a name to the expression assigned to it at module level, here or in the
        package module it is imported from (``IP = annot.Param(...)`` then ``params=[IP]``)."""
        if hops >= _MAX_HOPS or not isinstance(expression, (ast.Name, ast.Attribute)):
            return module, expression
        if isinstance(expression, ast.Name) and expression.id not in module.imports:
            statement = module.assignments.get(expression.id)
            if statement is None or statement.value is None:
                return module, expression
            return self.value_of(module, statement.value, hops + 1)
        origin = module.origin_of(expression)
        head, _, attr = (origin or "").rpartition(".")
        source = self.module(head) if head else None
        statement = source.assignments.get(attr) if source is not None else None
        if source is None or statement is None or statement.value is None:
            return module, expression
        return self.value_of(source, statement.value, hops + 1)
