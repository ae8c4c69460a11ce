"""Speed of tuning: 1,000 Optuna trials over a 1,000-problem bank (target: < 60 s on 2 cores).

The bundled 300-question MoT GSM8K bank is tiled to 1,000 problems (copies get new ids, so
their sample orders differ, as fresh questions' would). Each trial builds a policy from the
search space (`tts.tune_space.suggest_level`) and evaluates it with the vectorised evaluator over
all 1,000 problems (one seed) at a budget where escalation is possible.

    .venv/bin/python bench/tune_speed.py [--trials 1000] [--problems 1000] [--seeds 1]
    .venv/bin/python bench/tune_speed.py --ladder      # three-tier DATE ladder search

With `--ladder` the bundled MoT DATE bank (Llama-2-13B, gpt-3.5-turbo, gpt-4) is tiled instead
and the trials come from the ladder search space (`tts.tune_ladder.search`: rungs,
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
from tts.tune import tune_level
from tts.tune_space import prepare


def ladder(args) -> None:
    from tts.tune_ladder import prepare_ladder, search

    t0 = time.perf_counter()
    arrays = BankArrays.from_bank(tile_bank(load_bank(tts.BUNDLED_DATE_BANK), args.problems))
    data = prepare_ladder(arrays, ["llama-2-13b", "gpt-3.5-turbo", "gpt-4"],
                          budget=args.budget, seeds=range(args.seeds), count_prompt=True)
    setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    run = search(data, trials=args.trials)
    tuning = time.perf_counter() - t1
    out = {"trials": run.trials, "problems": len(arrays), "seeds": args.seeds, "tiers": 3,
           "setup_s": round(setup, 2), "tuning_s": round(tuning, 2),
           "ms_per_trial": round(1000 * tuning / max(run.trials, 1), 2),
           "machine": platform.platform(),
           "command": f"python bench/tune_speed.py --ladder --trials {args.trials} "
                      f"--problems {args.problems} --seeds {args.seeds}"}
    print(f"{run.trials} ladder trials (3 tiers) over {len(arrays)} problems x {args.seeds} "
          f"seed(s): {tuning:.1f} s ({out['ms_per_trial']} ms/trial; setup {setup:.1f} s)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


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
    if args.ladder:
        return ladder(args)

    t0 = time.perf_counter()
    arrays = BankArrays.from_bank(tile_bank(load_bank(tts.BUNDLED_BANK), args.problems))
    data = prepare(arrays, seeds=range(args.seeds))
    setup = time.perf_counter() - t0

    t1 = time.perf_counter()
    result = tune_level(data, args.budget, objective="accuracy", trials=args.trials,
                        sampler_seed=0)
    tuning = time.perf_counter() - t1
    out = {"trials": result.trials, "problems": len(arrays), "seeds": args.seeds,
           "setup_s": round(setup, 2), "tuning_s": round(tuning, 2),
           "ms_per_trial": round(1000 * tuning / max(result.trials, 1), 2),
           "best_train_value": result.value, "machine": platform.platform(),
           "command": "python bench/tune_speed.py " + " ".join(
               f"--{k} {v}" for k, v in (("trials", args.trials), ("problems", args.problems),
                                         ("seeds", args.seeds)))}
    print(f"{result.trials} trials over {len(arrays)} problems x {args.seeds} seed(s): "
          f"{tuning:.1f} s ({out['ms_per_trial']} ms/trial; setup {setup:.1f} s)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
