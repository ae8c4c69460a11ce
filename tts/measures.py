"""The numbers reports are made of: accuracy with bootstrap intervals, paired differences with
their standard error, the per-question oracle, tokens-to-match, gap closed and area under the
accuracy-vs-budget curve.

Pure functions of arrays (no banks, no plans, no files), used by the sweep (`tts.sweep`),
the tuners' selection guards (`tts.tuning`) and their reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tts.errors import ValidationError

__all__ = ["TokensToMatch", "tokens_to_match", "gap_closed", "area_under_curve",
           "bootstrap_pairs", "accuracy_ci", "mean_ci95", "paired_difference", "oracle_pick"]


@dataclass(frozen=True, slots=True)
class TokensToMatch:
    """How much a candidate spends to reach a reference curve's peak accuracy."""

    target: float
    """The reference's peak accuracy."""
    reference_spend: float
    """Spend (or budget) at which the reference first reaches its peak."""
    candidate_spend: float
    """Spend (or budget) at which the candidate first reaches the target (log-linear
    interpolation between sweep points); NaN when it never does."""

    @property
    def ratio(self) -> float:
        """reference_spend / candidate_spend: how many times fewer tokens the candidate needs
        (NaN when it never matches)."""
        if not math.isfinite(self.candidate_spend) or self.candidate_spend <= 0:
            return math.nan
        return self.reference_spend / self.candidate_spend

    @property
    def reached(self) -> bool:
        return math.isfinite(self.candidate_spend)


# ---- accuracy and its uncertainty ----------------------------------------------------------
def bootstrap_pairs(n_seeds: int, n_questions: int, resamples: int,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Resampled (seed, question) index pairs, (resamples, n_questions) each, for
    `accuracy_ci`: one draw per question slot of a random seed and a random question."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, n_seeds, size=(resamples, n_questions)),
            rng.integers(0, n_questions, size=(resamples, n_questions)))


def accuracy_ci(correct: np.ndarray, boot: tuple[np.ndarray, np.ndarray]
                ) -> tuple[float, float, float]:
    """(accuracy, 2.5th, 97.5th percentile) of `correct` (seeds x questions) over the
    resampled pairs `boot` (`bootstrap_pairs`); no resamples: the interval is the point."""
    sidx, qidx = boot
    acc = float(correct.mean())
    if len(sidx):
        samples = correct[sidx, qidx].mean(axis=1)
        lo, hi = (float(v) for v in np.percentile(samples, [2.5, 97.5]))
    else:
        lo = hi = acc
    return acc, lo, hi


def mean_ci95(x: np.ndarray, n: int = 1000, seed: int = 0) -> list[float]:
    """The 95% bootstrap interval of the mean of `x` (n resamples of its entries)."""
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n, len(x)))].mean(1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def paired_difference(d: np.ndarray) -> tuple[float, float]:
    """(mean, standard error) of paired per-question differences `d` (SE 0 for one)."""
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0
    return float(d.mean()), se


# ---- the oracle ---------------------------------------------------------------------------
def oracle_pick(correct: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Per (seed, question), the index of the plan the oracle takes: the cheapest correct
    plan, else the cheapest plan. `correct` and `cost` are (plans, seeds, questions)."""
    pick = np.argmin(np.where(correct, cost, np.inf), axis=0)
    none = ~correct.any(axis=0)
    pick[none] = np.argmin(cost, axis=0)[none]
    return pick


# ---- curves ---------------------------------------------------------------------------------
def tokens_to_match(reference_spend: Sequence[float], reference_accuracy: Sequence[float],
                    candidate_spend: Sequence[float],
                    candidate_accuracy: Sequence[float]) -> TokensToMatch:
    """Spend the candidate needs to reach the reference's peak accuracy.

    Both curves are given in budget order. The reference spend is where the reference first
    reaches its peak. The candidate spend is where its curve first reaches that accuracy,
    interpolated linearly in log spend between the two sweep points around the crossing (no
    extrapolation: NaN when it never gets there). `ratio` is reference / candidate spend.
    """
    rs, ra = _pair(reference_spend, reference_accuracy, "reference")
    cs, ca = _pair(candidate_spend, candidate_accuracy, "candidate")
    ok = np.isfinite(ra) & np.isfinite(rs)
    if not ok.any():
        raise ValidationError("the reference curve has no finite points.", parameter="reference")
    target = float(np.max(ra[ok]))
    ref_spend = float(rs[ok][int(np.argmax(ra[ok] >= target))])
    cand = math.nan
    prev: tuple[float, float] | None = None
    for s, a in zip(cs, ca):
        if not (math.isfinite(s) and math.isfinite(a)):
            continue
        if a >= target:
            cand = float(s)
            if prev is not None and prev[0] > 0 and s > 0 and a > prev[1]:
                frac = (target - prev[1]) / (a - prev[1])
                lo, hi = math.log(prev[0]), math.log(s)
                cand = float(math.exp(lo + frac * (hi - lo)))
            break
        prev = (float(s), float(a))
    return TokensToMatch(target, ref_spend, cand)


def gap_closed(policy_accuracy: Sequence[float] | float,
               best_fixed_accuracy: Sequence[float] | float,
               oracle_accuracy: Sequence[float] | float) -> np.ndarray:
    """(policy - best fixed) / (oracle - best fixed), element-wise.

    1 means the policy matches the oracle, 0 the best fixed strategy, negative is worse than
    it. NaN where the oracle is no better than the best fixed strategy (no gap to close).
    """
    p, b, o = (np.asarray(x, dtype=float) for x in (policy_accuracy, best_fixed_accuracy,
                                                     oracle_accuracy))
    gap = o - b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 1e-12, (p - b) / np.where(gap > 1e-12, gap, 1.0), np.nan)


def area_under_curve(budgets: Sequence[float], accuracy: Sequence[float]) -> float:
    """Area under accuracy vs log(budget), divided by the log-budget range.

    The result is the curve's mean accuracy over the grid on a log axis, in [0, 1], and
    comparable across plans swept on the same grid. One budget gives that point's accuracy.
    """
    x, y = _pair(budgets, accuracy, "curve")
    if len(x) == 0 or not np.all(np.isfinite(y)) or np.any(x <= 0):
        raise ValidationError("area_under_curve needs positive budgets and finite accuracies.",
                              parameter="accuracy")
    if len(x) == 1:
        return float(y[0])
    lx = np.log(x)
    if np.any(np.diff(lx) <= 0):
        raise ValidationError("area_under_curve needs strictly increasing budgets.",
                              parameter="budgets")
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(lx)) / (lx[-1] - lx[0]))


def _pair(x: Sequence[float], y: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValidationError(f"the {what} spend and accuracy arrays differ in length "
                              f"({len(xa)} vs {len(ya)}).", parameter=what)
    return xa, ya
