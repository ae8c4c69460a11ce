"""Everything that turns results into files and terminal output: the sweep's CSV (also its
checkpoint format), markdown report and accuracy-vs-budget plot, and the rich tables of
`tts sweep`, `tts tune` and `tts bank info`.

Numbers come in already measured (`tts.sweep_result`, `tts.measures`, tune reports); nothing
here evaluates a plan. Text read from a bank (`bank info`) goes through `tts.cli.safe` before
it is printed.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tts.sweep_plans import VOTE_AT
from tts.sweep_result import SweepResult, SweepRow

__all__ = ["write_csv", "row_from_csv", "csv_columns", "rounded", "fmt_budget", "human",
           "derived_lines", "markdown", "plot", "print_table", "print_tune_table",
           "print_ladder_tune_table", "print_bank_table"]


# ---- CSV ------------------------------------------------------------------------------------
_BASE_COLS = ["config", "questions", "seeds", "budget", "strategy", "kind", "available",
              "accuracy", "ci_low", "ci_high", "spend_mean", "spend_p95"]
_TAIL_COLS = ["escalated", "insufficient", "gap_closed", "note"]


def csv_columns(models: Sequence[str]) -> list[str]:
    """The sweep CSV's header for these models."""
    per_model = [f"spend_{m}_{s}" for m in models for s in ("mean", "p95")]
    return _BASE_COLS + per_model + _TAIL_COLS


def _fmt(x: float) -> str:
    return "" if x is None or not math.isfinite(x) else format(x, ".6g")


def fmt_budget(b: float) -> str:
    """A budget as the CSV and tables print it: 512, 1e+06 as 1000000, 0.5 as 0.5."""
    return str(int(b)) if float(b).is_integer() else repr(float(b))


def _num(s: str) -> float:
    return float(s) if s != "" else math.nan


def rounded(r: SweepRow) -> SweepRow:
    """Values as the CSV stores them, so fresh and resumed runs report identical numbers."""
    def rd(x: float) -> float:
        return _num(_fmt(x))

    return _replace(r, accuracy=rd(r.accuracy), ci_low=rd(r.ci_low), ci_high=rd(r.ci_high),
                    spend_mean=rd(r.spend_mean), spend_p95=rd(r.spend_p95),
                    spend_by_model={m: (rd(a), rd(b)) for m, (a, b) in
                                    r.spend_by_model.items()},
                    escalated=rd(r.escalated), insufficient=rd(r.insufficient),
                    gap_closed=rd(r.gap_closed))


def _replace(r: SweepRow, **changes: Any) -> SweepRow:
    return dataclasses.replace(r, **changes)


def _row_dict(r: SweepRow, models: Sequence[str], context: Mapping[str, str]) -> dict[str, str]:
    d = {**context, "budget": fmt_budget(r.budget), "strategy": r.strategy, "kind": r.kind,
         "available": "yes" if r.available else "no", "accuracy": _fmt(r.accuracy),
         "ci_low": _fmt(r.ci_low), "ci_high": _fmt(r.ci_high),
         "spend_mean": _fmt(r.spend_mean), "spend_p95": _fmt(r.spend_p95),
         "escalated": _fmt(r.escalated), "insufficient": _fmt(r.insufficient),
         "gap_closed": _fmt(r.gap_closed), "note": r.note}
    for m in models:
        mean, p95 = r.spend_by_model.get(m, (math.nan, math.nan))
        d[f"spend_{m}_mean"], d[f"spend_{m}_p95"] = _fmt(mean), _fmt(p95)
    return d


def write_csv(path: Path, rows: Sequence[SweepRow], models: Sequence[str],
              context: Mapping[str, str], *, mode: str) -> None:
    """Write (mode "w") or append (mode "a", the checkpoint) sweep rows, header when new."""
    cols = csv_columns(models)
    new = mode == "w" or not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        if new:
            writer.writeheader()
        for r in rows:
            writer.writerow(_row_dict(r, models, context))
        fh.flush()


def row_from_csv(d: Mapping[str, str], models: Sequence[str]) -> SweepRow:
    """The SweepRow of one CSV line (KeyError, TypeError or ValueError if it is cut short)."""
    return SweepRow(
        budget=float(d["budget"]), strategy=d["strategy"], kind=d["kind"],
        available=d["available"] == "yes", accuracy=_num(d["accuracy"]),
        ci_low=_num(d["ci_low"]), ci_high=_num(d["ci_high"]),
        spend_mean=_num(d["spend_mean"]), spend_p95=_num(d["spend_p95"]),
        spend_by_model={m: (_num(d[f"spend_{m}_mean"]), _num(d[f"spend_{m}_p95"]))
                        for m in models} if d["available"] == "yes" else {},
        escalated=_num(d["escalated"]), insufficient=_num(d["insufficient"]),
        gap_closed=_num(d["gap_closed"]), note=d["note"] or "")


# ---- sweep reports ----------------------------------------------------------------------
def human(x: float) -> str:
    """A number in a few characters: 1.5k, 12M, 300 (- for NaN)."""
    if not math.isfinite(x):
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            v = x / div
            return f"{v:.0f}{suffix}" if v >= 100 or v == int(v) else f"{v:.3g}{suffix}"
    return f"{x:.0f}" if x == int(x) or abs(x) >= 10 else f"{x:.3g}"


def _budget_label(b: float) -> str:
    exact = fmt_budget(b)
    return exact if len(exact) <= 7 else human(b)


def _acc(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.3f}"


def derived_lines(result: SweepResult) -> list[str]:
    """Tokens-to-match, gap closed and AUC as short sentences (markdown and terminal)."""
    lines = []
    names = result.available_names
    if "policy" in names and result.fixed_names:
        for ref, label in (("best-fixed", "best fixed strategy"),
                           ("best-vote", "best fixed-N vote")):
            if ref == "best-vote" and not any(VOTE_AT.match(n) for n in result.fixed_names):
                continue
            ref_name = result.peak_name(result.fixed_names if ref == "best-fixed" else
                                        [n for n in result.fixed_names if VOTE_AT.match(n)])
            for measure in ("spend", "budget"):
                t = result.tokens_to_match(ref, "policy", measure=measure)
                what = "mean spend" if measure == "spend" else "budget"
                if t.reached:
                    lines.append(f"Tokens-to-match ({what}) vs {label} {ref_name} (peak "
                                 f"{t.target:.3f} at {human(t.reference_spend)}): policy "
                                 f"reaches it at {human(t.candidate_spend)}, ratio "
                                 f"{t.ratio:.2f}x.")
                else:
                    lines.append(f"Tokens-to-match ({what}) vs {label} {ref_name} (peak "
                                 f"{t.target:.3f} at {human(t.reference_spend)}): policy "
                                 f"never reaches it on this grid.")
    if lines:
        lines.append("Budget-based ratios move a lot on plateaus: a reference that gains 0.001 "
                     "at a larger budget counts as reaching its peak only there.")
    if "policy" in names and "oracle" in names and result.fixed_names:
        gaps = result.gap_closed("policy")
        parts = [f"{fmt_budget(b)}: {'n/a' if not math.isfinite(g) else f'{g:.2f}'}"
                 for b, g in zip(result.budgets, gaps)]
        lines.append("Gap closed to the oracle, (policy - best fixed) / (oracle - best fixed), "
                     "per budget: " + ", ".join(parts) + ".")
    aucs = [f"{n} {result.auc(n):.3f}" for n in names]
    lines.append("Area under accuracy vs log-budget (normalised to [0, 1]): "
                 + ", ".join(aucs) + ".")
    return lines


def markdown(result: SweepResult, *, command: str | None = None, png: str | None = None) -> str:
    """The short markdown report: settings, accuracy table, per-plan summary, derived."""
    out = [f"# Budget sweep: {result.bank_name}", ""]
    if command:
        out += ["Command (regenerates these numbers exactly):", "", "```", command, "```", ""]
    out += [f"- Questions: {result.split_note}.",
            f"- Sample orders: {len(result.seeds)} seeds {list(result.seeds)}; accuracy 95% CIs "
            f"from {result.bootstrap} bootstrap resamples of (question, seed) pairs.",
            f"- Budget unit: {result.unit}. A plan that cannot pay for its cheapest step "
            f"counts as wrong and spends 0.",
            "- Oracle: per (question, seed), the cheapest evaluated plan that is correct at "
            "that budget (upper bound).",
            f"- Run time: {result.elapsed:.1f} s"
            + (f" (resumed {len(result.resumed_budgets)} budgets from the checkpoint)"
               if result.resumed_budgets else "") + "."]
    for name, why in result.unavailable.items():
        out.append(f"- {name}: unavailable ({why}).")
    out.append("")
    if png:
        out += [f"![accuracy vs spend]({png})", ""]
    names = result.available_names
    out += ["## Accuracy by budget", ""]
    out.append("| budget | " + " | ".join(names) + " |")
    out.append("|---:|" + "---:|" * len(names))
    for b in result.budgets:
        cells = [_acc(result.row(b, n).accuracy) for n in names]
        out.append(f"| {fmt_budget(b)} | " + " | ".join(cells) + " |")
    out += ["", "## Each plan at its best budget", "",
            "| plan | accuracy [95% CI] | budget | mean spend | p95 spend | "
            + " | ".join(f"mean {m}" for m in result.models)
            + " | escalated | AUC |",
            "|---|---|---:|---:|---:|" + "---:|" * len(result.models) + "---:|---:|"]
    for n in names:
        c = result.curve(n)
        i = int(np.nanargmax(c["accuracy"]))
        r = result.row(result.budgets[i], n)
        per_model = " | ".join(human(r.spend_by_model.get(m, (math.nan,))[0])
                               for m in result.models)
        out.append(f"| {n} | {r.accuracy:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | "
                   f"{fmt_budget(r.budget)} | {human(r.spend_mean)} | {human(r.spend_p95)} | "
                   f"{per_model} | {r.escalated:.2f} | {result.auc(n):.3f} |")
    out += ["", "## Derived measures", ""]
    out += [f"- {line}" for line in derived_lines(result)]
    out.append("")
    return "\n".join(out)


def plot(result: SweepResult, path: str | Path) -> Path:
    """Accuracy vs mean spend (log x) and vs budget, one line per plan, shaded 95% CIs,
    oracle dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result.available_names
    votes = [n for n in names if VOTE_AT.match(n)]
    blues = plt.get_cmap("Blues")
    palette = {"vote": "tab:cyan", "chain": "tab:olive", "escalate": "tab:red",
               "cascade": "tab:purple", "policy": "tab:green", "oracle": "black"}
    others = iter(["tab:orange", "tab:brown", "tab:pink", "tab:gray"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    curves = {n: result.curve(n) for n in names}
    for n in names:
        c = curves[n]
        if n in votes:
            color = blues(0.35 + 0.65 * votes.index(n) / max(1, len(votes) - 1))
        else:
            color = palette.get(n) or next(others, "tab:gray")
        label = n
        if result.kind(n) != "fixed":  # say so when a curve hides a fixed one it equals
            same = [m for m in result.fixed_names if np.array_equal(curves[m]["accuracy"],
                    c["accuracy"]) and np.array_equal(curves[m]["spend"], c["spend"])]
            if same:
                label = f"{n} (= {', '.join(same)})"
        style = dict(color=color, lw=2.2 if n in ("policy", "oracle") else 1.4,
                     ls="--" if n == "oracle" else "-", marker="o", ms=3, label=label)
        for ax, x in ((axes[0], c["spend"]), (axes[1], c["budget"])):
            keep = np.isfinite(x) & (x > 0)
            if not keep.any():
                continue
            ax.plot(x[keep], c["accuracy"][keep], **style)
            ax.fill_between(x[keep], c["ci_low"][keep], c["ci_high"][keep], color=color,
                            alpha=0.07 if n in votes else 0.15, lw=0)
    axes[0].set_xlabel(f"mean spend per question (units: {result.unit})")
    axes[1].set_xlabel("budget per question (same units)")
    axes[0].set_ylabel("accuracy (95% bootstrap CI shaded)")
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
    axes[1].legend(loc="lower right", fontsize=8, ncol=2)
    split = (f"held-out {result.n_questions}/{result.total_questions} questions"
             if result.heldout else f"all {result.n_questions} questions")
    fig.suptitle(f"{result.bank_name}: accuracy vs budget ({split}, {len(result.seeds)} "
                 f"seeds, {result.bootstrap} bootstrap resamples)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out


_SHORT = {"vote": "vote", "chain": "chn", "escalate": "esc", "cascade": "casc",
          "policy": "pol", "oracle": "orc"}


def print_table(result: SweepResult, console=None) -> None:
    """Accuracy per plan and budget, a per-plan summary, then the derived measures."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    names = result.available_names
    narrow = console.width < 8 + sum(max(len(n), 4) + 2 for n in names)
    short = {n: _SHORT.get(n, "@" + n[5:] if VOTE_AT.match(n) else n) if narrow else n
             for n in names}
    legend = ", ".join(f"{v} = {k}" for k, v in short.items() if k != v)
    table = Table(title=f"{result.bank_name}: accuracy % per budget", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False, collapse_padding=True,
                  caption=result.split_note + (f" ({legend})" if legend else ""))
    table.add_column("budget", justify="right", no_wrap=True)
    for n in names:
        table.add_column(short[n], justify="right", no_wrap=True,
                         style="bold" if n in ("policy", "oracle") else None)
    curves = [result.curve(n)["accuracy"] for n in names]
    for i, b in enumerate(result.budgets):
        table.add_row(_budget_label(b), *(f"{100 * c[i]:.1f}" if math.isfinite(c[i]) else "-"
                                   for c in curves))
    console.print(table)
    best = Table(title="each plan at its best budget", box=box.SIMPLE_HEAD, padding=(0, 1),
                 pad_edge=False, collapse_padding=True)
    for col in ("plan", "acc", "95% CI", "budget", "spend", "p95", "escal.", "AUC"):
        best.add_column(col, justify="left" if col == "plan" else "right", no_wrap=True)
    for n in names:
        c = result.curve(n)
        r = result.row(result.budgets[int(np.nanargmax(c["accuracy"]))], n)
        best.add_row(n, f"{r.accuracy:.3f}", f"{r.ci_low:.3f}-{r.ci_high:.3f}",
                     _budget_label(r.budget),
                     human(r.spend_mean), human(r.spend_p95), f"{r.escalated:.2f}",
                     f"{result.auc(n):.3f}")
    console.print(best)
    for name, why in result.unavailable.items():
        console.print(f"[yellow]{name}: unavailable[/] ({why})", highlight=False)
    for line in derived_lines(result):
        console.print(line, highlight=False)


# ---- tune and bank tables -------------------------------------------------------------------
def print_tune_table(report: Mapping[str, Any], console) -> None:
    """`tts tune`'s held-out table: one row per budget of a `tts.tune.run_tune` report."""
    from rich.table import Table

    table = Table(title=f"held-out results ({report['split']['kind']})")
    for col in ("budget", "questions", "accuracy", "mean cost", "escalated", "large-only acc",
                "cost share", "chosen (train)"):
        table.add_column(col, justify="right")
    for r in report["heldout"]:
        table.add_row(f"{r['budget']:,.0f}", str(r["questions"]), f"{r['accuracy']:.3f}",
                      f"{r['mean_cost']:,.0f}", f"{r['escalation_rate']:.2f}",
                      f"{r.get('large_only_accuracy', math.nan):.3f}",
                      f"{r.get('cost_share_of_large_only', math.nan):.2f}",
                      ", ".join(r.get("chosen", [])))
    console.print(table)


def print_ladder_tune_table(report: Mapping[str, Any], ladder: Sequence[str], folds: int,
                            group_by: str, console) -> None:
    """`tts tune --ladder`'s held-out line of a `tts.tune_ladder.run_ladder_tune` report."""
    from rich.table import Table

    h = report["heldout"]
    table = Table(title=f"held-out ({folds}-fold by {group_by}), ladder {' > '.join(ladder)}")
    for col in ("accuracy", "top-model acc", "cost share", "deployed"):
        table.add_column(col, justify="right")
    table.add_row(f"{h['accuracy']:.3f}", f"{h['large_greedy_accuracy']:.3f}",
                  f"{h['cost_share_of_large_only']:.2f}", report["deployed"]["chosen"])
    console.print(table)


def print_bank_table(bank: Any, console) -> None:
    """`tts bank info`: records, samples per record and mean tokens per (model, mode), then
    the ladder, roles, tokenizer and prices."""
    from rich.table import Table

    from tts.cli import safe

    table = Table(title=f"bank {safe(bank.meta.name)} ({len(bank.problems)} problems)")
    for col in ("model", "mode", "records", "samples/record", "mean tokens"):
        table.add_column(col)
    for model in bank.models:
        for mode in bank.modes(model):
            recs = [r for (_, m, md), r in bank.records.items() if m == model and md == mode]
            n = sum(len(r.samples) for r in recs)
            tokens = sum(s.tokens for r in recs for s in r.samples)
            table.add_row(safe(model), safe(mode), str(len(recs)), f"{n / len(recs):.1f}",
                          f"{tokens / max(n, 1):.0f}")
    console.print(table)
    console.print(f"ladder: {safe(' > '.join(bank.meta.models_cheapest_first))}")
    console.print(f"roles: {safe(dict(bank.meta.roles))}; tokenizer: "
                  f"{safe(bank.meta.tokenizer)}")
    console.print(f"cost: {safe(bank.meta.cost.source)}")
