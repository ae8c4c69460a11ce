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
  problem's id stays the same across imports, whatever else a folder holds: `<task>-<index>`
  (GSM8K: `gsm8k-test-<index>`) with the dataset's own index (`mot_index` of the `--gold`
  file, else `question_index` of an `*_exec_aligned.json`), else `<task>-h<hash>`: the first
  12 hex digits of the SHA-256 of the whitespace-normalised question (`-2`, ... for repeats).
  Problems with an index come first, by index; the others in the largest file's order.
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
  prompts, the question only, with a `MissingPromptsWarning` (`tts bank import-mot`: a
  warning on stderr).

A failed import leaves nothing: the bank is written to a temporary folder beside DEST and
renamed at the end; an existing DEST is replaced only with `force=True`.

Modules, one job each: `layout` (reading the folder and its files), `questions` (alignment, gold,
ids), `samples` (each file's samples and answers), `programs` (prompts and PoT programs read
with `ast`), `records` (bank records, tokens, notes), `importer` (`import_mot`, writing the
bank). `import_mot` and the public tables are re-exported here.
"""

from __future__ import annotations

from tts.mot.importer import (CREDIT, TASK_BANK_NAMES, TASK_CREDITS, TOKENIZER,
                              MissingPromptsWarning, import_mot)
from tts.mot.layout import TIER_MODELS
from tts.mot.questions import TASK_IDS

__all__ = ["CREDIT", "MissingPromptsWarning", "TASK_BANK_NAMES", "TASK_CREDITS", "TASK_IDS",
           "TIER_MODELS", "TOKENIZER", "import_mot"]
