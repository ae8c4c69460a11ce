"""RouteLLM's routing metrics, computed as its `evals/evaluate.py` does, and AUROC.

A router scores each prompt (higher = send to the strong model). For 10 quantile thresholds of
the scores (the 0%, 10%, ..., 100% quantiles, the lowest lowered and the highest raised by
1e-5 so they route everything and nothing), prompts scoring >= the threshold go to the strong
model; each threshold gives a point (share of strong calls, accuracy). Then

* PGR = (accuracy - weak accuracy) / (strong accuracy - weak accuracy), per point;
* APGR = area under PGR over the share of strong calls in [0, 1] (trapezoids);
* CPT(x) = the share of strong calls at which the curve, linearly interpolated between its
  points, first reaches PGR = x.

All shares here are in [0, 1] (RouteLLM prints percentages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tts.difficulty import auroc
from tts.errors import ValidationError

__all__ = ["RoutingCurve", "routing_curve", "random_curve", "cheapest_fails_auroc", "auroc"]

EPS = 1e-5
"""RouteLLM moves the outer thresholds by this much so they route all / none."""


@dataclass(frozen=True)
class RoutingCurve:
    """A router's points on one set of prompts, in order of growing share of strong calls."""

    share: np.ndarray
    """Share of prompts sent to the strong model at each point, in [0, 1]."""
    accuracy: np.ndarray
    weak: float
    """Accuracy when every prompt goes to the weak model."""
    strong: float

    @property
    def pgr(self) -> np.ndarray:
        return (self.accuracy - self.weak) / (self.strong - self.weak)

    @property
    def apgr(self) -> float:
        """Area under PGR over the share of strong calls."""
        x, y = self.share, self.pgr
        return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))

    def cpt(self, target: float) -> float:
        """Share of strong calls at which PGR first reaches `target` (nan if never)."""
        x, y = self.share, self.pgr
        if y[0] >= target:
            return float(x[0])
        for i in range(1, len(x)):
            if y[i] >= target:
                if y[i] == y[i - 1]:
                    return float(x[i])
                return float(x[i - 1] + (target - y[i - 1]) * (x[i] - x[i - 1])
                             / (y[i] - y[i - 1]))
        return math.nan

    def summary(self) -> dict[str, float]:
        """{"apgr", "cpt50", "cpt80"}: shares in [0, 1]."""
        return {"apgr": self.apgr, "cpt50": self.cpt(0.5), "cpt80": self.cpt(0.8)}


def _check(scores: np.ndarray, weak_ok: np.ndarray, strong_ok: np.ndarray) -> None:
    if not (scores.ndim == weak_ok.ndim == strong_ok.ndim == 1
            and len(scores) == len(weak_ok) == len(strong_ok)):
        raise ValidationError(f"scores and correctness must be three vectors of one length, got "
                              f"{scores.shape}, {weak_ok.shape}, {strong_ok.shape}.",
                              parameter="scores")
    if len(scores) == 0 or not np.all(np.isfinite(scores)):
        raise ValidationError("routing scores must be finite and not empty.",
                              parameter="scores")
    if weak_ok.mean() == strong_ok.mean():
        raise ValidationError("PGR needs the strong and weak models' accuracies to differ.",
                              parameter="correct")


def routing_curve(scores: np.ndarray, weak_ok: np.ndarray, strong_ok: np.ndarray, *,
                  thresholds: int = 10) -> RoutingCurve:
    """The points of a router scoring `scores` (higher = strong) on prompts whose weak and
    strong answers are right where `weak_ok` / `strong_ok` are True."""
    scores = np.asarray(scores, float)
    weak_ok = np.asarray(weak_ok, bool)
    strong_ok = np.asarray(strong_ok, bool)
    _check(scores, weak_ok, strong_ok)
    cuts = np.quantile(scores, np.linspace(0, 1, thresholds + 1))
    cuts[0] -= EPS
    cuts[-1] += EPS
    share, acc = [], []
    for cut in cuts:
        strong = scores >= cut
        share.append(strong.mean())
        acc.append(np.where(strong, strong_ok, weak_ok).mean())
    order = np.argsort(share, kind="stable")
    return RoutingCurve(np.array(share)[order], np.array(acc)[order],
                        float(weak_ok.mean()), float(strong_ok.mean()))


def random_curve(weak_ok: np.ndarray, strong_ok: np.ndarray, *, seeds: int = 20,
                 thresholds: int = 10) -> dict[str, float]:
    """The random router (uniform scores) averaged over `seeds` draws: mean apgr/cpt50/cpt80."""
    rows = [routing_curve(np.random.default_rng(s).random(len(weak_ok)), weak_ok, strong_ok,
                          thresholds=thresholds).summary() for s in range(seeds)]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def cheapest_fails_auroc(p_cheapest: np.ndarray, cheapest_ok: np.ndarray) -> float:
    """AUROC of 1 - P(cheapest tier correct) for "the cheapest tier answers wrong"."""
    return auroc(1.0 - np.asarray(p_cheapest, float), ~np.asarray(cheapest_ok, bool))
