"""The peers side by side with tts on the bundled DATE bank, in one run -> bench/results/peers/.

    python bench/peers.py [--trials 100] [--folds 5] [--budget 1e6]

Issue 25, "What it must show" 2: MoT-1D-Vote at tau 0.6 and 0.65 (Yue et al. 2023, "Large
Language Model Cascades with Mixture of Thought Representations") beside tts's tuned and
default plans; the MoT paper reports 0.889 accuracy at 47% of GPT-4-CoT-SC's cost on all of
DATE. Everything runs on the same 171 questions (`tts/data/mot_date`, corrected gold) and the
same held-out seeds, ladder gpt-3.5-turbo > gpt-4, prompt tokens charged at 2023 list prices
(as bench/tune_date.py does), at a budget no plan reaches (1e6 units: GPT-4-CoT-SC's three
512-token reservations alone hold 368,640).

* tts tuned: `tts.tuning.run_tune` (nested cross-validation, folds by scenario), scored by
  its cross-fitted policy: every question answered by the plan tuned without its scenario.
  The cost objective (cheapest plan reaching GPT-4's accuracy; and again with MoT-1D-Vote@0.6's
  measured accuracy as the target: a single number measured on all questions, the one
  place a held-out question's label reaches the tuner) and the accuracy objective under a
  cap of 0.3 of GPT-4 greedy's cost, and under MoT-1D-Vote@0.6 -> GPT-4 greedy's measured
  cost share (again one number measured on all questions). The tuner searches
  mixed-representation votes (`mix_mode`, `climb_split`; `tts.tuning.space`); summary.json
  records what each outer fold deployed and how it scored on its held-out scenarios beside
  MoT-1D-Vote@0.6.
* tts default: `DefaultPolicy` (the untuned cascade as a ladder), and the plain cascade from
  gpt-3.5's program-of-thought vote (climb below 60% agreement), nothing tuned.
* Peers (`tts.sweep.peers`; nothing tuned, so all questions are held out): MoT-1D-Vote,
  MoT-2D-Vote (tau 0.6, 0.65), MoT-Verify, each climbing to GPT-4-CoT-SC (3 samples, as the
  paper) and, for MoT-1D-Vote, to GPT-4 greedy; ESC (window 5, up to 40) and
  Adaptive-Consistency (0.95) on gpt-3.5's CoT and PoT; a random router at each MoT cascade's
  escalation share (averaged over 10 router seeds); GPT-4 greedy and GPT-4-CoT-SC.

Cost is reported in both units: a share of GPT-4 greedy's mean cost (ours) and of
GPT-4-CoT-SC's (the MoT paper's), measured on the same questions and seeds. Writes peers.csv,
peers.md, peers.png and summary.json.

How the bank maps onto the paper (our reading; the paper's evaluation code is not in the
logs we have, only `source/eval_date.py`, which calls it with 20 samples and taus 0.4-1):
the bank's CoT ("sample") and PoT ("pot") records each pool the paper's two demonstration
sets (interleaved), so a vote here always draws over both sets; "1D" and "2D" in the paper
refer (as we read it) to one or two sets of demonstrations, a dimension these records cannot
separate. We therefore take MoT-1D-Vote as one vote over K = 20 mixed samples (10 CoT, 10 PoT,
alternating), MoT-2D-Vote as that vote also requiring the CoT and PoT majorities to agree,
and MoT-Verify as climbing exactly when they disagree. The consistency is the leader's share
of the answering samples (failed programs abstain).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tts  # noqa: E402
from figures import finish  # noqa: E402
from tts.bank import load_bank  # noqa: E402
from tts.evaluate import BankArrays, evaluate  # noqa: E402
from tts.policy import DefaultPolicy  # noqa: E402
from tts.strategies import Ladder, Rung, Vote  # noqa: E402
from tts.sweep.peers import (MAX_TOKENS, MOT_TAUS, mot_rung, peer_plan,  # noqa: E402
                             router_like, top_greedy_rung, top_sc_rung)
from tts.tuning import run_tune  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "peers"
LADDER = ("gpt-3.5-turbo", "gpt-4")
TAUS = MOT_TAUS
HELDOUT_SEEDS = (0, 1, 2, 3, 4)
TRAIN_SEEDS = (1000, 1001, 1002)
ROUTER_SEEDS = range(10)
BOOT = 2000
LABELLED = ("GPT-4 greedy", "GPT-4-CoT-SC (3 samples)", "MoT-1D-Vote@0.6 -> GPT-4-CoT-SC",
            "MoT-1D-Vote@0.6 -> GPT-4 greedy", "MoT-Verify -> GPT-4-CoT-SC",
            "random router at MoT-1D-Vote@0.6's share -> GPT-4-CoT-SC",
            "ESC w=5 (gpt-3.5 PoT)", "ESC w=5 (gpt-3.5 CoT)", "gpt-3.5 MoT vote of 20 (no climb)")
"""Plans named on the plot (the table names every one)."""
MOT = f"MoT-1D-Vote@{TAUS[0]} -> GPT-4 greedy"
"""The MoT plan each tuned run's folds are compared with (`fold_plans`)."""
PAPER = {"accuracy": 0.889, "cost_share_of_gpt4_cot_sc": 0.47,
         "scope": "all 369 DATE questions, BIG-bench labels (MoT paper)"}


def fixed(arrays: BankArrays, budget: float) -> dict[str, Any]:
    """Every untuned plan by name (peers, references, tts's defaults)."""
    bank = arrays.bank
    plans: dict[str, Any] = {
        "GPT-4 greedy": Ladder(rungs=(top_greedy_rung(),)),
        "GPT-4-CoT-SC (3 samples)": Ladder(rungs=(top_sc_rung(),)),
        "tts default policy": DefaultPolicy(),
        "tts cascade (gpt-3.5 PoT vote, climb < 0.6)": Ladder(rungs=(Rung(
            role="small", mode="pot", wave=4, max_samples=16, confidence=0.95,
            max_tokens=MAX_TOKENS, climb_below=0.6), top_greedy_rung())),
        "gpt-3.5 MoT vote of 20 (no climb)": Ladder(rungs=(mot_rung(),)),
    }
    for tau in TAUS:
        plans[f"MoT-1D-Vote@{tau} -> GPT-4-CoT-SC"] = peer_plan(f"mot-1d-vote@{tau}", bank)[0]
        plans[f"MoT-1D-Vote@{tau} -> GPT-4 greedy"] = peer_plan(f"mot-1d-vote@{tau}", bank,
                                                                top=top_greedy_rung())[0]
        plans[f"MoT-2D-Vote@{tau} -> GPT-4-CoT-SC"] = peer_plan(f"mot-2d-vote@{tau}", bank)[0]
    plans["MoT-Verify -> GPT-4-CoT-SC"] = peer_plan("mot-verify", bank)[0]
    for mode, label in (("sample", "CoT"), ("pot", "PoT")):
        plans[f"ESC w=5 (gpt-3.5 {label})"] = Vote(mode=mode, max_samples=40, wave=5,
                                                   confidence=1.0, window_stop=True,
                                                   max_tokens=MAX_TOKENS)
        plans[f"Adaptive-Consistency 0.95 (gpt-3.5 {label})"] = Vote(
            mode=mode, max_samples=40, wave=1, confidence=0.95, max_tokens=MAX_TOKENS)
    return plans


def score(arrays: BankArrays, plan: Any, budget: float) -> dict[str, Any]:
    ev = evaluate(arrays, plan, budget, HELDOUT_SEEDS, count_prompt=True)
    return {"correct": ev.correct.astype(float), "cost": ev.cost, "escalated": ev.escalated}


def router_score(arrays: BankArrays, cascade: Ladder, share: float,
                 budget: float) -> dict[str, Any]:
    runs = [score(arrays, router_like(cascade, share, s), budget) for s in ROUTER_SEEDS]
    return {k: np.mean([r[k] for r in runs], 0) for k in ("correct", "cost", "escalated")}


def fold_plans(crossfit: Any, ids: list[str], tuned: dict, mot: dict,
               unit: float) -> dict[str, list]:
    """What each outer fold deployed (its held-out scenarios are answered by it): the
    candidate's name, whether its first rung is a mixed-representation vote, and on the
    fold's held-out questions its accuracy and cost share beside those of `mot`."""
    fold = np.array([crossfit.fold_of[pid] for pid in ids])

    def on(r: dict, f: int) -> tuple[float, float]:
        return (float(r["correct"][:, fold == f].mean()),
                float(r["cost"][:, fold == f].mean() / unit))

    return {"fold_chosen": [p.notes["levels"][0]["chosen"] for p in crossfit.policies],
            "fold_mixed": [p.levels[0].rungs[0].mix_mode is not None
                           for p in crossfit.policies],
            "fold_questions": [int((fold == f).sum()) for f in range(len(crossfit.policies))],
            "fold_accuracy_and_cost": [on(tuned, f) for f in range(len(crossfit.policies))],
            "fold_mot_accuracy_and_cost": [on(mot, f) for f in range(len(crossfit.policies))]}


def paired(a: dict, b: dict, rng: np.random.Generator) -> dict[str, Any]:
    """a minus b: accuracy difference and cost ratio with 95% bootstrap CIs over questions
    (per-question means over the held-out seeds, resampled in pairs)."""
    ca, cb = a["correct"].mean(0), b["correct"].mean(0)
    ka, kb = a["cost"].mean(0), b["cost"].mean(0)
    idx = rng.integers(0, len(ca), (BOOT, len(ca)))
    diff = ca[idx].mean(1) - cb[idx].mean(1)
    ratio = ka[idx].mean(1) / kb[idx].mean(1)
    return {"accuracy_diff": float(ca.mean() - cb.mean()),
            "answers_diff": int(round(float(a["correct"].sum() - b["correct"].sum()))),
            "answers": int(a["correct"].size),
            "accuracy_diff_ci95": [float(x) for x in np.percentile(diff, [2.5, 97.5])],
            "cost_ratio": float(ka.mean() / kb.mean()),
            "cost_ratio_ci95": [float(x) for x in np.percentile(ratio, [2.5, 97.5])]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", type=Path, default=Path(tts.BUNDLED_DATE_BANK))
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=1e6)
    ap.add_argument("--cap", type=float, default=0.3,
                    help="cost cap (share of GPT-4 greedy) of the accuracy objective")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--replot", action="store_true",
                    help="rewrite peers.csv/md/png from the summary.json in --out, run nothing")
    args = ap.parse_args()
    if args.replot:
        done = json.loads((args.out / "summary.json").read_text())
        write(args.out, done["plans"], done["tts_vs_mot"], done["tuned_reports"])
        return 0
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    bank = load_bank(args.bank)
    arrays = BankArrays.from_bank(bank).with_ladder(LADDER)
    budget = args.budget
    rows: dict[str, dict[str, Any]] = {}
    kinds: dict[str, str] = {}
    for name, plan in fixed(arrays, budget).items():
        rows[name] = score(arrays, plan, budget)
        kinds[name] = "tts (untuned)" if name.startswith("tts") else (
            "reference" if name.startswith(("GPT-4", "gpt-3.5")) else "peer")
        if name.startswith("MoT") and isinstance(plan, Ladder):
            share = float(rows[name]["escalated"].mean())
            rname = f"random router at {name.split(' ->')[0]}'s share -> {name.split('-> ')[1]}"
            rows[rname] = router_score(arrays, plan, share, budget)
            kinds[rname] = "peer (random router)"
    tuned_reports = {}
    common = dict(budgets=[budget], folds=args.folds, group_by="scenario", trials=args.trials,
                  seeds=TRAIN_SEEDS, heldout_seeds=HELDOUT_SEEDS, count_prompt=True)
    target = float(rows[f"MoT-1D-Vote@{TAUS[0]} -> GPT-4-CoT-SC"]["correct"].mean())
    greedy = rows["GPT-4 greedy"]["cost"].mean()
    mot_cap = float(rows[MOT]["cost"].mean() / greedy)
    for label, kw in (("tts tuned (cost objective)", dict(objective="cost")),
                      (f"tts tuned (cost objective, target {target:.3f} = MoT-1D-Vote@"
                       f"{TAUS[0]}'s accuracy)", dict(objective="cost", target=target)),
                      (f"tts tuned (accuracy, cost <= {args.cap:g})",
                       dict(objective="accuracy", max_cost_share=args.cap)),
                      (f"tts tuned (accuracy, cost <= {mot_cap:.3f} = MoT-1D-Vote@{TAUS[0]} "
                       f"-> GPT-4 greedy's cost)",
                       dict(objective="accuracy", max_cost_share=mot_cap))):
        t = time.perf_counter()
        out = run_tune(arrays, LADDER, **kw, **common)
        rows[label] = score(arrays, out["crossfit"], budget)
        kinds[label] = "tts (tuned, held-out)"
        h = out["report"]["heldout"]
        tuned_reports[label] = {"report_heldout_accuracy": h["accuracy"],
                                "report_cost_share_of_large_only": h["cost_share_of_large_only"],
                                "deployed_chosen": out["report"]["deployed"]["chosen"],
                                **fold_plans(out["crossfit"], arrays.problem_ids,
                                             rows[label], rows[MOT], greedy),
                                "seconds": round(time.perf_counter() - t, 1)}
        print(f"{label}: held-out accuracy {rows[label]['correct'].mean():.3f} "
              f"({time.perf_counter() - t:.0f} s)")
    sc = rows["GPT-4-CoT-SC (3 samples)"]["cost"].mean()
    table = []
    for name, r in rows.items():
        acc = float(r["correct"].mean())
        per_seed = r["correct"].mean(1)
        table.append({"plan": name, "kind": kinds[name], "accuracy": acc,
                      "accuracy_seed_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1
                      else 0.0,
                      "mean_cost": float(r["cost"].mean()),
                      "cost_share_of_gpt4_greedy": float(r["cost"].mean() / greedy),
                      "cost_share_of_gpt4_cot_sc": float(r["cost"].mean() / sc),
                      "escalated": float(np.mean(r["escalated"]))})
    rng = np.random.default_rng(0)
    comparisons = {}
    for tuned in tuned_reports:
        for tau in TAUS:
            for top in ("GPT-4-CoT-SC", "GPT-4 greedy"):
                mot = f"MoT-1D-Vote@{tau} -> {top}"
                c = paired(rows[tuned], rows[mot], rng)
                c["tts_reaches_mot_accuracy_at_lower_cost"] = bool(
                    c["accuracy_diff"] >= 0 and c["cost_ratio"] < 1)
                comparisons[f"{tuned} vs {mot}"] = c
    write(args.out, table, comparisons, tuned_reports)
    summary = {"bank": bank.meta.name, "questions": len(arrays), "ladder": list(LADDER),
               "budget": budget, "count_prompt": True, "heldout_seeds": list(HELDOUT_SEEDS),
               "train_seeds": list(TRAIN_SEEDS), "router_seeds": len(ROUTER_SEEDS),
               "folds": args.folds, "group_by": "scenario", "trials": args.trials,
               "gpt4_greedy_mean_cost": float(greedy), "gpt4_cot_sc_mean_cost": float(sc),
               "mot_paper": PAPER, "plans": table, "tts_vs_mot": comparisons,
               "tuned_reports": tuned_reports,
               "seconds": round(time.perf_counter() - t0, 1),
               "command": "python bench/peers.py " + " ".join(sys.argv[1:])}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}/summary.json ({summary['seconds']:.0f} s)")
    return 0


def write(out: Path, table: list[dict[str, Any]], comparisons: dict[str, Any],
          tuned_reports: dict[str, Any]) -> None:
    """peers.csv, peers.md and peers.png (accuracy against cost share of GPT-4 greedy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with (out / "peers.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    marks = {"tts (tuned, held-out)": ("o", "C0"), "tts (untuned)": ("s", "C2"),
             "peer": ("^", "C3"), "peer (random router)": ("v", "C7"),
             "reference": ("D", "k")}
    seen = set()
    for r in table:
        m, c = marks[r["kind"]]
        ax.scatter([r["cost_share_of_gpt4_greedy"]], [r["accuracy"]], marker=m, color=c,
                   label=None if r["kind"] in seen else r["kind"])
        seen.add(r["kind"])
        if r["plan"] in LABELLED or r["kind"].startswith("tts"):
            ax.annotate(r["plan"], (r["cost_share_of_gpt4_greedy"], r["accuracy"]), fontsize=6,
                        xytext=(4, -3), textcoords="offset points")
    finish(fig, ax, out / "peers.png", xlabel="mean cost / GPT-4 greedy's (same questions, "
           "seeds)", ylabel="accuracy (tuned: held-out by scenario)",
           title="MoT DATE: tts beside the peers (gpt-3.5-turbo > gpt-4)", dpi=130)
    lines = ["# tts beside the peers on MoT DATE (171 questions, gpt-3.5-turbo > gpt-4)", "",
             "Tuned plans are scored held-out (cross-fitted by scenario); nothing else is "
             "tuned. Cost: mean units (prompt tokens charged) as a share of GPT-4 greedy's "
             "and of GPT-4-CoT-SC's (3 samples; the MoT paper's unit). Written by "
             "`python bench/peers.py`; definitions in its docstring.", "",
             "| plan | kind | accuracy | cost / GPT-4 greedy | cost / GPT-4-CoT-SC | "
             "escalated |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['plan']} | {r['kind']} | {r['accuracy']:.3f} | "
              f"{r['cost_share_of_gpt4_greedy']:.3f} | {r['cost_share_of_gpt4_cot_sc']:.3f} | "
              f"{r['escalated']:.3f} |" for r in table]
    lines += ["", "## tts tuned against MoT-1D-Vote (paired over questions, 95% bootstrap CI)",
              "", "| comparison | accuracy diff | CI | cost ratio | CI | at least MoT's "
              "accuracy at lower cost |", "|---|---:|---|---:|---|---|"]
    for name, c in comparisons.items():
        lo, hi = c["accuracy_diff_ci95"]
        rlo, rhi = c["cost_ratio_ci95"]
        lines.append(f"| {name} | {c['accuracy_diff']:+.3f} | {lo:+.3f}..{hi:+.3f} | "
                     f"{c['cost_ratio']:.2f} | {rlo:.2f}..{rhi:.2f} | "
                     f"{'yes' if c['tts_reaches_mot_accuracy_at_lower_cost'] else 'no'} |")
    by = {r["plan"]: r for r in table}
    tuned = max((r for r in table if r["kind"].startswith("tts (tuned")),
                key=lambda r: r["accuracy"])
    lines += ["", "## What the numbers say", ""]
    for tau in TAUS:
        m = by[f"MoT-1D-Vote@{tau} -> GPT-4-CoT-SC"]
        g = by[f"MoT-1D-Vote@{tau} -> GPT-4 greedy"]
        lines.append(f"- MoT-1D-Vote@{tau} here: {m['accuracy']:.3f} at "
                     f"{m['cost_share_of_gpt4_cot_sc']:.2f} of GPT-4-CoT-SC's cost "
                     f"({m['cost_share_of_gpt4_greedy']:.2f} of GPT-4 greedy's; climbing to "
                     f"GPT-4 greedy instead: {g['accuracy']:.3f} at "
                     f"{g['cost_share_of_gpt4_greedy']:.2f}). The paper: {PAPER['accuracy']} "
                     f"at {PAPER['cost_share_of_gpt4_cot_sc']} on {PAPER['scope']}.")
    for tau in TAUS:
        c = comparisons[f"{tuned['plan']} vs MoT-1D-Vote@{tau} -> GPT-4-CoT-SC"]
        lo, hi = c["accuracy_diff_ci95"]
        lines.append(f"- Most accurate tuned tts plan, {tuned['plan']}: {tuned['accuracy']:.3f} "
                     f"at {tuned['cost_share_of_gpt4_greedy']:.2f} of GPT-4 greedy's cost; "
                     f"against MoT-1D-Vote@{tau}: {c['accuracy_diff']:+.3f} accuracy (95% CI "
                     f"{lo:+.3f}..{hi:+.3f}; {c['answers_diff']:+d} right answers of "
                     f"{c['answers']} question-seed pairs) at {c['cost_ratio']:.2f} of its "
                     f"cost.")
    met = [name for name, c in comparisons.items()
           if c["tts_reaches_mot_accuracy_at_lower_cost"]]
    lines.append(f"- At least MoT's accuracy at lower cost: {len(met)} of {len(comparisons)} "
                 f"comparisons" + (f" ({'; '.join(met)})." if met else "."))
    lines.append("- The tuner's search space (tts/tuning/space.py) holds mixed-representation "
                 "votes (CoT and PoT drawn alternately, `mix_mode`, with or without MoT's "
                 "split climb, `climb_split`). What each outer fold deployed:")
    for label, r in tuned_reports.items():
        folds = "; ".join(
            f"{name} {a:.3f} at {c:.2f} (MoT {ma:.3f} at {mc:.2f})" for name, (a, c), (ma, mc)
            in zip(r["fold_chosen"], r["fold_accuracy_and_cost"],
                   r["fold_mot_accuracy_and_cost"]))
        lines.append(f"  - {label}: {sum(r['fold_mixed'])} of {len(r['fold_mixed'])} folds "
                     f"a mixed vote; per fold, held-out accuracy at cost / GPT-4 greedy's "
                     f"beside {MOT}: {folds}.")
    lines += ["- Here, unlike the paper: gold corrected (Faithful-COT; GPT-4 agrees with it), "
              "171 of 369 questions (whole scenarios), each representation's record pools "
              "both demonstration sets, K = 20 read as 10 CoT + 10 PoT.", "",
              "![accuracy vs cost](peers.png)", ""]
    (out / "peers.md").write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
