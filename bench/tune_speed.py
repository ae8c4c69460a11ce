"""Speed of tuning: 1,000 Optuna trials over a 1,000-problem bank (target: < 60 s on 2 cores).

The bundled 300-question MoT GSM8K bank is tiled to 1,000 problems (copies get new ids, so
their sample orders differ, as fresh questions' would). Each trial builds a policy from the
search space of the one tuner (`tts.tuning.space.suggest_rungs`: the small model's vote and its
climb rule, the large model's rung) and evaluates it with the vectorised evaluator over all
1,000 problems (one seed) at a budget where escalation is possible.

    .venv/bin/python bench/tune_speed.py [--trials 1000] [--problems 1000] [--seeds 1]
    .venv/bin/python bench/tune_speed.py --ladder      # three-tier DATE ladder search

With `--ladder` the bundled MoT DATE bank (Llama-2-13B, gpt-3.5-turbo, gpt-4) is tiled instead
and the trials come from the three-tier search space (`tts.tuning.search`: rungs,
representations, mixture-of-thought checks, climb rules), prompts charged.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import tts
from tts.bank import load_bank
from tts.evaluate import BankArrays, tile_bank
from tts.tuning.data import prepare_ladder
from tts.tuning.search import search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--problems", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--budget", type=float, default=262144.0)
    ap.add_argument("--out", type=Path, default=None, help="also write the timing as JSON")
    ap.add_argument("--ladder", action="store_true",
                    help="time the three-tier ladder search on the DATE bank")
    args = ap.parse_args()
    bank, models = (tts.BUNDLED_DATE_BANK, ["llama-2-13b", "gpt-3.5-turbo", "gpt-4"]) \
        if args.ladder else (tts.BUNDLED_BANK, ["llama-2-13b", "gpt-4"])
    t0 = time.perf_counter()
    arrays = BankArrays.from_bank(tile_bank(load_bank(bank), args.problems))
    data = prepare_ladder(arrays, models, budget=args.budget, seeds=range(args.seeds),
                          count_prompt=args.ladder)
    setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    run = search(data, trials=args.trials)
    tuning = time.perf_counter() - t1
    out = {"trials": run.trials, "problems": len(arrays), "seeds": args.seeds,
           "tiers": len(models), "setup_s": round(setup, 2), "tuning_s": round(tuning, 2),
           "ms_per_trial": round(1000 * tuning / max(run.trials, 1), 2),
           "machine": platform.platform(),
           "command": f"python bench/tune_speed.py {'--ladder ' if args.ladder else ''}"
                      f"--trials {args.trials} --problems {args.problems} --seeds {args.seeds}"}
    print(f"{run.trials} trials ({len(models)} tiers) over {len(arrays)} problems x "
          f"{args.seeds} seed(s): {tuning:.1f} s ({out['ms_per_trial']} ms/trial; setup "
          f"{setup:.1f} s)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
