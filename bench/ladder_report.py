"""Held-out ladder results for a bank: the numbers, plot and table `tune_date.py` and
`tune_mot.py` write (one definition, used by both).

For each ladder (model names, cheapest first) it runs `tts.tuning.run_tune`:

* the cost objective (min mean cost subject to the top model's accuracy, shipped defaults:
  margin chosen by inner cross-validation) -> `large_cost_share_at_large_acc` and
  `heldout_accuracy_at_that_cost`;
* the accuracy objective under caps on the mean cost (shares of the top model's cost) ->
  one accuracy-vs-cost line per ladder; the 0.6 cap gives `accuracy_at_60pct_large_cost`;

and the fixed plans on all questions (the top model's greedy answer, the default cascade, the
cheapest tier's biggest vote, and the peers of `tts.sweep.peers` between the cheapest and the
top model: MoT's cascades, ESC, Adaptive-Consistency, and a random router at each MoT
cascade's escalation share). Every tuned number is out-of-fold.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from figures import finish
from tts.evaluate import BankArrays, evaluate
from tts.strategies import Ladder, Rung
from tts.sweep.peers import PEER_NAMES, peer_plan, router_like
from tts.tuning import run_tune
from tts.tuning.data import MAX_TOKENS, top_rung

CAPS = (0.2, 0.4, 0.6)


def fixed_plans(arrays: BankArrays, ladder: Sequence[str], budget: float, seeds, count_prompt
                ) -> list[dict[str, Any]]:
    """Accuracy and cost share of plain plans on every question (nothing tuned)."""
    arrays = arrays.with_ladder(ladder)
    top = top_rung(arrays.bank.modes(ladder[-1]))
    ref = evaluate(arrays, Ladder(rungs=(top,)), budget, seeds, count_prompt=count_prompt)
    out = []
    small = ladder[0]
    for mode in arrays.bank.modes(small):
        if mode.startswith(("greedy", "chain")):
            continue
        cap = int(arrays.mode(small, mode).size.min())
        plans = {f"{small} {mode} vote@{cap}": Ladder(rungs=(Rung(
                     role="small", mode=mode, wave=cap, max_samples=cap, max_tokens=MAX_TOKENS),)),
                 f"{small} {mode} cascade (<0.6 agreement climbs)": Ladder(rungs=(Rung(
                     role="small", mode=mode, wave=4, max_samples=min(16, cap),
                     confidence=0.95, max_tokens=MAX_TOKENS, climb_below=0.6), top))}
        for name, plan in plans.items():
            ev = evaluate(arrays, plan, budget, seeds, count_prompt=count_prompt)
            out.append({"plan": name, "accuracy": ev.accuracy,
                        "cost_share": ev.mean_cost / ref.mean_cost})
    out += peer_rows(arrays, ladder, budget, seeds, count_prompt, top, ref.mean_cost)
    out.append({"plan": f"{ladder[-1]} greedy", "accuracy": ref.accuracy, "cost_share": 1.0})
    return out


def policy_record(policy: Any) -> dict[str, Any]:
    """A deployed policy as a summary records it: its policy.json without the novelty
    monitor's centroids (32 embedding vectors, ~115 KB a policy), of which the count stays."""
    out = policy.to_dict()
    novelty = out.get("notes", {}).get("novelty")
    if not novelty:
        return out
    shown = f"{len(novelty['centroids'])} vectors, not stored here"
    return {**out, "notes": {**out["notes"], "novelty": {**novelty, "centroids": shown}}}


ROUTER_SEEDS = range(10)
"""Router seeds a random router's numbers are averaged over."""


def peer_rows(arrays: BankArrays, ladder: Sequence[str], budget: float, seeds, count_prompt,
              top: Rung, ref_cost: float) -> list[dict[str, Any]]:
    """The peers (`tts.sweep.peers`: MoT's cascades, ESC, Adaptive-Consistency) between the
    ladder's cheapest and top model, climbing to the report's `top` rung, and a random router
    at the escalation share of each MoT cascade (averaged over `ROUTER_SEEDS`); peers the bank
    cannot run are left out."""
    out = []
    for name in PEER_NAMES:
        if name.startswith("router@"):
            continue
        plan, why = peer_plan(name, arrays.bank, ladder[0], ladder[-1], top=top)
        if why:
            continue
        ev = evaluate(arrays, plan, budget, seeds, count_prompt=count_prompt)
        out.append({"plan": f"{name} (peer)", "accuracy": ev.accuracy,
                    "cost_share": ev.mean_cost / ref_cost, "escalated": ev.escalation_rate})
        if name.startswith("mot-"):
            runs = [evaluate(arrays, router_like(plan, ev.escalation_rate, s), budget, seeds,
                             count_prompt=count_prompt) for s in ROUTER_SEEDS]
            out.append({"plan": f"random router at {name}'s escalation share",
                        "accuracy": float(np.mean([r.accuracy for r in runs])),
                        "cost_share": float(np.mean([r.mean_cost for r in runs])) / ref_cost,
                        "escalated": float(np.mean([r.escalation_rate for r in runs]))})
    return out


def ladder_entry(arrays: BankArrays, ladder: Sequence[str], *, budget: float, folds: int,
                 group_by: str, trials: int, seeds, heldout_seeds, count_prompt: bool,
                 caps: Sequence[float] = CAPS, log: Callable[[str], None] = print
                 ) -> dict[str, Any]:
    """The `ladders` entry of one ladder (see the module docstring); the accuracy objective
    runs once per cap in `caps`, which must hold 0.6."""
    common = dict(budgets=[budget], folds=folds, group_by=group_by, trials=trials, seeds=seeds,
                  heldout_seeds=heldout_seeds, count_prompt=count_prompt)
    t0 = time.perf_counter()
    cost = run_tune(arrays, ladder, objective="cost", **common)
    h = cost["report"]["heldout"]
    log(f"  {' > '.join(ladder)} cost objective: accuracy {h['accuracy']:.3f} (top model "
        f"{h['large_greedy_accuracy']:.3f}) at {h['cost_share_of_large_only']:.3f} of its cost")
    line = []
    for cap in caps:
        acc = run_tune(arrays, ladder, objective="accuracy", max_cost_share=cap, **common)
        ha = acc["report"]["heldout"]
        log(f"  {' > '.join(ladder)} accuracy <= {cap:g} cost: {ha['accuracy']:.3f} at "
            f"{ha['cost_share_of_large_only']:.3f}")
        line.append({"max_cost_share": cap, "heldout_accuracy": ha["accuracy"],
                     "heldout_cost_share": ha["cost_share_of_large_only"],
                     "accuracy_ci95": ha["accuracy_ci95"],
                     "per_tier_share_of_questions": ha["per_tier_share_of_questions"],
                     "chosen_per_fold": [f["chosen"] for f in acc["report"]["folds_detail"]],
                     "margin_per_fold": [f["margin"] for f in acc["report"]["folds_detail"]],
                     "deployed_policy": policy_record(acc["policy"]),
                     "deployed": _deployed(acc["report"])})
    at60 = next(p for p in line if p["max_cost_share"] == 0.6)
    meets = h["accuracy"] >= h["large_greedy_accuracy"] - 1e-12
    return {
        "tiers": list(ladder),
        "large_greedy_accuracy": h["large_greedy_accuracy"],
        "large_cost_share_at_large_acc": h["cost_share_of_large_only"],
        "heldout_accuracy_at_that_cost": h["accuracy"],
        "reaches_large_accuracy": meets,
        "cost_objective_accuracy_ci95": h["accuracy_ci95"],
        "accuracy_at_60pct_large_cost": at60["heldout_accuracy"],
        "cost_share_at_60pct_cap": at60["heldout_cost_share"],
        "per_tier_usage": {"cost_objective": h["per_tier_share_of_questions"],
                           "accuracy_at_60pct": at60["per_tier_share_of_questions"]},
        "cost_objective_folds": [{k: f[k] for k in ("fold", "heldout", "chosen", "margin",
                                                     "heldout_accuracy", "heldout_cost_share")}
                                 for f in cost["report"]["folds_detail"]],
        "cost_objective_rule_choice": [f["rule"] for f in cost["report"]["folds_detail"]],
        "deployed_cost_policy": policy_record(cost["policy"]),
        "deployed_cost": _deployed(cost["report"]),
        "accuracy_vs_cost": line,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _deployed(report: dict[str, Any]) -> dict[str, Any]:
    """What the deployed policy (tuned on every question) chose and is expected to score:
    cross-fitted (its plan rebuilt on each outer training split) and in-sample."""
    d = report["deployed"]
    return {"chosen": d["chosen"], "expected_heldout": d["expected_heldout"],
            "in_sample": d["in_sample"]}


def write_outputs(out: Path, name: str, entries: list[dict[str, Any]],
                  fixed: list[dict[str, Any]]) -> None:
    """ladders.csv, ladders.md and ladders.png (accuracy vs cost share, one line per ladder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for e in entries:
        tiers = " > ".join(e["tiers"])
        rows.append({"ladder": tiers, "objective": "cost",
                     "heldout_accuracy": e["heldout_accuracy_at_that_cost"],
                     "heldout_cost_share": e["large_cost_share_at_large_acc"]})
        for p in e["accuracy_vs_cost"]:
            rows.append({"ladder": tiers, "objective": f"accuracy, cost <= {p['max_cost_share']}",
                         "heldout_accuracy": p["heldout_accuracy"],
                         "heldout_cost_share": p["heldout_cost_share"]})
    for f in fixed:
        rows.append({"ladder": f["plan"], "objective": "fixed plan (all questions)",
                     "heldout_accuracy": f["accuracy"], "heldout_cost_share": f["cost_share"]})
    with (out / "ladders.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for e in entries:
        pts = sorted([(e["large_cost_share_at_large_acc"], e["heldout_accuracy_at_that_cost"])]
                     + [(p["heldout_cost_share"], p["heldout_accuracy"])
                        for p in e["accuracy_vs_cost"]])
        ax.plot(*zip(*pts), marker="o", label="tuned " + " > ".join(e["tiers"]))
    for f in fixed:
        ax.scatter([f["cost_share"]], [f["accuracy"]], marker="x")
        ax.annotate(f["plan"], (f["cost_share"], f["accuracy"]), fontsize=6)
    ax.axhline(entries[0]["large_greedy_accuracy"], color="grey", ls="--", lw=0.8,
               label="top model greedy (held-out)")
    finish(fig, ax, out / "ladders.png", xlabel="mean cost / top-model-only cost (held-out)",
           ylabel="accuracy (held-out)", title=f"{name}: tuned ladders, held-out", dpi=120)
    lines = [f"# Ladders on {name} (held-out)", "", "| ladder | objective | accuracy | cost "
             "share of top model |", "|---|---|---:|---:|"]
    lines += [f"| {r['ladder']} | {r['objective']} | {r['heldout_accuracy']:.3f} | "
              f"{r['heldout_cost_share']:.3f} |" for r in rows]
    lines += ["", "![accuracy vs cost](ladders.png)", ""]
    (out / "ladders.md").write_text("\n".join(lines))


def best_runs(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Across every tuned run of every ladder (each one held-out as a whole): the cheapest
    run that reaches the top model's accuracy, and the most accurate run at <= 60% of its
    cost. A best-of-runs number carries a little selection of its own: read it beside the
    per-run numbers."""
    runs = []
    for e in entries:
        runs.append({"ladder": e["tiers"], "run": "cost objective",
                     "heldout_accuracy": e["heldout_accuracy_at_that_cost"],
                     "heldout_cost_share": e["large_cost_share_at_large_acc"]})
        runs += [{"ladder": e["tiers"], "run": f"accuracy, cost <= {p['max_cost_share']:g}",
                  "heldout_accuracy": p["heldout_accuracy"],
                  "heldout_cost_share": p["heldout_cost_share"]} for p in e["accuracy_vs_cost"]]
    top = entries[0]["large_greedy_accuracy"]
    reach = [r for r in runs if r["heldout_accuracy"] >= top - 1e-12]
    at60 = [r for r in runs if r["heldout_cost_share"] <= 0.6]
    return {"cheapest_at_large_accuracy": min(reach, key=lambda r: r["heldout_cost_share"])
            if reach else None,
            "best_at_60pct_cost": max(at60, key=lambda r: r["heldout_accuracy"])
            if at60 else None,
            "runs": len(runs)}


def summarise(arrays: BankArrays, ladders: Sequence[Sequence[str]], out: Path, name: str, *,
              budget: float, folds: int, group_by: str, trials: int, seeds, heldout_seeds,
              count_prompt: bool, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every ladder, write the files, return the summary keys (first ladder headline)."""
    entries = [ladder_entry(arrays, lad, budget=budget, folds=folds, group_by=group_by,
                            trials=trials, seeds=seeds, heldout_seeds=heldout_seeds,
                            count_prompt=count_prompt, log=log) for lad in ladders]
    fixed = fixed_plans(arrays, ladders[0], budget, heldout_seeds, count_prompt)
    write_outputs(out, name, entries, fixed)
    head = entries[0]
    return {"large_cost_share_at_large_acc": head["large_cost_share_at_large_acc"],
            "heldout_accuracy_at_that_cost": head["heldout_accuracy_at_that_cost"],
            "accuracy_at_60pct_large_cost": head["accuracy_at_60pct_large_cost"],
            "best_heldout_runs": best_runs(entries),
            "large_greedy_accuracy": head["large_greedy_accuracy"],
            "per_tier_usage": head["per_tier_usage"],
            "ladders": entries, "fixed_plans": fixed,
            "protocol": {"folds": folds, "group_by": group_by, "trials_per_study": trials,
                         "train_seeds": list(seeds), "heldout_seeds": list(heldout_seeds),
                         "budget": budget, "count_prompt": count_prompt,
                         "selection": "cost cap (cost objective) or margin (accuracy "
                                      "objective) chosen by inner cross-validation "
                                      "(tts.tuning.nested.choose_rule); outer folds report"}}

