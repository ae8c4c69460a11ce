"""`tts tune`'s table: per budget, the procedure's held-out numbers beside the deployed plan's
own (cross-fitted), with the disagreement with the top model and the worst group of
questions, narrow enough for an 80-column terminal."""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["print_tune_table", "json_safe", "worst_lines"]


def _num(value: Any, spec: str = ".3f") -> str:
    """A number for the table ("-" for none: no gold, or no share)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def print_tune_table(report: Mapping[str, Any], console) -> None:
    """One row per budget of a `tts.tuning.run_tune` report, then its worst groups."""
    from rich import box
    from rich.table import Table

    against = "" if report.get("reference", "gold") == "gold" else ", tuned for agreement " \
                                                                   "with the top model"
    table = Table(title=f"held-out ({report['folds']}-fold by {report['group_by']}{against}), "
                        f"ladder {' > '.join(report['ladder'])}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("budget", "acc", "top acc", "dis", "cost", "its acc", "its dis", "its cost"):
        table.add_column(col, justify="right", overflow="fold")
    rows = report.get("by_budget", [report])
    for r in rows:
        h, e = r["heldout"], r["deployed"].get("expected_heldout", {})
        table.add_row(_budget(r, report), _num(h["accuracy"]), _num(h["large_greedy_accuracy"]),
                      _num(h.get("disagreement")), _num(h["cost_share_of_large_only"], ".0%"),
                      _num(e.get("accuracy")), _num(e.get("disagreement")),
                      _num(e.get("cost_share_of_large_only"), ".0%"))
    console.print(table)
    console.print("acc: vs gold; dis: share of answers not the top model's greedy answer; "
                  "cost: share of the top model's; its: the deployed plan ("
                  + ", ".join(f"{_budget(r, report)}: {r['deployed']['chosen']}" for r in rows)
                  + "), cross-fitted", highlight=False, markup=False)
    for r in rows:
        for line in worst_lines(r["heldout"].get("worst_group"),
                                None if len(rows) == 1 else r.get("budget")):
            console.print(line, highlight=False, markup=False)


def _budget(row: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    return f"{row.get('budget', report['budget']):,.0f}"


def worst_lines(worst: Mapping[str, Any] | None, budget: float | None = None) -> list[str]:
    """The worst group's lines of the table (group names shortened, printed as text)."""
    if not worst:
        return []
    at = "" if budget is None else f" at {budget:,.0f}"
    whole = "held out whole" if worst["held_out_whole"] else \
        "not held out whole: folds by question"
    head = f"worst {worst['group_by']}{at} (of {worst['groups_counted']} with >= " \
           f"{worst['min_questions']} questions, {whole})"
    if "worst_disagreement" not in worst:
        return [f"{head}: {worst.get('reason', 'none')}"]
    lines = [head + ":"]
    if "worst_accuracy" in worst:
        w = worst["worst_accuracy"]
        lines.append(f"  acc {w['accuracy']:.3f} (mean {worst['mean_accuracy']:.3f}) "
                     f"{_short(w['group'])}")
    w = worst["worst_disagreement"]
    lines.append(f"  dis {w['disagreement']:.3f} (mean {worst['mean_disagreement']:.3f}) "
                 f"{_short(w['group'])}")
    return lines


def _short(name: str, width: int = 48) -> str:
    text = " ".join(str(name).split())
    return repr(text if len(text) <= width else text[:width - 1] + "…")


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float as None, so reports are valid JSON (no bare NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return json_safe(value.item())
    return value
