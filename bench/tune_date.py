"""Held-out savings of tuned ladders on MoT DATE (BIG-bench date understanding, corrected gold)
-> bench/results/mot_date/.

    .venv/bin/python bench/tune_date.py [--trials 150] [--folds 5]

Bank: the bundled `tts/data/mot_date` (171 questions; Llama-2-13B, gpt-3.5-turbo and gpt-4
samples in chain-of-thought ("sample") and program-of-thought ("pot") from the logs of Yue et
al. 2023; prompt tokens from the source few-shot prompts, charged at 2023 list prices).
Folds are by scenario (a question's first sentence), so every number says what happens on
scenarios the policy never saw. Ladders: gpt-3.5-turbo > gpt-4 and Llama-2-13B >
gpt-3.5-turbo > gpt-4, each tuned with the shipped defaults of `tts tune --ladder` (the same
procedure as `tts tune --ladder gpt-3.5-turbo,gpt-4 --group-by scenario --count-prompt
--bank tts/data/mot_date`).

Writes summary.json (headline keys for the two-tier ladder, every ladder under `ladders`,
the exact command), ladders.{csv,md,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tts  # noqa: E402
from ladder_report import summarise  # noqa: E402
from tts.bank import load_bank  # noqa: E402
from tts.evaluate import BankArrays  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "mot_date"
LADDERS = (("gpt-3.5-turbo", "gpt-4"), ("llama-2-13b", "gpt-3.5-turbo", "gpt-4"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", type=Path, default=None)
    ap.add_argument("--trials", type=int, default=150)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=262144.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    bank_path = args.bank or getattr(tts, "BUNDLED_DATE_BANK", None)
    if bank_path is None or not Path(bank_path).exists():
        print("no DATE bank: pass --bank (build one with `tts bank import-mot`)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    arrays = BankArrays.from_bank(load_bank(bank_path))
    summary = {"bank": load_bank(bank_path).meta.name}
    summary.update(summarise(arrays, LADDERS, args.out, "MoT DATE", budget=args.budget,
                             folds=args.folds, group_by="scenario", trials=args.trials,
                             seeds=(1000, 1001, 1002), heldout_seeds=(0, 1, 2, 3, 4),
                             count_prompt=True))
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["command"] = "python bench/tune_date.py " + " ".join(sys.argv[1:])
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    keys = ("large_cost_share_at_large_acc", "heldout_accuracy_at_that_cost",
            "accuracy_at_60pct_large_cost", "large_greedy_accuracy")
    print(json.dumps({k: summary[k] for k in keys}, indent=1))
    print(f"wrote {args.out}/summary.json ({summary['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
