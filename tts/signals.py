"""The decision rules of every plan, written once: the features a vote is scored by, the
score, when a vote stops, and when a prompt escalates (climbs) to a bigger model.

The live strategies (`tts.strategies`) compute these from the answers they drew; the
vectorised evaluator (`tts.evaluate`) computes the same numbers for whole banks at once. Both
call the functions below, which use only `+`, `*`, `/` and comparisons, so they give
bit-identical decisions on Python numbers and on numpy arrays:

* `vote_signals`: the first five features of a vote (both `CLIMB_FEATURES` and the adaptive
  strategy's `PROBE_FEATURES` start with them); `leader_conf`: a rung's confidence feature;
  `climb_logit`: the score of a feature vector;
* `vote_stops`: the Adaptive-Consistency stop after a wave (votes, adaptive, ladder rungs);
* `escalates_early`: the adaptive strategy's escalation after a wave, before sampling ends;
* `climbs`: climb / escalate. A ladder rung uses the agreement floor and the score; a
  cascade only the floor (`escalate_below`); the adaptive strategy only the score
  (`escalate_above`);
* `sampling_mode`: the representation a request samples (its mode, else greedy or sample).

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
* prior: the prompt-feature difficulty logit (0 without a prompt model);
* leader_conf: the mean min_conf (DeepConf's lowest sliding-window confidence,
  `Completion.min_conf`) of the counted samples voting for the leader (`leader_conf`); 0 when
  the rung does not ask for min_conf (`Rung.measures_leader_conf`) or nobody answered.
"""

from __future__ import annotations

import math
from typing import Any

CLIMB_FEATURES: tuple[str, ...] = ("agreement", "entropy", "abstain_share", "distinct_share",
                                   "inv_samples", "check_agreement", "lower_agreement", "prior",
                                   "leader_conf")

AGREEMENT_CLIMB_WEIGHTS: tuple[float, ...] = (3.0, -6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""Untuned score: difficulty 0.5 at agreement 0.5, rising as agreement falls."""

MOT_CLIMB_WEIGHTS: tuple[float, ...] = (6.0, -6.0, 0.0, 0.0, 0.0, -6.0, 0.0, 0.0, 0.0, 0.0)
"""Untuned mixture-of-thought score: difficulty 0.5 when agreement + check_agreement = 1."""


def vote_signals(agreement: Any, entropy: Any, abstained: Any, distinct: Any,
                 samples: Any) -> tuple[Any, ...]:
    """agreement, entropy, abstain_share, distinct_share and inv_samples of a vote over
    `samples` >= 1 draws, `abstained` of which gave no answer; floats or numpy arrays."""
    return agreement, entropy, abstained / samples, distinct / samples, 1 / samples


def leader_conf(conf_sum: Any, members: Any) -> Any:
    """The `leader_conf` climb feature: `conf_sum` / `members`, 0 when `members` is 0.

    `members` are the counted samples voting for the leader (after a `keep` filter; the
    leader's sample count) and `conf_sum` their min_confs added one at a time in draw order,
    starting from 0.0 (never `sum()`, which compensates rounding), so the engine and the
    evaluator divide the same floats. Floats or numpy arrays.
    """
    if hasattr(members, "__array__"):
        return conf_sum / members.clip(1)
    return conf_sum / members if members else 0.0


def vote_stops(total: Any, confidence: Any, threshold: float) -> Any:
    """The stop test after a wave: somebody answered and the leader's confidence
    (`leader_confidence(top, runner_up)`) is >= `threshold`; a threshold of 1.0 never stops.
    """
    if hasattr(total, "__array__"):
        return (total > 0) & (confidence >= threshold) & (threshold < 1.0)
    return threshold < 1.0 and total > 0 and confidence >= threshold


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


def escalates_early(z: Any, escalate_early_above: float) -> Any:
    """The adaptive strategy's early escalation after a wave: the probe score `z` is at least
    the logit of `escalate_early_above` (1.0 never fires for a finite score)."""
    return z >= threshold_logit(escalate_early_above)


def sampling_mode(mode: str | None, temperature: float) -> str:
    """The bank mode (representation) a request samples: `mode` when given, else "greedy" at
    temperature 0 and "sample" otherwise."""
    if mode is not None:
        return mode
    return "greedy" if temperature == 0 else "sample"


def climbs(answered: Any, agreement: Any, z: Any, climb_below: float, climb_above: float) -> Any:
    """The climb (escalate) rule: nobody answered, or agreement below the floor, or the
    score is high.

    `climb_below` is a safety floor the tuner cannot remove (a rung whose own vote is split
    climbs even where training questions never needed it); `climb_above` is the threshold
    on the sigmoid of the score. A cascade is the floor alone (`climb_above` 1.0 never fires
    for a finite score), the adaptive strategy the score alone (`climb_below` 0.0).
    """
    return ~answered | (agreement < climb_below) | (z >= threshold_logit(climb_above)) \
        if hasattr(answered, "__array__") else \
        (not answered) or agreement < climb_below or z >= threshold_logit(climb_above)
