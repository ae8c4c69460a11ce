"""What MoT's prompts and PoT programs say, read with `ast` and never run: the few-shot
prefixes, the names the prompts import, and how likely a program is to have failed.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

from tts.errors import BankError
from tts.files import read_file


def _read_prompts(src: Path, task: str) -> dict[tuple[str, int], str]:
    """Few-shot prefixes `<task>_{CoT,PoT}{k}_prompting` from source/*.py, read with ast."""
    folder = src / "source"
    if not folder.is_dir():
        return {}
    candidates = [folder / f"{task}.py"] + sorted(p for p in folder.glob("*.py")
                                                  if p.name != f"{task}.py")
    name = re.compile(rf"{re.escape(task)}_(cot|pot)(\d)_prompting", re.IGNORECASE)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            tree = ast.parse(read_file(path).decode("utf-8"), filename=str(path))
        except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
            raise BankError(f"{path}: cannot be parsed for prompts ({exc}).") from None
        out = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name) \
                    and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str) \
                    and (m := name.fullmatch(node.targets[0].id)):
                out[(m[1].lower(), int(m[2]))] = node.value.value
        if out:
            return out
    return {}


def _prompt_imports(prompts: dict[tuple[str, int], str]) -> frozenset[str]:
    """Names the PoT prompts import: their programs may use them without importing."""
    names: set[str] = set()
    for (rep, _), text in prompts.items():
        if rep != "pot":
            continue
        for line in text.splitlines():
            m = re.match(r"\s*(?:from\s+[\w.]+\s+)?import\s+(.+)", line)
            if m:
                for part in m[1].split(","):
                    bits = part.split()
                    if bits:
                        names.add((bits[-1] if "as" in bits else bits[0]).split(".")[0])
    return frozenset(names)


_BUILTINS = frozenset(dir(builtins))


def _failure_rank(code: str, preamble: frozenset[str]) -> int:
    """3: does not parse; 2: never assigns `ans`; 1: reads an undefined name; 0: may run.

    Static only (`ast.parse`): model code is never executed.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return 3
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, ast.MatchAs) and node.name:
            bound.add(node.name)
    if "ans" not in bound:
        return 2
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) \
                and node.id not in bound and node.id not in _BUILTINS \
                and node.id not in preamble:
            return 1
    return 0
