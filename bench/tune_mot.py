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
2. Cost objective at a budget that affords GPT-4 (262144 units): the cheapest plan whose
   inner held-out accuracy reaches GPT-4-greedy's, else GPT-4 alone -> held-out cost share of
   GPT-4-only and held-out accuracy (`crossfit_cost_policy.json`).
3. Held-out AUROC of each difficulty estimator (tts.difficulty.auroc_report).
4. `policy.json`: the accuracy-objective procedure run on all 300 questions (the policy to
   use with `tts solve --policy`; its expected performance is the k-fold estimate above).

Every policy comes from the one tuner (`tts.tuning.run_tune`, as `tts tune` runs it): per
outer fold the selection margin is chosen by inner cross-validation and a tuned plan is kept
over the best fixed plan only by that margin; `summary.json` records the choice per budget and
fold (training numbers) and what the deployed `policy.json` is itself expected to score
(cross-fitted) beside its in-sample numbers.

5. `feasibility`: an in-sample (optimistic, NOT held-out) check of target 1 - the whole
   accuracy/cost frontier of the plain rule "escalate to GPT-4 when the 20-sample Llama vote's
   agreement < t" over every t, and how many questions the small model gets right with high
   agreement at all.

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
from tts.strategies import Escalate, Vote
from tts.sweep import DEFAULT_BUDGETS, run_sweep
from tts.tuning import run_tune

OUT = Path(__file__).resolve().parent / "results" / "mot_gsm8k"
TRAIN_SEEDS = (1000, 1001, 1002, 1003, 1004)
EVAL_SEEDS = (0, 1, 2, 3, 4)
COST_BUDGET = 262144.0
TARGET_ACCURACY = 0.965
TARGET_COST_SHARE = 0.65


def _rule_points(agree, c_small, cost_small, c_large, cost_large, ref) -> list[dict]:
    """Accuracy and cost share of "escalate when agreement < t" for every t (seed-averaged);
    agree, c_small, cost_small are (seeds, P), c_large and cost_large (P,)."""
    points = []
    for t in sorted(set(np.unique(agree).tolist()) | {0.0}) + [math.inf]:
        esc = agree < t
        points.append({"escalate_if_agreement_below": None if math.isinf(t) else float(t),
                       "escalation_rate": float(esc.mean()),
                       "accuracy": float(np.where(esc, c_large, c_small).mean()),
                       "cost_share": float((cost_small + esc * cost_large).mean() / ref)})
    return points


def _rule_summary(points: list[dict]) -> dict:
    ok = [f for f in points if f["accuracy"] >= TARGET_ACCURACY - 1e-12]
    best = min(ok, key=lambda f: f["cost_share"]) if ok else None
    cheap = [f for f in points if f["cost_share"] <= TARGET_COST_SHARE]
    best_cheap = max(cheap, key=lambda f: f["accuracy"]) if cheap else None
    return {"least_cost_share_at_target_accuracy": None if best is None else best["cost_share"],
            "at_that_point": best,
            "best_accuracy_within_target_cost_share": None if best_cheap is None else
            best_cheap["accuracy"],
            "at_that_cost_point": best_cheap,
            "reachable_in_sample": bool(best is not None
                                        and best["cost_share"] <= TARGET_COST_SHARE)}


def feasibility(arrays: BankArrays, seeds=EVAL_SEEDS, probe_sizes=(1, 4, 8)) -> dict:
    """In-sample frontier of "escalate when the small-model vote's agreement < t".

    Per question and seeded sample order: the vote over the first k small samples (leader
    correctness, agreement = leader votes / answering samples, token cost; k = all stored
    samples for the headline, `probe_sizes` for comparison) and GPT-4 greedy's correctness and
    cost. For every threshold t (each agreement value, plus "escalate all"): accuracy and cost
    share of GPT-4-only, averaged over the seeds. t is chosen looking at the answers, so this
    is an optimistic bound for the rule, not a held-out number.
    """
    small = arrays.models["small"]
    m = arrays.mode(small, "sample")
    n = int(m.size.min())
    price = arrays.cost.of(small).output
    large = evaluate(arrays, Escalate(), 1e12, seeds)
    c_large, cost_large = large.correct.mean(0), large.cost.mean(0)
    ref = float(cost_large.mean())

    def stats(k: int):
        pre = [arrays.prefix(small, "sample", s, Vote().max_tokens) for s in seeds]
        return (np.stack([p.agreement[:, k] for p in pre]),
                np.stack([p.leader_correct[:, k] for p in pre]).astype(float),
                np.stack([p.cum_tokens[:, k] for p in pre]) * price)

    agree, c_small, cost_small = stats(n)
    # The prefix statistics at k = n are the sweep's vote@n (checked against `evaluate`).
    vote = evaluate(arrays, Vote(max_samples=n, wave=n, confidence=1.0), 1e12, seeds)
    assert np.array_equal(vote.correct, c_small.astype(bool)) and np.allclose(vote.cost,
                                                                               cost_small)
    frontier = _rule_points(agree, c_small, cost_small, c_large, cost_large, ref)
    by_probe = {}
    for k in probe_sizes:
        if k < n:
            by_probe[f"{k}_samples"] = _rule_summary(_rule_points(
                *stats(k), c_large, cost_large, ref))
    # Oracle reference: escalate exactly where the n-sample vote is wrong and GPT-4 is right.
    oracle_esc = c_large > c_small
    oracle = {"escalation_rate": float(oracle_esc.mean()),
              "accuracy": float(np.maximum(c_small, c_large).mean()),
              "cost_share": float((cost_small + oracle_esc * cost_large).mean() / ref)}
    return {
        "note": "IN-SAMPLE, OPTIMISTIC, NOT HELD-OUT: the threshold t is picked on the same "
                f"{len(arrays)} questions it is scored on. Rule: draw {n} Llama samples, vote, "
                "escalate to GPT-4 greedy when the vote's agreement < t (no answer counts as "
                "agreement 0). Cost share = mean cost (Llama samples + GPT-4 calls) / mean cost "
                f"of GPT-4 alone; averaged over sample orders {list(seeds)}.",
        "target_accuracy": TARGET_ACCURACY,
        "target_cost_share": TARGET_COST_SHARE,
        "small_samples": n,
        "small_vote_accuracy": float(c_small.mean()),
        "small_vote_cost_share": float(cost_small.mean() / ref),
        "gpt4_accuracy": float(c_large.mean()),
        **_rule_summary(frontier),
        "share_vote_right_with_agreement_ge_0.9": float(((agree >= 0.9) & (c_small > 0)).mean()),
        "share_agreement_ge_0.9": float((agree >= 0.9).mean()),
        "oracle_escalation": oracle,
        "oracle_note": f"escalate exactly the questions where the {n}-sample vote is wrong and "
                       "GPT-4 right (needs the answers; a lower bound on the cost share of any "
                       f"rule that first draws {n} samples)",
        "fewer_samples": by_probe,
        "frontier": frontier,
    }


def selection_rows(report: dict, index: int) -> dict:
    """The selection at budget `index` over the outer folds (training-question numbers) and
    what the deployed policy's plan is expected to score there (cross-fitted)."""
    r = report.get("by_budget", [report])[index]
    sel = [f["selection"] for f in r["folds_detail"]]
    return {"chosen": [s["chosen"] for s in sel],
            "baseline": [s.get("baseline") for s in sel],
            "mean_diff": [s.get("mean_diff") for s in sel],
            "se": [s.get("se") for s in sel],
            "margin": [f["margin"] for f in r["folds_detail"]],
            "deployed": {k: r["deployed"][k] for k in ("chosen", "expected_heldout",
                                                        "in_sample")}}


def ladders_only(args) -> int:
    """Add the ladder keys (the same ones as bench/tune_date.py) to summary.json."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ladder_report import summarise

    t0 = time.perf_counter()
    arrays = BankArrays.from_bank(load_bank(tts.BUNDLED_BANK))
    path = args.out / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    got = summarise(arrays, [("llama-2-13b", "gpt-4")], args.out, "MoT GSM8K",
                    budget=COST_BUDGET, folds=args.folds, group_by="question",
                    trials=args.trials, seeds=TRAIN_SEEDS, heldout_seeds=EVAL_SEEDS,
                    count_prompt=False)
    got["ladder_protocol"] = got.pop("protocol")
    got["ladder_seconds"] = round(time.perf_counter() - t0, 1)
    got["ladder_command"] = "python bench/tune_mot.py " + " ".join(sys.argv[1:])
    summary.update(got)
    path.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(json.dumps({k: got[k] for k in ("large_cost_share_at_large_acc",
                                          "heldout_accuracy_at_that_cost",
                                          "accuracy_at_60pct_large_cost",
                                          "large_greedy_accuracy")}, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, options in (
            ("--trials", dict(type=int, default=150, help="trials per study")),
            ("--folds", dict(type=int, default=5)), ("--out", dict(type=Path, default=OUT)),
            ("--se-margin", dict(type=float, default=None,
                                 help="selection margin in standard errors (default: chosen "
                                      "by inner cross-validation, as `tts tune` does)")),
            ("--storage", dict(default=None,
                               help="Optuna RDB URL to persist / resume the studies")),
            ("--ladders-only", dict(action="store_true",
                                    help="only (re)compute the ladder keys of summary.json "
                                         "(tts.tuning: llama-2-13b > gpt-4, folds by "
                                         "question) and ladders.{csv,md,png}"))):
        ap.add_argument(flag, **options)
    args = ap.parse_args()
    if args.ladders_only:
        return ladders_only(args)
    command = "python bench/tune_mot.py " + " ".join(sys.argv[1:])
    console = Console(stderr=True)
    t0 = time.perf_counter()
    bank = load_bank(tts.BUNDLED_BANK)
    arrays = BankArrays.from_bank(bank)
    budgets = list(DEFAULT_BUDGETS)
    storage = None
    if args.storage:
        from tts.tuning.studies import open_storage

        storage = open_storage(args.storage)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("tuning", total=args.trials)

        def progress(what: str, n: int) -> None:
            bar.update(task, completed=n, description=what)

        common = dict(folds=args.folds, trials=args.trials, seeds=TRAIN_SEEDS,
                      heldout_seeds=EVAL_SEEDS, count_prompt=False, margin=args.se_margin,
                      storage=storage)
        acc = run_tune(arrays, objective="accuracy", budgets=budgets,
                       study_name="mot-acc" if storage else None,
                       progress=lambda w, n: progress(f"accuracy {w}", n), **common)
        cost = run_tune(arrays, objective="cost", budgets=[COST_BUDGET],
                        study_name="mot-cost" if storage else None,
                        progress=lambda w, n: progress(f"cost {w}", n), **common)
    acc_cf, cost_cf, final = acc["crossfit"], cost["crossfit"], acc["policy"]
    acc_results, cost_results = acc["report"], cost["report"]
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
            b, "oracle").accuracy, "gap_closed": result.row(b, "policy").gap_closed,
            "selection": selection_rows(acc_results, i)})
    dominates = bool(np.all(pol >= best))
    gaps = result.gap_closed("policy")
    ttm = result.tokens_to_match("best-vote", "policy", measure="spend")

    # 2. cost at GPT-4 accuracy, held-out.
    ev = evaluate(arrays, cost_cf, COST_BUDGET, EVAL_SEEDS)
    gpt4 = evaluate(arrays, Escalate(), COST_BUDGET, EVAL_SEEDS)

    # 3. difficulty estimators.
    auc = auroc_report(arrays, folds=args.folds, probe_sizes=(1, 4, 8, 20))

    # 5. can the plain agreement rule reach target 1 at all (in-sample)?
    feas = feasibility(arrays)

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
        "cost_policy_selection": selection_rows(cost_results, 0),
        "tokens_to_match_ratio": ttm.ratio,
        "tokens_to_match": {"reference": "best vote@N (fixed-N self-consistency) peak",
                            "target_accuracy": ttm.target,
                            "reference_spend": ttm.reference_spend,
                            "policy_spend": ttm.candidate_spend, "reached": ttm.reached},
        "oracle_gap_closed_min": float(np.nanmin(gaps)) if np.isfinite(gaps).any() else None,
        "oracle_gap_closed_per_budget": [None if not math.isfinite(g) else g for g in gaps],
        "dominates_all_fixed": dominates,
        "selection_guard": {
            "rule": "the one tuner (tts.tuning): per outer fold, the margin (and for the cost "
                    "objective the cost cap) chosen by inner cross-validation; a tuned plan is "
                    "kept over the best fixed plan (top model alone; the default cascade) only "
                    "by more than that margin x SE of the paired per-question difference",
            "se_margin": args.se_margin,
            "note": "per_budget[i].selection and cost_policy_selection list one entry per fold "
                    "(training numbers, not held-out), and the deployed policy's own expected "
                    "(cross-fitted) and in-sample numbers"},
        "per_budget": per_budget,
        "feasibility": feas,
        "difficulty_auroc": auc,
        "tuning_seconds": round(tuned_s, 1),
        "command": command,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    out = Console()
    out.print_json(json.dumps({k: summary[k] for k in (
        "gpt4_cost_share_at_gpt4_acc", "heldout_accuracy_at_that_cost", "tokens_to_match_ratio",
        "oracle_gap_closed_min", "dominates_all_fixed")}, default=float))
    out.print(f"feasibility (in-sample): least cost share at accuracy >= {TARGET_ACCURACY}: "
              f"{feas['least_cost_share_at_target_accuracy']}; best accuracy at <= "
              f"{TARGET_COST_SHARE:.0%} cost: {feas['best_accuracy_within_target_cost_share']}",
              highlight=False)
    for row in per_budget:
        out.print(f"budget {row['budget']:>9,.0f}: policy {row['policy']:.3f} (spend "
                  f"{row['policy_spend']:,.0f}), best fixed {row['best_fixed']:.3f} "
                  f"({row['best_fixed_name']}), oracle {row['oracle']:.3f}; chosen "
                  f"{', '.join(row['selection']['chosen'])}", highlight=False)
    out.print(f"wrote {args.out}/summary.json ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
