"""Reading a MoT results folder: which tier folders and files it holds, their rows, and the
copied samples some logs list again (detected, `keep`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tts.budgets import MOT_USD
from tts.errors import BankError, UnknownNameError
from tts.files import read_json_file


TIER_MODELS = {"llama2_13b_result": "llama-2-13b", "gpt3_result": "gpt-3.5-turbo",
               "gpt4_result": "gpt-4"}
"""Tier folder (lower case) -> model name; other folders get a name derived from theirs."""
_FILE = re.compile(r"(?P<stem>.+?)_(?P<greedy>greedy_)?(?P<rep>cot|pot)(?P<prompt>[12])\.json",
                   re.IGNORECASE)
_EXPECTED = ("tier folders such as llama2_13B_result/, GPT3_result/, GPT4_result/ holding "
             "<task>_cot1.json, <task>_pot2.json, <task>_greedy_cot1.json, ... ({cot,pot}{1,2}, "
             "optional <file>_exec_aligned.json) and optionally source/<task>.py")


@dataclass
class _File:
    path: Path
    model: str
    rep: str  # "cot" | "pot"
    prompt: int  # 1 | 2
    greedy: bool
    rows: list[dict] = field(default_factory=list)
    exec_rows: list[dict] | None = None
    keep: int | None = None  # distinct samples per row when the file lists copies
    stats: Counter = field(default_factory=Counter)


def _scan(src: Path, task: str | None) -> tuple[str, list[_File], list[str]]:
    if not src.is_dir():
        raise BankError(f"{src} is not a folder, so it does not look like the MoT results layout: "
                        f"expected {_EXPECTED}.")
    found: dict[Path, list[tuple[re.Match, Path]]] = {}
    for tier in sorted(p for p in src.iterdir() if p.is_dir() and p.name != "source"):
        hits = [(m, p) for p in sorted(tier.glob("*.json")) if (m := _FILE.fullmatch(p.name))]
        if hits:
            found[tier] = hits
    if not found:
        listing = sorted(p.name + ("/" if p.is_dir() else "") for p in src.iterdir())[:20]
        raise BankError(f"{src} does not look like the MoT results layout: expected {_EXPECTED}; "
                        f"found {listing}.")
    stems = {m["stem"].lower() for hits in found.values() for m, _ in hits}
    if task is None:
        roots = sorted(s for s in stems if not any(s.startswith(o + "_") for o in stems))
        if len(roots) != 1:
            raise BankError(f"{src} holds several tasks {roots}; choose one with --task.")
        task = roots[0]
    task = task.lower()
    files: list[_File] = []
    skipped: list[str] = []
    models: dict[str, Path] = {}
    for tier, hits in found.items():
        mine = [(m, p) for m, p in hits
                if m["stem"].lower() == task or m["stem"].lower().startswith(task + "_")]
        if not mine:
            continue
        model = _model_name(tier.name)
        if model in models:
            raise BankError(f"tier folders {models[model]} and {tier} both map to model "
                            f"{model!r}.")
        models[model] = tier
        try:
            MOT_USD.of(model)
        except UnknownNameError:
            raise BankError(f"no price for model {model!r} (tier folder {tier}): add it to "
                            f"MOT_USD in tts/budgets/cost.py (known: "
                            f"{sorted(MOT_USD.models)}).") from None
        for m, p in mine:
            f = _File(p, model, m["rep"].lower(), int(m["prompt"]), bool(m["greedy"]))
            ex = p.with_name(p.stem + "_exec_aligned.json")
            if ex.exists():
                f.exec_rows = []  # loaded with the file
            files.append(f)
        used = {p for _, p in mine} | {f.path.with_name(f.path.stem + "_exec_aligned.json")
                                       for f in files}
        skipped += [f"{tier.name}/{p.name}" for p in sorted(tier.glob("*.json"))
                    if p not in used and p.name.lower().startswith(task + "_")]
    if not files:
        raise BankError(f"{src} has no files of task {task!r}; tasks found: {sorted(stems)}.")
    return task, files, skipped


def _model_name(folder: str) -> str:
    key = folder.lower()
    if key in TIER_MODELS:
        return TIER_MODELS[key]
    name = re.sub(r"[_-]?results?$", "", key)
    return re.sub(r"[_\s]+", "-", name).strip("-") or key


def _load_file(f: _File) -> None:
    rows: Any = read_json_file(f.path)
    if not isinstance(rows, list):
        raise BankError(f"{f.path}: expected a JSON list of rows, got {type(rows).__name__}.")
    for i, row in enumerate(rows):
        where = f"{f.path} row {i}"
        if not isinstance(row, dict):
            raise BankError(f"{where}: expected an object, got {type(row).__name__}.")
        if not isinstance(row.get("question"), str) or not row["question"].strip():
            raise BankError(f"{where}: `question` must be a non-empty string.")
        gen = row.get("generated")
        if not isinstance(gen, list) or not all(isinstance(t, str) for t in gen):
            raise BankError(f"{where}: `generated` must be a list of strings.")
        if "results" in row and not isinstance(row["results"], list):
            raise BankError(f"{where}: `results` must be a list.")
    f.rows = rows
    if f.exec_rows is not None:
        ex_path = f.path.with_name(f.path.stem + "_exec_aligned.json")
        ex: Any = read_json_file(ex_path)
        if not isinstance(ex, list) or len(ex) != len(rows):
            raise BankError(f"{ex_path}: expected a list with one entry per row of {f.path} "
                            f"({len(rows)}), got {len(ex) if isinstance(ex, list) else ex!r}.")
        for i, (e, row) in enumerate(zip(ex, rows)):
            if not isinstance(e, dict) or not isinstance(e.get("exec_results"), list) \
                    or len(e["exec_results"]) != len(row["generated"]):
                raise BankError(f"{ex_path} row {i}: `exec_results` must list one answer per "
                                f"generation of {f.path} row {i} "
                                f"({len(row['generated'])}).")
            qi = e.get("question_index")
            if qi is not None and (not isinstance(qi, int) or isinstance(qi, bool) or qi < 0):
                raise BankError(f"{ex_path} row {i}: `question_index` must be an integer >= 0, "
                                f"got {qi!r}.")
        f.exec_rows = ex
    f.keep = _copy_prefix([row["generated"] for row in rows])


def _copy_prefix(rows: list[list[str]]) -> int | None:
    """k when every row is its first k samples followed by runs copying a prefix of them."""
    longest = max((len(g) for g in rows), default=0)
    for k in range(2, longest):
        evidence = False
        for g in rows:
            if len(g) <= k:
                continue
            src = _copy_sources(g, k)
            if src is None:
                break
            evidence |= len(g) > k + 1 and src[k + 1] == 1 and len(set(g[:k])) >= 2
        else:
            if evidence:
                return k
    return None


def _copy_sources(g: list[str], k: int) -> list[int] | None:
    """For each listed sample, the index among the first k that it copies (itself if < k)."""
    n = len(g)
    src = list(range(min(k, n)))
    if n <= k:
        return src
    longest = [0] * n  # longest run at each position that copies g[0:run]
    for pos in range(k, n):
        while pos + longest[pos] < n and longest[pos] < k \
                and g[pos + longest[pos]] == g[longest[pos]]:
            longest[pos] += 1
    done = [False] * (n + 1)  # done[pos]: g[pos:] splits into copied runs
    done[n] = True
    for pos in range(n - 1, k - 1, -1):
        done[pos] = any(done[pos + run] for run in range(1, longest[pos] + 1))
    if not done[k]:
        return None
    pos = k
    while pos < n:  # the longest runs that still split the rest
        run = next(r for r in range(longest[pos], 0, -1) if done[pos + r])
        src.extend(range(run))
        pos += run
    return src
