"""The samples of one MoT file with their answers in tts spelling (CoT parses, PoT results,
dates, numbers), placing the PoT runs the logs dropped as failed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from itertools import combinations
from typing import Any, Callable

from tts.answers import equivalent, extract_answer
from tts.bank import Sample
from tts.errors import BankError
from tts.mot.layout import _copy_sources, _File
from tts.mot.programs import _failure_rank

_DATE_ANY = re.compile(r"(?<!\d)(\d{1,2})/(\d{1,2})/(\d{4})(?!\d)")
_DATE_FULL = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*")
_MISSING = object()


def _file_samples(f: _File, date_task: bool, preamble: frozenset[str], keep_text: bool,
                  count: Callable[[str], int]) -> list[list[Sample]]:
    out = []
    for i, row in enumerate(f.rows):
        gen = row["generated"]
        k = f.keep if f.keep is not None and len(gen) > f.keep else len(gen)
        if len(gen) > k:
            f.stats["copies dropped"] += len(gen) - k
        if not gen:
            f.stats["rows with no generations"] += 1
        answers = _answers(f, i, row, k, date_task, preamble)
        out.append([Sample(a, count(t), t if keep_text else None)
                    for a, t in zip(answers, gen[:k])])
    return out


def _answers(f: _File, i: int, row: dict, k: int, date_task: bool,
             preamble: frozenset[str]) -> list[str | None]:
    gen = row["generated"]
    results = row.get("results")
    if f.rep == "cot":
        aligned = results is not None and len(results) == len(gen)
        out = []
        for j in range(k):
            text_answer = _last_date(gen[j]) if date_task else extract_answer(gen[j])
            if not aligned:
                out.append(text_answer)
                continue
            logged = _cot_answer(results[j], date_task)
            out.append(text_answer if logged is not None and text_answer is not None
                       and equivalent(text_answer, logged) else logged)
        f.stats["CoT rows parsed from text" if not aligned else "CoT rows"] += 1
        return out
    if f.exec_rows is not None:
        raw = f.exec_rows[i]["exec_results"][:k]
        f.stats["PoT rows from exec_aligned"] += 1
    elif results is not None and len(results) == len(gen):
        raw = results[:k]
        f.stats["PoT rows index-aligned"] += 1
    else:
        raw = _infer_failures(f, i, gen, k, results or [], preamble)
    return [_pot_answer(v, date_task) for v in raw]


def _infer_failures(f: _File, i: int, gen: list[str], k: int, results: list,
                    preamble: frozenset[str]) -> list:
    """Answers of the first k samples when `results` dropped the failed runs (see module doc)."""
    where = f"{f.path} row {i}"
    src = _copy_sources(gen, k) if len(gen) > k else list(range(len(gen)))
    if src is None:
        raise BankError(f"{where}: generations do not follow the file's copy pattern.")
    need = len(src) - len(results)
    if need < 0:
        raise BankError(f"{where}: `results` has {len(results)} answers for {len(gen)} "
                        f"generations.")
    ranks = [_failure_rank(t, preamble) for t in gen[:k]]
    times = Counter(src)
    order = sorted(range(k), key=lambda j: (-ranks[j], -j))
    chosen = None
    for n_fail in range(k + 1):
        failed = set(order[:n_fail])
        total = sum(times[j] for j in failed)
        if total == need:
            chosen = _fill(src, failed, results, k)
        if total >= need:
            break
    if chosen is None:  # the ranking's choice contradicts the copies: search every choice
        best = None
        tried = 0
        for n_fail in range(k + 1):
            for failed in combinations(range(k), n_fail):
                tried += 1
                if tried > 200_000:
                    break
                if sum(times[j] for j in failed) != need:
                    continue
                vals = _fill(src, set(failed), results, k)
                score = (sum(ranks[j] for j in failed), sum(failed))
                if vals is not None and (best is None or score > best[0]):
                    best = (score, vals)
        if best is None:
            raise BankError(f"{where}: `results` ({len(results)} answers) cannot be aligned "
                            f"with the {len(gen)} generations (order and copies disagree).")
        chosen = best[1]
    predicted = sum(r > 0 for r in ranks)
    f.stats["PoT rows with failures inferred"] += 1
    if predicted == sum(v is None for v in chosen):
        f.stats["of which the static check predicted exactly"] += 1
    return chosen


def _fill(src: list[int], failed: set[int], results: list, k: int) -> list | None:
    vals: list = [_MISSING] * k
    it = iter(results)
    for s in src:
        if s in failed:
            continue
        v = next(it)
        if vals[s] is _MISSING:
            vals[s] = v
        elif not _same_raw(vals[s], v):
            return None
    return [None if v is _MISSING else v for v in vals]


def _same_raw(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=1e-9)
    return a == b


def _pad(m: re.Match) -> str:
    return f"{int(m[1]):02d}/{int(m[2]):02d}/{m[3]}"


def _last_date(text: Any) -> str | None:
    last = None
    for last in _DATE_ANY.finditer(str(text)):
        pass
    return _pad(last) if last is not None else None


def _cot_answer(value: Any, date_task: bool) -> str | None:
    if value is None or isinstance(value, (int, float)):
        return _num(value)
    if date_task:
        return _last_date(value)
    text = str(value)
    return extract_answer(text) or text.strip() or None


def _pot_answer(value: Any, date_task: bool) -> str | None:
    if value is None or isinstance(value, (int, float)):
        return _num(value)
    text = str(value).strip()
    if date_task and (m := _DATE_FULL.fullmatch(text)):
        return _pad(m)
    return text or None


def _num(value: Any) -> str | None:
    """A logged answer as a string: integral floats lose their '.0'; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    return str(value)
