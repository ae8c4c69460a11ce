"""Questions across the files of a MoT folder: aligned by text, their gold answers (and
`--gold` overrides), and problem ids.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tts.answers import equivalent
from tts.errors import BankError
from tts.files import read_file
from tts.mot.layout import _File
from tts.mot.samples import _DATE_FULL, _num, _pad

TASK_IDS = {"gsm": "gsm8k-test"}
"""Task -> problem id prefix (default: the task name)."""


@dataclass
class _Question:
    text: str
    gold: str | None = None
    gold_from: str = ""
    index: int | None = None
    occurrence: int = 0  # earlier rows of the same file with the same text
    id: str = ""
    rows: dict[int, int] = field(default_factory=dict)  # id(_File) -> row


def _norm(text: str) -> str:
    return " ".join(text.split())


def _align(files: list[_File]) -> list[_Question]:
    """Questions across all files, keyed by normalised text and occurrence."""
    by_key: dict[tuple[str, int], _Question] = {}
    for f in sorted(files, key=lambda f: -len(f.rows)):  # the largest file orders them
        seen: Counter = Counter()
        for i, row in enumerate(f.rows):
            text = _norm(row["question"])
            key = (text, seen[text])
            seen[text] += 1
            q = by_key.setdefault(key, _Question(row["question"], occurrence=key[1]))
            q.rows[id(f)] = i
            gold = _gold_of(row.get("answer"), f"{f.path} row {i}")
            if gold is None:
                continue
            if q.gold is None:
                q.gold, q.gold_from = gold, f"{f.path} row {i}"
            elif not _same_gold(q.gold, gold):
                raise BankError(f"{f.path} row {i} has gold {gold!r} but {q.gold_from} has "
                                f"{q.gold!r} for the same question {q.text[:80]!r}.")
    return list(by_key.values())


def _same_gold(a: str, b: str) -> bool:
    return a == b or equivalent(a, b)


def _gold_of(value: Any, where: str) -> str | None:
    if isinstance(value, dict):  # BIG-bench multiple choice: {"MM/DD/YYYY": 0|1}
        keys = [k for k, v in value.items() if v == 1]
        if len(keys) != 1:
            raise BankError(f"{where}: `answer` dict must mark exactly one key with 1, got "
                            f"{value!r}.")
        value = keys[0]
    if isinstance(value, str):
        m = _DATE_FULL.fullmatch(value)
        return _pad(m) if m else (value.strip() or None)
    return _num(value)


def _apply_gold(questions: list[_Question], files: list[_File], path: Path | None,
                notes: list[str]) -> None:
    if path is None:
        return
    by_key = {}
    seen: Counter = Counter()
    for q in questions:
        text = _norm(q.text)
        by_key[(text, seen[text])] = q
        seen[text] += 1
    raw = read_file(path, what=f"gold file {path}")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BankError(f"gold file {path}: not UTF-8 text (byte {exc.start}).") from None
    matched = changed = kept = 0
    indices: dict[int, _Question] = {}
    seen = Counter()
    n_rows = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        n_rows += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BankError(f"{path}:{lineno}: not valid JSON ({exc.msg}).") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) \
                or "gold_corrected" not in row:
            raise BankError(f"{path}:{lineno}: expected an object with `question` and "
                            f"`gold_corrected` (null keeps the logged label).")
        text = _norm(row["question"])
        q = by_key.get((text, seen[text]))
        seen[text] += 1
        if q is None:
            continue
        matched += 1
        index = row.get("mot_index")
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            if index in indices:
                raise BankError(f"{path}:{lineno}: mot_index {index} is used twice.")
            indices[index] = q
        new = _gold_of(row["gold_corrected"], f"{path}:{lineno}")
        if new is None:
            kept += 1
        elif q.gold is None or not _same_gold(q.gold, new):
            q.gold, q.gold_from = new, f"{path}:{lineno}"
            changed += 1
        else:
            q.gold_from = f"{path}:{lineno}"
    if matched == 0:
        first = next((json.loads(ln).get("question", "") for ln in lines if ln.strip()), "")
        raise BankError(f"gold file {path} matches no question of the MoT files ({n_rows} gold "
                        f"rows, {len(questions)} questions; first gold question "
                        f"{str(first)[:80]!r}).")
    for index, q in indices.items():
        q.index = index
    notes.append(f"Gold from {path.name}: {matched} of {len(questions)} questions matched "
                 f"({n_rows} rows), {changed} labels changed, {kept} kept (null).")


def _assign_ids(task: str, questions: list[_Question], files: list[_File]) -> None:
    """Ids that stay the same whatever else a folder holds: `<prefix>-<index>` with the
    dataset's own index (`mot_index` of the gold file, else `question_index` of an
    `*_exec_aligned.json`), else `<prefix>-h<hash>` of the whitespace-normalised question text
    (`-2`, `-3`, ... for its repeats). Indexed questions come first, by index."""
    by_exec: dict[tuple[int, int], int] = {}
    for f in files:
        for i, e in enumerate(f.exec_rows or []):
            if isinstance(e.get("question_index"), int):
                by_exec[id(f), i] = e["question_index"]
    for q in questions:
        if q.index is None:
            q.index = next((by_exec[(fid, row)] for fid, row in q.rows.items()
                            if (fid, row) in by_exec), None)
    prefix = TASK_IDS.get(task, task)
    owner: dict[int, _Question] = {}
    for q in questions:
        if q.index is None:
            digest = hashlib.sha256(_norm(q.text).encode("utf-8")).hexdigest()[:12]
            q.id = f"{prefix}-h{digest}" + (f"-{q.occurrence + 1}" if q.occurrence else "")
            continue
        if q.index in owner:
            raise BankError(f"questions {owner[q.index].text[:60]!r} and {q.text[:60]!r} both "
                            f"have index {q.index}.")
        owner[q.index] = q
        q.id = f"{prefix}-{q.index}"
    questions.sort(key=lambda q: (q.index is None, q.index or 0))  # stable: text order kept
