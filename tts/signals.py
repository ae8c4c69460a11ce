"""What a ladder looks at before it climbs: one definition of the features and the climb rule.

The live strategy (`tts.strategies.ladder`) computes these from the answers it drew; the
vectorised evaluator (`tts.evaluate`) computes the same numbers for whole banks at once. Both
call `climb_logit` and `climbs` below, which use only `+`, `*` and comparisons, so they give
bit-identical decisions on Python floats and on numpy arrays.

Features of one rung (a vote of one model in one representation), in `CLIMB_FEATURES` order:

* agreement: leader votes / answering samples (0 when nobody answered);
* entropy: natural-log entropy of the answer classes;
* abstain_share: samples without an answer / samples drawn;
* distinct_share: answer classes / samples drawn;
* inv_samples: 1 / samples drawn;
* check_agreement: share of the check samples (the same model in another representation,
  e.g. program-of-thought beside chain-of-thought: the mixture-of-thought signal of Yue et al.
  2023) whose answer equals the vote's leader; 0 when no check was drawn;
* lower_agreement: 1 when the rung below answered the same as this rung's leader, else 0;
* prior: the prompt-feature difficulty logit (0 without a prompt model).
"""

from __future__ import annotations

import math
from typing import Any

CLIMB_FEATURES: tuple[str, ...] = ("agreement", "entropy", "abstain_share", "distinct_share",
                                   "inv_samples", "check_agreement", "lower_agreement", "prior")

AGREEMENT_CLIMB_WEIGHTS: tuple[float, ...] = (3.0, -6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""Untuned score: difficulty 0.5 at agreement 0.5, rising as agreement falls."""

MOT_CLIMB_WEIGHTS: tuple[float, ...] = (6.0, -6.0, 0.0, 0.0, 0.0, -6.0, 0.0, 0.0, 0.0)
"""Untuned mixture-of-thought score: difficulty 0.5 when agreement + check_agreement = 1."""


def climb_logit(weights: Any, features: Any) -> Any:
    """weights[0] + sum(w * f), summed left to right; floats or numpy arrays alike."""
    z = weights[0]
    for w, f in zip(weights[1:], features):
        z = z + w * f
    return z


def threshold_logit(p: float) -> float:
    """log(p / (1 - p)), with 0 -> -inf and 1 -> +inf (thresholds that always / never fire)."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p / (1.0 - p))


def climbs(answered: Any, agreement: Any, z: Any, climb_below: float, climb_above: float) -> Any:
    """The climb rule: nobody answered, or agreement below the floor, or the score is high.

    `climb_below` is a safety floor the tuner cannot remove (a rung whose own vote is split
    climbs even where training questions never needed it); `climb_above` is the threshold
    on the sigmoid of the score.
    """
    return ~answered | (agreement < climb_below) | (z >= threshold_logit(climb_above)) \
        if hasattr(answered, "__array__") else \
        (not answered) or agreement < climb_below or z >= threshold_logit(climb_above)
