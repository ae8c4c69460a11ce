"""`tts tune`'s table: per budget, the procedure's held-out numbers beside the deployed plan's
own (cross-fitted), narrow enough for an 80-column terminal."""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["print_tune_table", "json_safe"]


def print_tune_table(report: Mapping[str, Any], console) -> None:
    """One row per budget of a `tts.tuning.run_tune` report."""
    from rich.table import Table

    table = Table(title=f"held-out ({report['folds']}-fold by {report['group_by']}), "
                        f"ladder {' > '.join(report['ladder'])}", title_justify="left")
    for col in ("budget", "held-out acc", "top acc", "cost", "deployed", "its acc", "its cost"):
        table.add_column(col, justify="right", overflow="fold")
    for r in report.get("by_budget", [report]):
        h, d = r["heldout"], r["deployed"]
        e = d.get("expected_heldout", {})
        table.add_row(f"{r.get('budget', report['budget']):,.0f}", f"{h['accuracy']:.3f}",
                      f"{h['large_greedy_accuracy']:.3f}",
                      f"{h['cost_share_of_large_only']:.0%}", str(d["chosen"]),
                      f"{e.get('accuracy', math.nan):.3f}",
                      f"{e.get('cost_share_of_large_only', math.nan):.0%}")
    console.print(table)
    console.print("cost: share of the top model's; its acc/cost: the deployed plan, "
                  "cross-fitted", highlight=False)


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
