"""One row of a sweep (`SweepRow`: a plan at a budget) and its CSV form, which is also the
checkpoint format a resumed sweep reads back; with the number formats every sweep output uses.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["SweepRow", "write_csv", "row_from_csv", "csv_columns", "rounded", "fmt_budget",
           "human"]


@dataclass(frozen=True, slots=True)
class SweepRow:
    """One plan at one budget."""

    budget: float
    strategy: str
    """"vote@N", "vote", "chain", "escalate", "cascade", a custom name, "policy" or "oracle"."""
    kind: str
    """"fixed", "policy" or "oracle"."""
    available: bool
    """False when the bank cannot run the plan (e.g. chain without chain samples)."""
    accuracy: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    spend_mean: float = math.nan
    """Mean units spent per question (0 for questions the budget could not pay for)."""
    spend_p95: float = math.nan
    spend_by_model: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """model -> (mean, p95) units spent on that model's tokens."""
    escalated: float = math.nan
    """Share of (question, seed) pairs that asked the large model."""
    insufficient: float = math.nan
    """Share of (question, seed) pairs the budget could not pay any step of."""
    gap_closed: float = math.nan
    """Policy rows: (policy - best fixed) / (oracle - best fixed) at this budget."""
    note: str = ""


# ---- numbers as every output prints them ----------------------------------------------------
def fmt_budget(b: float) -> str:
    """A budget as the CSV and tables print it: 512, 1e+06 as 1000000, 0.5 as 0.5."""
    return str(int(b)) if float(b).is_integer() else repr(float(b))


def human(x: float) -> str:
    """A number in a few characters: 1.5k, 12M, 300 (- for NaN)."""
    if not math.isfinite(x):
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            v = x / div
            return f"{v:.0f}{suffix}" if v >= 100 or v == int(v) else f"{v:.3g}{suffix}"
    return f"{x:.0f}" if x == int(x) or abs(x) >= 10 else f"{x:.3g}"


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


def _num(s: str) -> float:
    return float(s) if s != "" else math.nan


def rounded(r: SweepRow) -> SweepRow:
    """Values as the CSV stores them, so fresh and resumed runs report identical numbers."""
    def rd(x: float) -> float:
        return _num(_fmt(x))

    return dataclasses.replace(
        r, accuracy=rd(r.accuracy), ci_low=rd(r.ci_low), ci_high=rd(r.ci_high),
        spend_mean=rd(r.spend_mean), spend_p95=rd(r.spend_p95),
        spend_by_model={m: (rd(a), rd(b)) for m, (a, b) in r.spend_by_model.items()},
        escalated=rd(r.escalated), insufficient=rd(r.insufficient), gap_closed=rd(r.gap_closed))


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
