"""What a tuned policy is expected to score, as `tts tune` writes it into the policy's notes,
checked field by field when a policy file is read (`check_expected`, `check_frontier`).

    notes.expected = {                  # the deployed policy, cross-fitted (held-out folds)
      "disagreement": 0.08,             # share of questions whose answer is not the top
      "disagreement_ci95": [0.05, 0.12],  # model's greedy answer (what audits measure)
      "accuracy": 0.89, "accuracy_ci95": [0.84, 0.93],   # vs gold (null: the bank has none)
      "cost_share": 0.31,               # mean cost / the top model alone's (null: no share)
      "reference": "gold",              # what it was tuned against: "gold" or "top"
      "questions": 171, "how": "...",
      "by_budget": [{"budget": 262144.0, "disagreement": ..., ...}]  # one per level
    }
    notes.frontier = [                  # safer plans, cheapest first, the top model last
      {"name": "cap 0.45", "max_cost_share": 0.45, "levels": [<level>, ...],
       "expected": {<as above>}},
      ...,
      {"name": "top-model", "max_cost_share": 1.0, "levels": [...], "expected": {...}}
    ]

Top-level numbers of a multi-level policy are means over its budgets (`by_budget` holds
each). Along the frontier the expected disagreement never rises, so "the next safer plan" is
the next entry. `tts tune` ends it with the top model alone unless that is not safer (at a
budget that cannot pay for the top model's answer it answers nothing there); it writes no
frontier when no plan is expected to disagree less than the deployed one. `tts.policy.frontier.policy_frontier` gives the entries as policies.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from tts.errors import ValidationError
from tts.policy.fields import check_item_fields
from tts.types import shown

EXPECTED_FIELDS = ("disagreement", "disagreement_ci95", "accuracy", "accuracy_ci95",
                   "cost_share", "reference", "questions", "how", "by_budget")
REQUIRED_EXPECTED = ("disagreement", "disagreement_ci95")
FRONTIER_FIELDS = ("name", "max_cost_share", "levels", "expected")
_SHARES = ("disagreement", "accuracy")


def check_expected(value: Any, where: str, *, budgets: bool = True) -> dict[str, Any]:
    """A `notes.expected` object (module docstring), its numbers in range; the error names
    `where` and the field."""
    check_item_fields(value, where, where, EXPECTED_FIELDS, "an expectation", required=False)
    missing = [f for f in REQUIRED_EXPECTED if f not in value]
    if missing:
        raise ValidationError(f"{where} is missing field(s) {missing}.",
                              parameter=f"{where}.{missing[0]}")
    for key in _SHARES:
        v = value.get(key)
        if (v is not None or key == "disagreement") and not _share(v):
            raise ValidationError(f"{where}.{key} must be a number in [0, 1], got {shown(v)}.",
                                  parameter=f"{where}.{key}", value=v)
        ci = value.get(f"{key}_ci95")
        if (ci is not None or key == "disagreement") and not (
                isinstance(ci, list) and len(ci) == 2 and all(map(_share, ci))
                and ci[0] <= ci[1]):
            raise ValidationError(f"{where}.{key}_ci95 must be [low, high] in [0, 1], got "
                                  f"{shown(ci)}.", parameter=f"{where}.{key}_ci95", value=ci)
    cost = value.get("cost_share")
    if cost is not None and not (_number(cost) and cost >= 0):
        raise ValidationError(f"{where}.cost_share must be a number >= 0 or null, got "
                              f"{shown(cost)}.", parameter=f"{where}.cost_share", value=cost)
    if value.get("reference") not in (None, "gold", "top"):
        raise ValidationError(f"{where}.reference must be 'gold' or 'top', got "
                              f"{shown(value.get('reference'))}.",
                              parameter=f"{where}.reference")
    per = value.get("by_budget")
    if per is not None:
        if not budgets or not isinstance(per, list) or not per:
            raise ValidationError(f"{where}.by_budget must be a non-empty list of objects.",
                                  parameter=f"{where}.by_budget")
        for i, item in enumerate(per):
            at = f"{where}.by_budget[{i}]"
            b = item.get("budget") if isinstance(item, Mapping) else None
            if not (_number(b) and b >= 0):
                raise ValidationError(f"{at}.budget must be a number >= 0, got {shown(b)}.",
                                      parameter=f"{at}.budget")
            check_expected({k: v for k, v in item.items() if k != "budget"}, at,
                           budgets=False)
    return dict(value)


def check_frontier(value: Any, where: str) -> list[dict[str, Any]]:
    """A `notes.frontier` list: entries with a name, levels and expected numbers (checked
    here; the levels are read by the loader), disagreement never rising along it."""
    if not isinstance(value, list) or not value:
        raise ValidationError(f"{where} must be a non-empty list of plans, got {shown(value)}.",
                              parameter=where)
    out, last = [], math.inf
    for i, entry in enumerate(value):
        at = f"{where}[{i}]"
        check_item_fields(entry, at, at, FRONTIER_FIELDS, "a frontier plan", required=False)
        missing = [f for f in ("name", "levels", "expected") if f not in entry]
        if missing:
            raise ValidationError(f"{at} is missing field(s) {missing}.",
                                  parameter=f"{at}.{missing[0]}")
        if not isinstance(entry["name"], str) or not entry["name"]:
            raise ValidationError(f"{at}.name must be a non-empty string.",
                                  parameter=f"{at}.name")
        cap = entry.get("max_cost_share")
        if cap is not None and not (_number(cap) and cap > 0):
            raise ValidationError(f"{at}.max_cost_share must be a number > 0 or null, got "
                                  f"{shown(cap)}.", parameter=f"{at}.max_cost_share")
        expected = check_expected(entry["expected"], f"{at}.expected")
        if expected["disagreement"] > last + 1e-12:
            raise ValidationError(f"{at}: a frontier goes from cheapest to safest, but its "
                                  f"expected disagreement {expected['disagreement']:.4f} is "
                                  f"above the previous plan's {last:.4f}.",
                                  parameter=f"{at}.expected.disagreement")
        last = expected["disagreement"]
        out.append(dict(entry))
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _share(v: Any) -> bool:
    return _number(v) and 0.0 <= v <= 1.0
