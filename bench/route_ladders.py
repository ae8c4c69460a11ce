"""The router inside ladders (issue 24 item 5) -> bench/results/route_ladders/.

    .venv/bin/python bench/route_ladders.py [--trials 60] [--folds 5] [--banks date,gsm8k,qwen]

On the bundled MoT DATE bank (gpt-3.5-turbo > gpt-4, folds by scenario, prompt tokens charged),
the bundled MoT GSM8K bank (llama-2-13b > gpt-4, folds by question) and our Qwen bank
(qwen2.5-coder-0.5b > 1.5b, folds by question, prompt tokens charged):

1. Held-out AUROC for "the cheapest tier's full vote is wrong" of three signals: the router
   (all-MiniLM-L6-v2 embeddings + prompt features; kNN, logistic, feature-only or their
   blends chosen on inner folds, `tts.routing.default_candidates`; `tts.tuning.priors`), the prompt-feature prior (`tts.difficulty.PromptDifficulty`), each
   fitted on the other folds only, and the probe's disagreement (1 - agreement of the cheapest
   tier's first 4 samples; nothing fitted). Bootstrap 95% CI over questions. Beside the pooled
   AUROC, the mean of the AUROCs within each held-out fold: pooling ranks questions of
   different folds by different fits, and a fold's fitted base rate moves against its
   held-out one (a fold with more failures leaves fewer in its fitting part), which pulls a
   pooled AUROC below 0.5 for a nearly constant predictor.
2. The tuned ladder with and without the router (`tts tune --prior router|prompt`): the
   accuracy objective under 30% and 60% cost caps, K-fold held-out (folds as above; margin
   1 SE given to both arms, so the same procedure runs for both without the inner
   cross-validation that would multiply the studies by 5), accuracy with its CI, cost share of the top model, share of
   questions that climb, and the cheapest tier's mean spend on the questions that climbed
   anyway (what skipping saves), plus the paired difference router - prompt with its CI.

Writes route_ladders.csv, route_ladders.md, route_ladders.png and summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import tts  # noqa: E402
from figures import finish  # noqa: E402
from tts.bank import load_bank  # noqa: E402
from tts.difficulty import vote_wrong  # noqa: E402
from tts.evaluate import BankArrays, evaluate  # noqa: E402
from tts.measures import mean_ci95, paired_difference  # noqa: E402
from tts.tuning import run_tune  # noqa: E402
from tts.tuning.folds import group_folds, group_labels  # noqa: E402
from tts.tuning.priors import fit_prior  # noqa: E402

OUT = ROOT / "bench" / "results" / "route_ladders"
BUDGET = 262144.0
TRAIN_SEEDS, HELDOUT_SEEDS = (0, 1, 2), (100, 101, 102)
BANKS = {
    "date": (tts.BUNDLED_DATE_BANK, None, "scenario", True),
    "gsm8k": (tts.BUNDLED_BANK, None, "question", False),
    "qwen": (ROOT / "bench" / "results" / "qwen_gsm8k" / "bank", None, "question", True),
}


def auroc(score: np.ndarray, wrong: np.ndarray, boots: int = 500) -> dict:
    """AUROC of `score` for `wrong` with a bootstrap 95% CI over questions."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    vals = []
    for _ in range(boots):
        i = rng.integers(0, len(score), len(score))
        if wrong[i].min() != wrong[i].max():
            vals.append(roc_auc_score(wrong[i], score[i]))
    return {"auroc": float(roc_auc_score(wrong, score)),
            "ci95": [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))]}


def signals(arrays: BankArrays, group_by: str, folds: int) -> dict:
    """Held-out AUROC of the router, the prompt prior and the probe (module docstring, 1)."""
    wrong = vote_wrong(arrays)
    scores = {"router": np.zeros(len(arrays)), "prompt": np.zeros(len(arrays))}
    chosen = []
    parts = group_folds(arrays, folds, group_by, seed=0)
    for held in parts:
        train = arrays.subset(np.setdiff1d(np.arange(len(arrays)), held))
        texts = [arrays.questions[i] for i in held]
        groups = None if group_by == "question" else group_labels(train, group_by)
        for kind in scores:
            prior, _ = fit_prior(train, kind, groups=groups)
            scores[kind][held] = 0.0 if prior is None else prior.logits(texts)
            if kind == "router" and prior is not None:
                chosen.append(prior.router.candidate.name)
    small = arrays.models["small"]
    pre = arrays.prefix(small, "sample", 0, 512)
    probe = 1.0 - pre.agreement[np.arange(len(arrays)), np.minimum(4, pre.agreement.shape[1] - 1)]
    return {"questions": len(arrays), "cheapest_wrong_share": float(wrong.mean()),
            "router_chosen": chosen,
            **{k: auroc(v, wrong) for k, v in scores.items()},
            "probe_agreement_4": auroc(probe, wrong),
            "within_folds": {k: within_folds(v, wrong, parts) for k, v in
                             (*scores.items(), ("probe_agreement_4", probe))}}


def within_folds(score: np.ndarray, wrong: np.ndarray, parts) -> float:
    """Mean over held-out folds (with both outcomes) of the AUROC within the fold."""
    from sklearn.metrics import roc_auc_score

    return float(np.mean([roc_auc_score(wrong[h], score[h]) for h in parts
                          if wrong[h].min() != wrong[h].max()]))


def tuned(arrays: BankArrays, ladder, group_by: str, count_prompt: bool, prior: str,
          trials: int, folds: int, **objective) -> dict:
    """One arm of the frontier comparison (module docstring, 2); per-question arrays kept."""
    t0 = time.perf_counter()
    out = run_tune(arrays, ladder, budgets=[BUDGET], trials=trials, folds=folds,
                   group_by=group_by, seeds=TRAIN_SEEDS, heldout_seeds=HELDOUT_SEEDS,
                   count_prompt=count_prompt, prior=prior, margin=1.0, **objective)
    sub = arrays.with_ladder(out["policy"].ladder)
    ev = evaluate(sub, out["crossfit"], BUDGET, HELDOUT_SEEDS, count_prompt=count_prompt)
    small = sub.models["small"]
    climbed = ev.escalated
    spend = ev.tokens[small] * sub.cost.of(small).output
    h = out["report"]["heldout"]
    return {"prior": prior, "accuracy": h["accuracy"], "accuracy_ci95": h["accuracy_ci95"],
            "cost_share": h["cost_share_of_large_only"], "climb_share": float(climbed.mean()),
            "small_spend_on_climbers": float(spend[climbed].mean()) if climbed.any() else 0.0,
            "seconds": round(time.perf_counter() - t0, 1),
            "_correct": ev.correct.mean(0), "_cost": ev.cost.mean(0)}


def compare(a: dict, b: dict) -> dict:
    """Router arm `b` minus prompt arm `a`: paired per-question differences with CIs."""
    acc, acc_se = paired_difference(b["_correct"] - a["_correct"])
    cost, cost_se = paired_difference(b["_cost"] - a["_cost"])
    return {"accuracy_diff": acc, "accuracy_diff_ci95": [acc - 1.96 * acc_se,
                                                         acc + 1.96 * acc_se],
            "mean_cost_diff": cost, "mean_cost_diff_ci95": [cost - 1.96 * cost_se,
                                                            cost + 1.96 * cost_se]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--banks", default=",".join(BANKS))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    summary: dict = {"command": "python bench/route_ladders.py " + " ".join(sys.argv[1:]),
                     "budget": BUDGET, "trials": args.trials, "folds": args.folds, "banks": {}}
    rows = []
    for name in args.banks.split(","):
        path, ladder, group_by, count_prompt = BANKS[name]
        if not Path(path).exists():
            print(f"{name}: no bank at {path}; skipped", file=sys.stderr)
            continue
        arrays = BankArrays.from_bank(load_bank(path))
        ladder = ladder or [arrays.models["small"], arrays.models["large"]]
        arrays = arrays.with_ladder(ladder)
        entry: dict = {"ladder": list(ladder), "group_by": group_by,
                       "count_prompt": count_prompt, "signals": signals(arrays, group_by,
                                                                        args.folds)}
        print(f"{name}: AUROC router {entry['signals']['router']['auroc']:.3f}, prompt "
              f"{entry['signals']['prompt']['auroc']:.3f}, probe "
              f"{entry['signals']['probe_agreement_4']['auroc']:.3f}", file=sys.stderr)
        for objective, extra in (("accuracy@0.3", {"objective": "accuracy",
                                                   "max_cost_share": 0.3}),
                                 ("accuracy@0.6", {"objective": "accuracy",
                                                   "max_cost_share": 0.6})):
            arms = {p: tuned(arrays, ladder, group_by, count_prompt, p, args.trials,
                             args.folds, **extra) for p in ("prompt", "router")}
            diff = compare(arms["prompt"], arms["router"])
            entry[objective] = {p: {k: v for k, v in a.items() if not k.startswith("_")}
                                for p, a in arms.items()}
            entry[objective]["router_minus_prompt"] = diff
            for p, a in arms.items():
                rows.append({"bank": name, "objective": objective, "prior": p,
                             **{k: a[k] for k in ("accuracy", "cost_share", "climb_share",
                                                  "small_spend_on_climbers")}})
            print(f"  {objective}: prompt {arms['prompt']['accuracy']:.3f} at "
                  f"{arms['prompt']['cost_share']:.3f}, router {arms['router']['accuracy']:.3f}"
                  f" at {arms['router']['cost_share']:.3f}", file=sys.stderr)
        summary["banks"][name] = entry
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    write(args.out, summary, rows)
    return 0


def write(out: Path, summary: dict, rows: list[dict]) -> None:
    import csv

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(out / "route_ladders.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in summary["banks"].items():
        for prior, marker in (("prompt", "o"), ("router", "s")):
            pts = [(entry[o][prior]["cost_share"], entry[o][prior]["accuracy"])
                   for o in ("accuracy@0.3", "accuracy@0.6")]
            ax.plot(*zip(*pts), marker=marker, label=f"{name} {prior}")
    finish(fig, ax, out / "route_ladders.png", xlabel="cost share of the top model",
           ylabel="held-out accuracy", title="tuned ladders with and without the router",
           dpi=120)
    lines = ["# The router inside ladders", "", f"Command: `{summary['command']}` "
             f"({summary['seconds']} s)", "",
             "| bank | AUROC router | AUROC prompt | AUROC probe@4 |", "|---|---|---|---|"]
    for name, e in summary["banks"].items():
        s = e["signals"]
        lines.append(f"| {name} | " + " | ".join(
            f"{s[k]['auroc']:.3f} [{s[k]['ci95'][0]:.3f}, {s[k]['ci95'][1]:.3f}]"
            for k in ("router", "prompt", "probe_agreement_4")) + " |")
    lines += ["", "Mean AUROC within each held-out fold (no pooling across folds' fits):", "",
              "| bank | router | prompt | probe@4 |", "|---|---|---|---|"]
    lines += [f"| {name} | " + " | ".join(f"{e['signals']['within_folds'][k]:.3f}" for k in (
        "router", "prompt", "probe_agreement_4")) + " |" for name, e in summary["banks"].items()]
    lines += ["", "The router's model per outer fold, chosen on 3 inner folds by Brier score "
              "among `tts.routing.default_candidates` (features(C=0.2) is the prompt prior's "
              "own model):", ""]
    lines += [f"- {name}: {', '.join(e['signals']['router_chosen'])}"
              for name, e in summary["banks"].items()]
    lines += ["", "| bank | objective | prior | accuracy | cost share | climbs | cheapest "
              "spend on climbers |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['bank']} | {r['objective']} | {r['prior']} | {r['accuracy']:.3f} | "
              f"{r['cost_share']:.3f} | {r['climb_share']:.3f} | "
              f"{r['small_spend_on_climbers']:,.0f} |" for r in rows]
    lines += ["", "![frontier](route_ladders.png)", ""]
    (out / "route_ladders.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
