"""Per-question held-out scores of a plan (`crossfit_scores`: each question scored by the plan
as rebuilt on the outer training split that did not hold it), their summary (`summary`:
accuracy against gold, disagreement with the top model's greedy answer, cost share, with 95%
intervals) and the worst group (`worst_group`: per group of questions held out whole, the
lowest accuracy and the highest disagreement beside the mean)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tts.evaluate import BankArrays, evaluate
from tts.measures import mean_ci95
from tts.strategies.ladder import Ladder, Rung
from tts.tuning.data import LadderData, top_rung
from tts.tuning.search import score_plan

MIN_GROUP = 5
"""Groups with fewer questions are left out of the worst group: the worst of many groups of
one or two questions is noise, not a shift."""


@dataclass(frozen=True)
class Scores:
    """Per question (positions in the tuned arrays), means over the held-out seeds."""

    agree: np.ndarray
    """Whether the answer is the top model's greedy answer (its disagreement: 1 - agree)."""
    cost: np.ndarray
    top_cost: np.ndarray
    """The top model alone's cost on the same question."""
    correct: np.ndarray | None = None
    """Against gold (None: the bank has no gold on every question)."""
    tiers: dict[str, np.ndarray] | None = None
    """Per model, whether the plan called it."""

    @staticmethod
    def pooled(parts: Sequence[Scores]) -> Scores:
        """The scores of several budgets side by side (each question once per budget)."""
        cat = np.concatenate
        return Scores(cat([p.agree for p in parts]), cat([p.cost for p in parts]),
                      cat([p.top_cost for p in parts]),
                      None if any(p.correct is None for p in parts) else
                      cat([p.correct for p in parts]))  # type: ignore[misc]


def top_eval(data: LadderData, arrays: BankArrays, seeds: Sequence[int]):
    """The top model alone (its greedy answer) on `arrays`."""
    return evaluate(arrays, Ladder(rungs=(top_rung(data.greedy["large"]),)), data.budget,
                    seeds, count_prompt=data.count_prompt)


def crossfit_scores(gold: BankArrays | None, agree: BankArrays, parts: Sequence[np.ndarray],
                    plans: Sequence[tuple[LadderData, tuple[Rung, ...]]],
                    seeds: Sequence[int]) -> Scores:
    """Per question, the scores of fold f's plan `plans[f]` (its data: the fitted prompt
    model and budget) on fold f's held-out questions `parts[f]`, on the gold view (None: no
    gold) and the agreement view (`tts.tuning.reference.agreement_arrays`) of the same bank."""
    n = len(agree)
    out = {k: np.zeros(n) for k in ("agree", "cost", "top_cost", "correct")}
    tiers = {m: np.zeros(n) for m in agree.models.values()}
    for (data, rungs), held in zip(plans, parts):
        ev = score_plan(data, rungs, seeds, agree.subset(held))
        out["agree"][held] = ev.correct.mean(0)
        out["cost"][held] = ev.cost.mean(0)
        out["top_cost"][held] = top_eval(data, agree.subset(held), seeds).cost.mean(0)
        for m in tiers:
            tiers[m][held] = (ev.tokens[m] > 0).mean(0)
        if gold is not None:
            out["correct"][held] = score_plan(data, rungs, seeds,
                                              gold.subset(held)).correct.mean(0)
    return Scores(out["agree"], out["cost"], out["top_cost"],
                  None if gold is None else out["correct"], tiers)


def share(cost: float, top_cost: float) -> float:
    """A mean cost as a share of the top model's (nan where the budget affords no top-model
    answer: then there is no share; reports write it as null)."""
    return float(cost / top_cost) if top_cost > 0 else float("nan")


def summary(s: Scores) -> dict[str, Any]:
    """Accuracy (vs gold; None without), disagreement with the top model, cost share, the
    first two with 95% bootstrap intervals over questions."""
    dis = 1.0 - s.agree
    return {"accuracy": None if s.correct is None else float(s.correct.mean()),
            "accuracy_ci95": None if s.correct is None else mean_ci95(s.correct),
            "disagreement": float(dis.mean()), "disagreement_ci95": mean_ci95(dis),
            "cost_share": share(float(s.cost.mean()), float(s.top_cost.mean())),
            "questions": int(len(dis))}


def worst_group(s: Scores, labels: Sequence[str], *, held_out_whole: bool,
                group_by: str) -> dict[str, Any]:
    """Per group of at least `MIN_GROUP` questions, accuracy and disagreement: the worst
    group of each beside the mean over groups. `held_out_whole`: every group was held out
    whole by the outer folds (so each group's numbers are leave-group-out)."""
    names = list(dict.fromkeys(labels))
    idx = {g: np.flatnonzero(np.asarray(labels, dtype=object) == g) for g in names}
    counted = [g for g in names if len(idx[g]) >= MIN_GROUP]
    out: dict[str, Any] = {"group_by": group_by, "held_out_whole": held_out_whole,
                           "groups": len(names), "groups_counted": len(counted),
                           "min_questions": MIN_GROUP}
    if not counted:
        out["reason"] = f"no group has {MIN_GROUP} or more questions"
        return out
    dis = {g: float(1.0 - s.agree[idx[g]].mean()) for g in counted}
    worst_d = max(counted, key=lambda g: (dis[g], g))
    out["mean_disagreement"] = float(np.mean(list(dis.values())))
    out["worst_disagreement"] = {"group": worst_d, "questions": int(len(idx[worst_d])),
                                 "disagreement": dis[worst_d]}
    if s.correct is not None:
        acc = {g: float(s.correct[idx[g]].mean()) for g in counted}
        worst_a = min(counted, key=lambda g: (acc[g], g))
        out["mean_accuracy"] = float(np.mean(list(acc.values())))
        out["worst_accuracy"] = {"group": worst_a, "questions": int(len(idx[worst_a])),
                                 "accuracy": acc[worst_a]}
    return out
