"""The package's architecture, checked: imports point down a fixed order of floors, and no
module imports (even inside a function) one that imports it back."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "tfkip"

FLOORS = (
    ("tfkip", "tfkip.files", "tfkip.checks"),
    ("tfkip.runtime",),
    ("tfkip.kernels",),
    ("tfkip.architectures",),
    ("tfkip.finite",),
    ("tfkip.data",),
    ("tfkip.kip",),
    ("tfkip.viz",),
    ("tfkip.sets",),
    ("tfkip.train",),
    ("tfkip.transfer",),
    ("tfkip.evaluate",),
)
"""Bottom to top; a module may import its own unit and the units of lower floors only."""


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(path: pathlib.Path) -> set[str]:
    """tfkip modules that ``path`` imports anywhere in its body (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "tfkip")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "tfkip":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
    units = [u for floor in FLOORS for u in floor if module == u or module.startswith(u + ".")]
    return max(units, key=len)


def _floor(unit: str) -> int:
    return next(i for i, floor in enumerate(FLOORS) if unit in floor)


def test_every_module_has_a_floor():
    assert all(_unit(m) for m in MODULES)
    assert "tfkip.kernels.network" in GRAPH and "tfkip.evaluate" in GRAPH  # the walk found them


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    unit = _unit(module)
    upward = [
        f"{module} -> {target}"
        for target in sorted(GRAPH[module])
        if _unit(target) != unit and _floor(_unit(target)) >= _floor(unit)
    ]
    assert not upward, upward


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk of ``graph`` closes, as a list of modules."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_no_import_cycle():
    assert not _cycles(GRAPH), [" -> ".join(c) for c in _cycles(GRAPH)]


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path):
    """The walk itself: a function-level upward import and a two-module cycle are found."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from tfkip.train.loop import KIPTrainer\n")
    assert _imports(source) == {"tfkip.train.loop"}
    assert _floor(_unit("tfkip.train.loop")) > _floor(_unit("tfkip.kernels.network"))
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
