"""The house rules a reader can check: no import circle between the modules of `tts/` (not even
through a function-local or TYPE_CHECKING import) and no module over 600 lines.

The import graph is read with `ast`, not by importing: every `import` and `from ... import` of
a module counts, wherever it stands. `from tts.x import y` is an edge to `tts.x.y` when that is a
module, else to `tts.x`; a name a package's `__init__` re-exports is an edge to the package. A
module that uses `importlib` also imports every module it names in a string (`tts.cli` mounts
its commands that way).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600


def module_name(path: Path) -> str:
    """`tts/sweep/__init__.py` -> `tts.sweep`, `tts/cli.py` -> `tts.cli`."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package: str = "tts") -> dict[str, dict[str, int]]:
    """module -> {imported module of `package`: line of the first such import}."""
    files = {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {m: {} for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source, str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Constant) and "importlib" in source:
                targets = [node.value] if node.value in files else []
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".")[:len(mod.split(".")) - node.level + is_pkg]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            for target in targets:
                while target and target not in files:  # `import tts.x.attr` style leftovers
                    target = target.rpartition(".")[0]
                if target and target != mod:
                    graph[mod].setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def describe(graph: dict[str, dict[str, int]], comp: list[str]) -> str:
    """One concrete circle through the component, each step with the line that imports."""
    inside = set(comp)
    start = comp[0]
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                path.reverse()
                path.append(start)
                return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:])) \
                    + f" -> {start}"
            if nxt in inside and nxt not in parent and nxt != start:
                parent[nxt] = node
                queue.append(nxt)
    return ", ".join(comp)  # unreachable for a real component


def test_graph_reads_every_kind_of_import():
    """The reader sees top-level, function-local, submodule and importlib imports (a check of
    the check)."""
    g = import_graph()
    assert "tts.engine" in g["tts"]  # top level
    assert "tts.backends.replay" in g["tts"]  # inside replay_engine()
    assert "tts.sweep.report" in g["tts.sweep.result"]  # inside SweepResult.write()
    assert "tts.sweep" in g["tts.cli"]  # EXTRA_COMMANDS, mounted with importlib


def test_cycle_finder_finds_a_planted_circle():
    g = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert cycles(g) == [["a", "b", "c"]]
    assert describe(g, ["a", "b", "c"]) == "a (line 1) -> b (line 2) -> c (line 3) -> a"
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_cycles_in_tts():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import circles in tts/:\n" + "\n".join(
        f"  {len(c)} modules {c}:\n    {describe(graph, c)}" for c in found)


def test_no_module_over_600_lines():
    long = sorted((n, str(p.relative_to(ROOT))) for folder in ("tts", "bench")
                  for p in (ROOT / folder).rglob("*.py")
                  if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES)
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(f"{p} ({n})"
                                                                   for n, p in long)
