"""Label-free tuning beside gold tuning: held-out gold accuracy and cost
-> bench/results/label_free/.

    .venv/bin/python bench/label_free.py [--trials 40] [--folds 5]

`tts tune --reference top` scores every plan by agreement with the top model's greedy answer
(what a bank without gold, an audit bank or a user's own logs, can give); `--reference gold`
by accuracy. Both are run here the same way on the bundled banks that have gold as well: MoT
DATE (ladder gpt-3.5-turbo > gpt-4, folds by scenario, so every number is on scenarios the
policy never saw) and MoT GSM8K (Llama-2-13B > gpt-4, folds by question), with the accuracy
objective within cost caps of 30% and 60% of the top model's cost. Each row's held-out
numbers are the outer folds' policies on the questions they never saw, scored against gold;
"cost of label-free" is the paired per-question difference of held-out gold accuracy
(gold-tuned minus top-tuned, mean and standard error over questions).

On DATE gpt-3.5-turbo's vote beats GPT-4's greedy answer against gold, so agreement with
GPT-4 and accuracy are different objectives there; on GSM8K GPT-4 is the more accurate model.

Writes label_free.{csv,md,png} and summary.json (per bank and cap: gold and top rows, the
difference, the top model alone's accuracy; the exact command).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tts  # noqa: E402
from figures import finish  # noqa: E402
from tts.bank import load_bank  # noqa: E402
from tts.evaluate import BankArrays, evaluate  # noqa: E402
from tts.measures import paired_difference  # noqa: E402
from tts.tuning import run_tune  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "label_free"
BANKS = (("date", "BUNDLED_DATE_BANK", ("gpt-3.5-turbo", "gpt-4"), "scenario"),
         ("gsm8k", "BUNDLED_BANK", ("llama-2-13b", "gpt-4"), "question"))
CAPS = (0.3, 0.6)
REFERENCES = ("gold", "top")
HELDOUT_SEEDS = (0, 1, 2)


def row_of(name: str, cap: float, reference: str, out: dict) -> dict:
    """One CSV row of a tuning run's report."""
    r = out["report"]
    h, d = r["heldout"], r["deployed"]["expected_heldout"]
    w = h["worst_group"]
    return {"bank": name, "max_cost_share": cap, "reference": reference,
            "heldout_accuracy": h["accuracy"], "accuracy_ci_low": h["accuracy_ci95"][0],
            "accuracy_ci_high": h["accuracy_ci95"][1],
            "cost_share": h["cost_share_of_large_only"], "disagreement": h["disagreement"],
            "worst_group_accuracy": (w.get("worst_accuracy") or {}).get("accuracy"),
            "top_model_accuracy": h["large_greedy_accuracy"],
            "deployed": r["deployed"]["chosen"], "deployed_accuracy": d["accuracy"],
            "deployed_cost_share": d["cost_share_of_large_only"],
            "deployed_disagreement": d["disagreement"], "seconds": r["elapsed_s"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=262144.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, summary = [], {"trials": args.trials, "folds": args.folds, "budget": args.budget,
                         "heldout_seeds": list(HELDOUT_SEEDS), "banks": {}}
    for name, attr, ladder, group_by in BANKS:
        arrays = BankArrays.from_bank(load_bank(getattr(tts, attr)))
        gold_view = arrays.with_ladder(ladder)
        entry = summary["banks"].setdefault(name, {"ladder": list(ladder),
                                                   "group_by": group_by, "caps": {}})
        for cap in CAPS:
            per_question, runs = {}, {}
            for reference in REFERENCES:
                out = run_tune(arrays, ladder, objective="accuracy", max_cost_share=cap,
                               budgets=(args.budget,), trials=args.trials, folds=args.folds,
                               group_by=group_by, reference=reference,
                               seeds=(1000, 1001, 1002), heldout_seeds=HELDOUT_SEEDS,
                               count_prompt=True)
                runs[reference] = row_of(name, cap, reference, out)
                rows.append(runs[reference])
                ev = evaluate(gold_view, out["crossfit"], args.budget, HELDOUT_SEEDS,
                              count_prompt=True)
                per_question[reference] = ev.correct.mean(0)
                print(f"{name} cap {cap:g} {reference}: held-out gold accuracy "
                      f"{runs[reference]['heldout_accuracy']:.3f} at "
                      f"{runs[reference]['cost_share']:.0%}, disagreement "
                      f"{runs[reference]['disagreement']:.3f}", flush=True)
            mean, se = paired_difference(per_question["gold"] - per_question["top"])
            entry["caps"][f"{cap:g}"] = {
                "gold": runs["gold"], "top": runs["top"],
                "accuracy_cost_of_label_free": mean, "accuracy_cost_se": se,
                "cost_share_difference": runs["top"]["cost_share"] - runs["gold"]["cost_share"],
                "disagreement_difference": runs["top"]["disagreement"]
                - runs["gold"]["disagreement"]}
        entry["top_model_accuracy"] = rows[-1]["top_model_accuracy"]
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["command"] = "python bench/label_free.py " + " ".join(sys.argv[1:])
    write(args.out, rows, summary)
    print(f"wrote {args.out}/summary.json ({summary['seconds']:.0f} s)")
    return 0


def write(out: Path, rows: list[dict], summary: dict) -> None:
    with open(out / "label_free.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    lines = ["| bank | cap | tuned against | held-out gold acc (95% CI) | cost share | "
             "disagreement | worst group acc | top model acc |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        worst = "-" if r["worst_group_accuracy"] is None else f"{r['worst_group_accuracy']:.3f}"
        lines.append(f"| {r['bank']} | {r['max_cost_share']:.0%} | {r['reference']} | "
                     f"{r['heldout_accuracy']:.3f} ({r['accuracy_ci_low']:.3f}-"
                     f"{r['accuracy_ci_high']:.3f}) | {r['cost_share']:.0%} | "
                     f"{r['disagreement']:.3f} | {worst} | {r['top_model_accuracy']:.3f} |")
    lines += ["", "Cost of label-free tuning (held-out gold accuracy, gold-tuned minus "
              "top-tuned, paired over questions):", ""]
    for name, entry in summary["banks"].items():
        for cap, c in entry["caps"].items():
            lines.append(f"- {name}, cap {float(cap):.0%}: {c['accuracy_cost_of_label_free']:+.3f}"
                         f" (SE {c['accuracy_cost_se']:.3f}); cost share "
                         f"{c['cost_share_difference']:+.0%}, disagreement "
                         f"{c['disagreement_difference']:+.3f}")
    lines += ["", f"Command: `{summary['command']}` ({summary['seconds']:.0f} s)."]
    (out / "label_free.md").write_text("\n".join(lines) + "\n")
    plot(out / "label_free.png", rows)


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = {("date", "gold"): ("tab:blue", "o"), ("date", "top"): ("tab:blue", "x"),
              ("gsm8k", "gold"): ("tab:orange", "o"), ("gsm8k", "top"): ("tab:orange", "x")}
    for (bank, ref), (color, marker) in styles.items():
        pts = [r for r in rows if r["bank"] == bank and r["reference"] == ref]
        ax.errorbar([r["cost_share"] for r in pts], [r["heldout_accuracy"] for r in pts],
                    yerr=np.array([[r["heldout_accuracy"] - r["accuracy_ci_low"],
                                    r["accuracy_ci_high"] - r["heldout_accuracy"]]
                                   for r in pts]).T, color=color, marker=marker,
                    linestyle="none", capsize=3, label=f"{bank}, tuned vs {ref}")
        if pts and ref == "gold":
            ax.axhline(pts[0]["top_model_accuracy"], color=color, linestyle=":", linewidth=1,
                       label=f"{bank}, top model alone (cost 100%)")
    finish(fig, ax, path, xlabel="held-out cost (share of the top model's)",
           ylabel="held-out gold accuracy", dpi=120,
           title="Tuned against gold vs against the top model's answers")


if __name__ == "__main__":
    raise SystemExit(main())
