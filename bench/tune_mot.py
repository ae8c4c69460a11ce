"""Held-out results of the tuned policy on the MoT GSM8K bank -> bench/results/mot_gsm8k/.

    .venv/bin/python bench/tune_mot.py [--trials 150] [--folds 5]

Every number is held-out: 5-fold by question, each fold's policy tuned (difficulty models
fitted and Optuna study run) on the other 240 questions with training seeds 1000-1002, and
evaluated on its 60 questions with seeds 0-4 (the sweep's). The cross-fitted policy answers
each question with the fold policy that never saw it, so evaluating it over all 300 questions
is the k-fold estimate. Steps:

1. Accuracy objective, one level per sweep budget (512 .. 524288) -> `crossfit_policy.json`,
   then `tts.sweep.run_sweep` of every fixed strategy, this policy and the oracle ->
   `policy_sweep.{csv,png,md}`; dominance, gap closed to the oracle, tokens-to-match.
2. Cost objective at a budget that affords GPT-4 (262144 units): min mean cost subject to
   accuracy >= GPT-4-greedy's accuracy on the training questions -> held-out cost share of
   GPT-4-only and held-out accuracy (`crossfit_cost_policy.json`).
3. Held-out AUROC of each difficulty estimator (tts.difficulty.auroc_report).
4. `policy.json`: the accuracy-objective procedure run on all 300 questions (the policy to
   use with `tts solve --policy`; its expected performance is the k-fold estimate above).

Writes `summary.json` with the headline numbers and this command. Prices: the bank's $ list
prices (Llama-2-13B $0.25/M, GPT-4 $30/M prompt, $60/M completion) in Llama-token units;
prompt tokens are not charged (as in the sweep).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import tts
from tts.bank import load_bank
from tts.difficulty import auroc_report
from tts.evaluate import BankArrays, evaluate
from tts.strategies import Escalate
from tts.sweep import DEFAULT_BUDGETS, run_sweep
from tts.tune import crossfit, prepare, tune_policy

OUT = Path(__file__).resolve().parent / "results" / "mot_gsm8k"
TRAIN_SEEDS = (1000, 1001, 1002, 1003, 1004)
EVAL_SEEDS = (0, 1, 2, 3, 4)
COST_BUDGET = 262144.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=150, help="trials per study")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--storage", default=None,
                    help="Optuna RDB URL to persist / resume the studies")
    args = ap.parse_args()
    command = "python bench/tune_mot.py " + " ".join(sys.argv[1:])
    console = Console(stderr=True)
    t0 = time.perf_counter()
    bank = load_bank(tts.BUNDLED_BANK)
    arrays = BankArrays.from_bank(bank)
    budgets = list(DEFAULT_BUDGETS)
    storage = None
    if args.storage:
        from tts.tune import open_storage

        storage = open_storage(args.storage)

    n_studies = args.folds * (len(budgets) + 1) + len(budgets)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("tuning", total=n_studies * args.trials)
        done: dict[str, int] = {}

        def progress(what: str, n: int) -> None:
            done[what] = n
            bar.update(task, completed=sum(done.values()), description=what)

        acc_cf, _ = crossfit(arrays, budgets, folds=args.folds, objective="accuracy",
                             trials=args.trials, seeds=TRAIN_SEEDS, storage=storage,
                             study_prefix="mot-acc" if storage else None,
                             progress=lambda w, n: progress(f"accuracy {w}", n))
        cost_cf, _ = crossfit(arrays, [COST_BUDGET], folds=args.folds, objective="cost",
                              trials=args.trials, seeds=TRAIN_SEEDS, storage=storage,
                              study_prefix="mot-cost" if storage else None,
                              progress=lambda w, n: progress(f"cost {w}", n))
        data_all = prepare(arrays, seeds=TRAIN_SEEDS)
        final, _ = tune_policy(data_all, budgets, objective="accuracy", trials=args.trials,
                               storage=storage, study_prefix="mot-all" if storage else None,
                               progress=lambda w, n: progress(f"all questions {w}", n),
                               notes={"train_ids": list(arrays.problem_ids),
                                      "objective": "accuracy per sweep budget",
                                      "note": "tuned on all 300 questions; its expected "
                                              "performance is the 5-fold estimate in "
                                              "summary.json"})
    tuned_s = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "crossfit_policy.json").write_text(json.dumps(acc_cf.to_dict(), indent=1) + "\n")
    (args.out / "crossfit_cost_policy.json").write_text(
        json.dumps(cost_cf.to_dict(), indent=1) + "\n")
    final.to_json(args.out / "policy.json")

    # 1. sweep with the cross-fitted policy: every question held-out.
    result = run_sweep(bank, budgets, policy=acc_cf, seeds=list(EVAL_SEEDS), bootstrap=200,
                       progress=True)
    result.write(args.out, command=command + "  (sweep of crossfit_policy.json; same as `tts "
                 "sweep --policy bench/results/mot_gsm8k/crossfit_policy.json`)",
                 stem="policy_sweep")
    pol = result.curve("policy")["accuracy"]
    best = result.best_fixed()
    per_budget = []
    for i, b in enumerate(budgets):
        fixed = {n: result.row(b, n).accuracy for n in result.fixed_names}
        per_budget.append({"budget": b, "policy": pol[i], "policy_spend": result.row(
            b, "policy").spend_mean, "best_fixed": best[i],
            "best_fixed_name": max(fixed, key=fixed.get), "oracle": result.row(
            b, "oracle").accuracy, "gap_closed": result.row(b, "policy").gap_closed})
    dominates = bool(np.all(pol >= best))
    gaps = result.gap_closed("policy")
    ttm = result.tokens_to_match("best-vote", "policy", measure="spend")

    # 2. cost at GPT-4 accuracy, held-out.
    ev = evaluate(arrays, cost_cf, COST_BUDGET, EVAL_SEEDS)
    gpt4 = evaluate(arrays, Escalate(), COST_BUDGET, EVAL_SEEDS)

    # 3. difficulty estimators.
    auc = auroc_report(arrays, folds=args.folds, probe_sizes=(1, 4, 8, 20))

    summary = {
        "bank": "mot_gsm8k (300 GSM8K test questions; Llama-2-13B 20 samples, GPT-4 greedy)",
        "protocol": f"{args.folds}-fold by question; tuned on train folds with seeds "
                    f"{list(TRAIN_SEEDS)}; every number below on held-out questions with seeds "
                    f"{list(EVAL_SEEDS)}; {args.trials} Optuna trials per study",
        "gpt4_cost_share_at_gpt4_acc": ev.mean_cost / gpt4.mean_cost,
        "heldout_accuracy_at_that_cost": ev.accuracy,
        "gpt4_only_accuracy": gpt4.accuracy,
        "gpt4_only_mean_cost": gpt4.mean_cost,
        "cost_policy_escalation_rate": ev.escalation_rate,
        "cost_policy_budget": COST_BUDGET,
        "tokens_to_match_ratio": ttm.ratio,
        "tokens_to_match": {"reference": "best vote@N (fixed-N self-consistency) peak",
                            "target_accuracy": ttm.target,
                            "reference_spend": ttm.reference_spend,
                            "policy_spend": ttm.candidate_spend, "reached": ttm.reached},
        "oracle_gap_closed_min": float(np.nanmin(gaps)) if np.isfinite(gaps).any() else None,
        "oracle_gap_closed_per_budget": [None if not math.isfinite(g) else g for g in gaps],
        "dominates_all_fixed": dominates,
        "per_budget": per_budget,
        "difficulty_auroc": auc,
        "tuning_seconds": round(tuned_s, 1),
        "command": command,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    out = Console()
    out.print_json(json.dumps({k: summary[k] for k in (
        "gpt4_cost_share_at_gpt4_acc", "heldout_accuracy_at_that_cost", "tokens_to_match_ratio",
        "oracle_gap_closed_min", "dominates_all_fixed")}, default=float))
    for row in per_budget:
        out.print(f"budget {row['budget']:>9,.0f}: policy {row['policy']:.3f} (spend "
                  f"{row['policy_spend']:,.0f}), best fixed {row['best_fixed']:.3f} "
                  f"({row['best_fixed_name']}), oracle {row['oracle']:.3f}", highlight=False)
    out.print(f"wrote {args.out}/summary.json ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
