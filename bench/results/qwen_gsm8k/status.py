"""Progress of the Qwen GSM8K bank build: records, samples, tokens, accuracy and build speed
per model and mode (reads bank/samples.jsonl, or the committed samples.jsonl.gz).

    python bench/results/qwen_gsm8k/status.py [BANK]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tts.answers import equivalent
from tts.bank import load_bank

TARGET = {"sample": 300, "greedy": 300, "chain-512": 300, "chain-1024": 300, "chain-2048": 300}


def main(path: str = str(Path(__file__).parent / "bank")) -> None:
    bank = load_bank(path)
    stats = json.loads((Path(path) / "meta.json").read_text()).get("build", {}).get("stats", {})
    print(f"{'model':20} {'mode':11} {'records':>8} {'samples':>8} {'mean tok':>9} "
          f"{'acc/sample':>10} {'tok/s':>7}")
    for model in bank.models:
        for mode in bank.modes(model):
            recs = [r for (pid, m, md), r in bank.records.items() if m == model and md == mode]
            samples = [(s, bank.problems[r.problem_id].gold) for r in recs for s in r.samples]
            right = sum(s.answer is not None and gold is not None and equivalent(s.answer, gold)
                        for s, gold in samples)
            tokens = sum(s.tokens for s, _ in samples)
            speed = stats.get(model, {}).get(mode, {}).get("tokens_per_s", "")
            print(f"{model:20} {mode:11} {len(recs):>5}/{TARGET.get(mode, '?'):<3}"
                  f"{len(samples):>8} {tokens / max(len(samples), 1):>9.0f} "
                  f"{right / max(len(samples), 1):>10.3f} {speed:>7}")


if __name__ == "__main__":
    main(*sys.argv[1:])
