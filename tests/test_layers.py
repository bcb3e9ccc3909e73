"""Layers point one way (docs/client.md): every import of every module under src/levrt, read
with ``ast`` (those inside functions and ``if TYPE_CHECKING:`` too), against the rules

- the core (everything but the CLI, ``levrt.server``, ``levrt.client``, ``levrt.agent``)
  imports none of those four;
- the server imports no CLI or agent module, an agent no CLI or server module (what both
  need, such as what a container engine holds, is in the core), the client neither the
  CLI, the server nor an agent;
- the CLI speaks HTTP only through ``levrt.client``;
- no import circle runs through the CLI, the server or the client.

A failure names each offending import as ``file:line``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
HTTP_LIBRARIES = ("httpx", "urllib.request", "http.client", "requests", "aiohttp")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted((SRC / "levrt").rglob("*.py"))}


def band(module: str) -> str:
    """``cli``, ``server``, ``client``, ``agent`` or ``core``."""
    parts = module.split(".")
    if len(parts) > 1 and (parts[1].startswith("_cli") or parts[1] == "__main__"):
        return "cli"
    if len(parts) > 1 and parts[1] in ("server", "client", "agent"):
        return parts[1]
    return "core"


def imports(module: str) -> list[tuple[str, int]]:
    """``(imported module, line)`` for each import in ``module``, relative ones resolved; a
    ``from package import name`` counts as importing ``package.name`` when that is a module."""
    return sorted(set(_imports(module)), key=lambda found: (found[1], found[0]))


def _imports(module: str) -> Iterator[tuple[str, int]]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                name = f"{base}.{alias.name}"
                yield (name if name in MODULES else base), node.lineno


def where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(SRC.parent)}:{line}"


FORBIDDEN = {
    "core": ("cli", "server", "client", "agent"),
    "server": ("cli", "agent"),
    "client": ("cli", "server", "agent"),
    "agent": ("cli", "server"),
}


def test_layers_point_one_way():
    wrong = [f"{where(module, line)} imports {target}: the {band(module)} imports no "
             f"{band(target)} module"
             for module in MODULES for target, line in imports(module)
             if target.split(".")[0] == "levrt"
             and band(target) in FORBIDDEN.get(band(module), ())]
    assert not wrong, "\n".join(wrong)


def test_the_cli_speaks_http_only_through_the_client():
    wrong = [f"{where(module, line)} imports {target}: use levrt.client"
             for module in MODULES if band(module) == "cli"
             for target, line in imports(module)
             if target.startswith(HTTP_LIBRARIES)]
    assert not wrong, "\n".join(wrong)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_runs_through_the_cli_server_or_client():
    graph = {module: {target for target, _ in imports(module) if target in MODULES}
             for module in MODULES}
    wrong = [component for component in circles(graph)
             if any(band(module) != "core" for module in component)]
    assert not wrong, "import circles: " + "; ".join(" <-> ".join(c) for c in wrong)


@pytest.mark.parametrize("module, band_name", [
    ("levrt._cli", "cli"), ("levrt._cli_tasks", "cli"), ("levrt.__main__", "cli"),
    ("levrt.server.tasks", "server"), ("levrt.client", "client"), ("levrt.agent.x", "agent"),
    ("levrt._job_json", "core"), ("levrt.store._store", "core"), ("levrt", "core"),
])
def test_bands(module, band_name):
    assert band(module) == band_name


def test_the_reader_resolves_relative_and_from_imports():
    found = {target for target, _ in imports("levrt._cli")}
    assert {"levrt._cli_hub", "levrt._cli_base", "levrt.store", "levrt.client"} <= found
    assert "levrt._job_json" in {target for target, _ in imports("levrt.server.tasks")}
