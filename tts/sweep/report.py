"""A sweep's markdown report, accuracy-vs-budget plot and the rich tables of `tts sweep`.

Everything here reads the plain data of `SweepResult.report()` (settings, per-plan curves and
best rows, derived sentences): numbers come in already measured, nothing here evaluates a plan
or imports the result it came from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tts.sweep.plans import VOTE_AT
from tts.sweep.rows import fmt_budget, human

__all__ = ["markdown", "plot", "print_table"]

Report = Mapping[str, Any]
"""What `SweepResult.report()` returns."""


def _budget_label(b: float) -> str:
    exact = fmt_budget(b)
    return exact if len(exact) <= 7 else human(b)


def _acc(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.3f}"


def markdown(data: Report, *, command: str | None = None, png: str | None = None) -> str:
    """The short markdown report: settings, accuracy table, per-plan summary, derived."""
    out = [f"# Budget sweep: {data['bank']}", ""]
    if command:
        out += ["Command (regenerates these numbers exactly):", "", "```", command, "```", ""]
    out += [f"- Questions: {data['split_note']}.",
            f"- Sample orders: {len(data['seeds'])} seeds {data['seeds']}; accuracy 95% CIs "
            f"from {data['bootstrap']} bootstrap resamples of (question, seed) pairs.",
            f"- Budget unit: {data['unit']}. A plan that cannot pay for its cheapest step "
            f"counts as wrong and spends 0.",
            "- Oracle: per (question, seed), the cheapest evaluated plan that is correct at "
            "that budget (upper bound).",
            f"- Run time: {data['elapsed']:.1f} s"
            + (f" (resumed {data['resumed']} budgets from the checkpoint)"
               if data["resumed"] else "") + "."]
    for name, why in data["unavailable"].items():
        out.append(f"- {name}: unavailable ({why}).")
    out.append("")
    if png:
        out += [f"![accuracy vs spend]({png})", ""]
    plans, models = data["plans"], data["models"]
    out += ["## Accuracy by budget", ""]
    out.append("| budget | " + " | ".join(p["name"] for p in plans) + " |")
    out.append("|---:|" + "---:|" * len(plans))
    for i, b in enumerate(data["budgets"]):
        cells = [_acc(p["curve"]["accuracy"][i]) for p in plans]
        out.append(f"| {fmt_budget(b)} | " + " | ".join(cells) + " |")
    out += ["", "## Each plan at its best budget", "",
            "| plan | accuracy [95% CI] | budget | mean spend | p95 spend | "
            + " | ".join(f"mean {m}" for m in models)
            + " | escalated | AUC |",
            "|---|---|---:|---:|---:|" + "---:|" * len(models) + "---:|---:|"]
    for p in plans:
        r = p["best"]
        per_model = " | ".join(human(r.spend_by_model.get(m, (math.nan,))[0]) for m in models)
        out.append(f"| {p['name']} | {r.accuracy:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | "
                   f"{fmt_budget(r.budget)} | {human(r.spend_mean)} | {human(r.spend_p95)} | "
                   f"{per_model} | {r.escalated:.2f} | {p['auc']:.3f} |")
    out += ["", "## Derived measures", ""]
    out += [f"- {line}" for line in data["derived"]]
    out.append("")
    return "\n".join(out)


def plot(data: Report, path: str | Path) -> Path:
    """Accuracy vs mean spend (log x) and vs budget, one line per plan, shaded 95% CIs,
    oracle dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    votes = [p["name"] for p in data["plans"] if VOTE_AT.match(p["name"])]
    blues = plt.get_cmap("Blues")
    palette = {"vote": "tab:cyan", "chain": "tab:olive", "escalate": "tab:red",
               "cascade": "tab:purple", "policy": "tab:green", "oracle": "black"}
    others = iter(["tab:orange", "tab:brown", "tab:pink", "tab:gray"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    for p in data["plans"]:
        n, c = p["name"], p["curve"]
        if n in votes:
            color = blues(0.35 + 0.65 * votes.index(n) / max(1, len(votes) - 1))
        else:
            color = palette.get(n) or next(others, "tab:gray")
        # say so when a policy or oracle curve hides a fixed one it equals
        label = f"{n} (= {', '.join(p['same_as'])})" if p["same_as"] else n
        style = dict(color=color, lw=2.2 if n in ("policy", "oracle") else 1.4,
                     ls="--" if n == "oracle" else "-", marker="o", ms=3, label=label)
        for ax, x in ((axes[0], c["spend"]), (axes[1], c["budget"])):
            keep = np.isfinite(x) & (x > 0)
            if not keep.any():
                continue
            ax.plot(x[keep], c["accuracy"][keep], **style)
            ax.fill_between(x[keep], c["ci_low"][keep], c["ci_high"][keep], color=color,
                            alpha=0.07 if n in votes else 0.15, lw=0)
    axes[0].set_xlabel(f"mean spend per question (units: {data['unit']})")
    axes[1].set_xlabel("budget per question (same units)")
    axes[0].set_ylabel("accuracy (95% bootstrap CI shaded)")
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
    axes[1].legend(loc="lower right", fontsize=8, ncol=2)
    split = (f"held-out {data['questions']}/{data['total_questions']} questions"
             if data["heldout"] else f"all {data['questions']} questions")
    fig.suptitle(f"{data['bank']}: accuracy vs budget ({split}, {len(data['seeds'])} "
                 f"seeds, {data['bootstrap']} bootstrap resamples)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out


_SHORT = {"vote": "vote", "chain": "chn", "escalate": "esc", "cascade": "casc",
          "policy": "pol", "oracle": "orc"}


def print_table(data: Report, console=None) -> None:
    """Accuracy per plan and budget, a per-plan summary, then the derived measures."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    plans = data["plans"]
    names = [p["name"] for p in plans]
    narrow = console.width < 8 + sum(max(len(n), 4) + 2 for n in names)
    short = {n: _SHORT.get(n, "@" + n[5:] if VOTE_AT.match(n) else n) if narrow else n
             for n in names}
    legend = ", ".join(f"{v} = {k}" for k, v in short.items() if k != v)
    table = Table(title=f"{data['bank']}: accuracy % per budget", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False, collapse_padding=True,
                  caption=data["split_note"] + (f" ({legend})" if legend else ""))
    table.add_column("budget", justify="right", no_wrap=True)
    for n in names:
        table.add_column(short[n], justify="right", no_wrap=True,
                         style="bold" if n in ("policy", "oracle") else None)
    curves = [p["curve"]["accuracy"] for p in plans]
    for i, b in enumerate(data["budgets"]):
        table.add_row(_budget_label(b), *(f"{100 * c[i]:.1f}" if math.isfinite(c[i]) else "-"
                                   for c in curves))
    console.print(table)
    best = Table(title="each plan at its best budget", box=box.SIMPLE_HEAD, padding=(0, 1),
                 pad_edge=False, collapse_padding=True)
    for col in ("plan", "acc", "95% CI", "budget", "spend", "p95", "escal.", "AUC"):
        best.add_column(col, justify="left" if col == "plan" else "right", no_wrap=True)
    for p in plans:
        r = p["best"]
        best.add_row(p["name"], f"{r.accuracy:.3f}", f"{r.ci_low:.3f}-{r.ci_high:.3f}",
                     _budget_label(r.budget), human(r.spend_mean), human(r.spend_p95),
                     f"{r.escalated:.2f}", f"{p['auc']:.3f}")
    console.print(best)
    for name, why in data["unavailable"].items():
        console.print(f"[yellow]{name}: unavailable[/] ({why})", highlight=False)
    for line in data["derived"]:
        console.print(line, highlight=False)
