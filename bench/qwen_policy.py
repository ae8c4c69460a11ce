"""Issue 10, item 4: the tuned vote / chain / escalate policy on the Qwen GSM8K bank against
every fixed plan and the oracle, across compute, held-out -> bench/results/qwen_gsm8k/policy/.

    python bench/qwen_policy.py [--trials 100] [--folds 5] [--bank ...] [--out ...]

Questions: those holding every mode of the bank (small samples, greedy and chains at every
length; large samples and greedy), so every plan is scored on the same questions.

* Fixed plans (nothing tuned, scored on all those questions): small greedy, small vote@k,
  small votes with DeepConf's confidence filter and weighting, the small model's
  budget-forced chains (one, and a vote of two) at each length, large greedy and large votes,
  and the default cascade (small vote of up to 16, climbing below 60% agreement).
* Tuned (`tts.tuning.run_tune`, K-fold by question: every number is scored on
  questions the policy was not tuned on): the ladders of `ladders()`, each with the cost
  objective (cheapest plan reaching the large model's greedy accuracy) and the accuracy
  objective under caps on mean compute (`CAPS`, shares of large-greedy compute).
* The oracle: per question the cheapest fixed plan that is right (else the cheapest); along
  the compute axis, the most questions it can answer within a mean compute, exactly (each
  question is one unit of value, so taking the cheapest increments first is optimal).

Compute is the bank's cost model: tokens (prompt and generated) times active parameters,
in small-model tokens. Writes policy.{csv,md,png} and summary.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ladder_report import ladder_entry  # noqa: E402
from tts.bank import SampleBank, load_bank  # noqa: E402
from tts.evaluate import BankArrays, evaluate  # noqa: E402
from tts.strategies import Ladder, Rung, Vote  # noqa: E402
from tts.strategies.chain import is_chain_mode  # noqa: E402
from tts.measures import oracle_pick  # noqa: E402
from tts.tuning.data import MAX_TOKENS, greedy_rung  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BANK = ROOT / "bench/results/qwen_gsm8k/bank"
OUT = ROOT / "bench/results/qwen_gsm8k/policy"
CAPS = (0.3, 0.6, 1.0, 2.0)
"""Caps on mean compute (shares of the large model's greedy compute) for the accuracy
objective (0.6 is the headline of `ladder_report`)."""
BUDGET = 262144.0  # per-question hard limit; never binding here (compute is capped on average)
ORACLE_GRID = (0.1, 0.2, 0.4, 0.8, 1.5, 3.0, 5.0)
"""Mean compute shares the oracle curve is read at (besides `CAPS`)."""
TRAIN_SEEDS = (1000, 1001, 1002)
HELDOUT_SEEDS = (0, 1, 2, 3, 4)
console = Console()


def ladders(small: str, large: str, chain: str) -> dict[str, tuple[str, ...]]:
    """The tuned ladders: the small model's greedy answer then escalate; vote then escalate;
    vote, chain, escalate (either lower rung may be left out by the search). A plain top entry
    lets the search pick greedy or a vote."""
    return {"greedy > escalate": (f"{small}:greedy", large),
            "vote > escalate": (f"{small}:sample", large),
            "vote > chain > escalate": (f"{small}:sample", f"{small}:{chain}", large)}


def complete_questions(bank: SampleBank, without: Sequence[str] = ()) -> list[str]:
    """Problems holding every (model, mode) of the bank but the modes `without`, each with
    its full sample count."""
    full: dict[tuple[str, str], int] = {}
    for (_, model, mode), rec in bank.records.items():
        if mode not in without:
            full[(model, mode)] = max(full.get((model, mode), 0), len(rec.samples))
    return [pid for pid in bank.problem_ids
            if all(len(getattr(bank.records.get((pid, *key)), "samples", ())) == n
                   for key, n in full.items())]


def chain_modes(bank: SampleBank, small: str, without: Sequence[str] = ()) -> list[str]:
    """The small model's chain modes but those `without`, shortest first."""
    return sorted((m for m in bank.modes(small) if is_chain_mode(m) and m not in without),
                  key=lambda m: int(m.rpartition("-")[2]) if m[-1].isdigit() else 0)


def fixed_plans(arrays: BankArrays, small: str, large: str, without: Sequence[str] = ()
                ) -> dict[str, Any]:
    """Every fixed plan, by name (see the module docstring)."""
    greedy = dict(temperature=0.0, max_samples=1, wave=1, confidence=1.0)
    n_small = int(arrays.mode(small, "sample").size.min())
    n_large = int(arrays.mode(large, "sample").size.min())
    plans: dict[str, Any] = {"small greedy": Vote(role="small", mode="greedy", **greedy)}
    for k in sorted({1, 2, 4, 8, n_small}):
        plans[f"small vote@{k}"] = Vote(max_samples=k, wave=k, confidence=1.0)
    plans[f"small vote@{n_small}, min_conf keep half"] = Vote(
        max_samples=n_small, wave=n_small, confidence=1.0, weight="min_conf", keep=0.5)
    plans[f"small vote@{n_small}, min_conf-weighted"] = Vote(
        max_samples=n_small, wave=n_small, confidence=1.0, weight="min_conf")
    plans[f"small vote <= {n_small}, stop at 0.95"] = Vote(max_samples=n_small, wave=4)
    for mode in chain_modes(arrays.bank, small, without):
        m = arrays.mode(small, mode)
        tokens = max(64, int(m.tokens.max()))
        for k in sorted({1, int(m.size.min())}):
            plans[f"small {mode} x{k}"] = Ladder(rungs=(Rung(
                role="small", mode=mode, max_samples=k, max_tokens=tokens),))
    plans["large greedy"] = Vote(role="large", mode="greedy", **greedy)
    for k in sorted({2, n_large}):
        plans[f"large vote@{k}"] = Vote(role="large", max_samples=k, wave=k, confidence=1.0)
    plans["cascade: small vote <= 16, < 0.6 agreement climbs"] = Ladder(rungs=(
        Rung(role="small", mode="sample", wave=4, max_samples=min(16, n_small),
             confidence=0.95, max_tokens=MAX_TOKENS, climb_below=0.6),
        greedy_rung("large", "greedy")))
    return plans


def oracle_curve(correct: np.ndarray, cost: np.ndarray, mean_costs: Sequence[float]
                 ) -> list[float]:
    """Oracle accuracy within each mean cost, mean over seeds. `correct`, `cost`:
    (plans, seeds, questions). Per question the oracle pays at least its cheapest plan; being
    right costs the cheapest correct plan, an increment it buys for the questions where it
    is smallest until the mean cost is spent (exact: every question is worth one)."""
    q = correct.shape[2]
    floor = cost.min(axis=0)                                       # (seeds, Q)
    right = np.where(correct, cost, np.inf).min(axis=0)            # inf: no plan is right
    extra = np.sort(right - floor, axis=1)                         # (seeds, Q), inf last
    spare = np.asarray(mean_costs, float)[:, None] * q - floor.sum(axis=1)[None, :]
    spent = np.cumsum(extra, axis=1)                               # (seeds, Q)
    solved = (spent[None, :, :] <= spare[:, :, None] + 1e-9).sum(axis=2)  # (caps, seeds)
    solved = np.where(spare >= 0, solved, 0)
    return [float(v) for v in solved.mean(axis=1) / q]


def run(bank_path: Path, out: Path, *, trials: int, folds: int, chain: str | None = None,
        without: Sequence[str] = (), caps: Sequence[float] = CAPS, log=console.print,
        command: str = "") -> dict[str, Any]:
    """Score everything (leaving out the modes `without`, e.g. a chain length still being
    built), write the files, return the summary."""
    t0 = time.perf_counter()
    bank = load_bank(bank_path)
    small, large = bank.meta.roles["small"], bank.meta.roles["large"]
    qs = complete_questions(bank, without)
    if len(qs) < 2 * folds:
        raise SystemExit(f"{bank_path}: {len(qs)} questions hold every mode; need >= "
                         f"{2 * folds} for {folds} folds.")
    arrays = BankArrays.from_bank(bank, qs)
    chains = chain_modes(bank, small, without)
    chain = chain or (chains[len(chains) // 2] if chains else None)
    log(f"{len(qs)} questions hold every mode; chain rung {chain}")
    evals = {name: evaluate(arrays, plan, BUDGET, HELDOUT_SEEDS)
             for name, plan in fixed_plans(arrays, small, large, without).items()}
    ref = evals["large greedy"]
    fixed = [{"plan": name, "accuracy": ev.accuracy, "cost_share": ev.mean_cost / ref.mean_cost,
              "escalated": ev.escalation_rate} for name, ev in evals.items()]
    correct_a = np.array([ev.correct for ev in evals.values()])   # (plans, seeds, questions)
    cost_a = np.array([ev.cost for ev in evals.values()])
    grid = sorted({*caps, *ORACLE_GRID})
    oracle = [{"cost_share": c, "accuracy": a} for c, a in zip(
        grid, oracle_curve(correct_a, cost_a, [c * ref.mean_cost for c in grid]))]
    pick = oracle_pick(correct_a, cost_a)[None]
    oracle_full = {"accuracy": float(np.take_along_axis(correct_a, pick, 0).mean()),
                   "cost_share": float(np.take_along_axis(cost_a, pick, 0).mean()
                                       / ref.mean_cost)}
    tuned = {}
    for name, lad in ladders(small, large, chain).items():
        if chain is None and any(is_chain_mode(e.partition(":")[2]) for e in lad):
            continue
        log(f"[bold]{name}[/]: {', '.join(lad)}")
        tuned[name] = ladder_entry(arrays, lad, budget=BUDGET, folds=folds,
                                   group_by="question", trials=trials, seeds=TRAIN_SEEDS,
                                   heldout_seeds=HELDOUT_SEEDS, count_prompt=True, caps=caps,
                                   log=log)
    summary = {"bank": bank.meta.name, "command": command, "questions": len(qs),
               "small": small, "large": large,
               "chain_rung": chain, "modes_left_out": list(without),
               "large_greedy_accuracy": ref.accuracy,
               "large_greedy_mean_cost": ref.mean_cost, "fixed_plans": fixed,
               "oracle_over_fixed_plans": oracle_full, "oracle_curve": oracle,
               "tuned": tuned,
               "protocol": {"folds": folds, "group_by": "question", "trials_per_study": trials,
                            "train_seeds": list(TRAIN_SEEDS),
                            "heldout_seeds": list(HELDOUT_SEEDS), "budget": BUDGET,
                            "count_prompt": True, "caps": list(caps)},
               "seconds": round(time.perf_counter() - t0, 1)}
    write(out, summary)
    return summary


def rows_of(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"plan": f"tuned {name}", "kind": obj, "accuracy": acc, "cost_share": share}
            for name, e in summary["tuned"].items()
            for obj, acc, share in [("cost objective (reach large greedy)",
                                     e["heldout_accuracy_at_that_cost"],
                                     e["large_cost_share_at_large_acc"])]
            + [(f"accuracy, compute <= {p['max_cost_share']:g}", p["heldout_accuracy"],
                p["heldout_cost_share"]) for p in e["accuracy_vs_cost"]]]
    rows += [{"plan": f["plan"], "kind": "fixed", "accuracy": f["accuracy"],
              "cost_share": f["cost_share"]} for f in summary["fixed_plans"]]
    rows += [{"plan": "oracle over fixed plans", "kind": f"mean compute <= {o['cost_share']:.3g}",
              "accuracy": o["accuracy"], "cost_share": o["cost_share"]}
             for o in summary["oracle_curve"]]
    return rows


def write(out: Path, summary: dict[str, Any]) -> None:
    """policy.csv, policy.md, policy.png and summary.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    rows = rows_of(summary)
    with (out / "policy.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fig, ax = plt.subplots(figsize=(8, 5))
    o = summary["oracle_curve"]
    ax.plot([p["cost_share"] for p in o], [p["accuracy"] for p in o], color="grey", ls=":",
            label="oracle over fixed plans")
    for name, e in summary["tuned"].items():
        pts = sorted([(e["large_cost_share_at_large_acc"], e["heldout_accuracy_at_that_cost"])]
                     + [(p["heldout_cost_share"], p["heldout_accuracy"])
                        for p in e["accuracy_vs_cost"]])
        ax.plot(*zip(*pts), marker="o", label=f"tuned {name} (held-out)")
    for f in summary["fixed_plans"]:
        ax.scatter([f["cost_share"]], [f["accuracy"]], marker="x", color="black")
        ax.annotate(f["plan"], (f["cost_share"], f["accuracy"]), fontsize=5)
    ax.axhline(summary["large_greedy_accuracy"], color="grey", ls="--", lw=0.8,
               label="large greedy")
    ax.set_xscale("log")
    ax.set_xlabel("mean compute / large greedy compute (active-parameter tokens)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Qwen GSM8K, {summary['questions']} questions: tuned policy vs fixed plans")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "policy.png", dpi=130)
    plt.close(fig)
    lines = [f"# Qwen GSM8K: tuned policy vs fixed plans and the oracle "
             f"({summary['questions']} questions)", "",
             f"Compute is a share of the large model's greedy compute "
             f"(accuracy {summary['large_greedy_accuracy']:.3f}). Tuned rows are held-out "
             f"({summary['protocol']['folds']}-fold by question, "
             f"{summary['protocol']['trials_per_study']} trials per study); fixed plans and "
             f"the oracle use no tuning. Modes left out: "
             f"{', '.join(summary['modes_left_out']) or 'none'}. Command: "
             f"`{summary['command']}`.", "",
             "| plan | kind | accuracy | compute share |", "|---|---|---:|---:|"]
    lines += [f"| {r['plan']} | {r['kind']} | {r['accuracy']:.3f} | {r['cost_share']:.3f} |"
              for r in rows]
    lines += ["", "![accuracy vs compute](policy.png)", ""]
    (out / "policy.md").write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", type=Path, default=BANK)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--chain", default=None, help="chain mode of the middle rung "
                    "(default: the bank's middle chain length)")
    ap.add_argument("--without", default="", help="comma-separated modes to leave out (e.g. "
                    "a chain length the build has not finished), so more questions count")
    args = ap.parse_args(argv)
    without = tuple(m.strip() for m in args.without.split(",") if m.strip())
    s = run(args.bank, args.out, trials=args.trials, folds=args.folds, chain=args.chain,
            without=without, command="python bench/qwen_policy.py " + " ".join(
                argv if argv is not None else sys.argv[1:]))
    console.print(f"wrote {args.out}/policy.md ({s['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
