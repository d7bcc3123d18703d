"""No import cycles among the package's modules, read from the source with `ast`.

Every `import` statement counts: at module level, inside functions (the lazy imports that keep
start-up fast) and under `if TYPE_CHECKING:`. A function-level import runs later, but if it closes
a loop the two modules still each know the other, and only the timing of the import hides it; the
layers (settings -> ingest/ -> index/ -> answer/ -> assistant -> chat -> serve/, eval/ beside)
must be readable from the imports alone. What a module needs from a higher one comes in through
its arguments instead (e.g. `chat.AssistantLike`). Importing `assistant.x` also runs
`assistant/__init__.py`, but that implicit parent import is not an edge here: `__init__` re-exports
the public API and every module is below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "assistant"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports anywhere in its file."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            # `from . import x` and `from .eval import run` name modules; `from .x import y` a module's attribute
            targets = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target for alias in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != module)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walker_sees_every_kind_of_import():
    graph = import_graph()
    assert "assistant.settings" in graph["assistant.answer.llm"]  # module level, relative
    assert "assistant.eval.cli" in graph["assistant.serve.cli"]  # inside a function
    assert "assistant.assistant" in graph["assistant"]  # `from .assistant import Assistant` in __init__
    assert {"assistant.eval.golden", "assistant.eval.run"} <= graph["assistant.eval.cli"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (move the shared piece down a layer): " + "; ".join(" <-> ".join(c) for c in found)
