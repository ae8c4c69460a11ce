"""The rich tables of `tts tune`: the held-out results of a ParamPolicy report and of a ladder
report (plain dicts, as `tts.tune.run_tune` and `tts.tune_ladder.run_ladder_tune` return them).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

__all__ = ["print_tune_table", "print_ladder_tune_table"]


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
