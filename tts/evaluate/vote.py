"""The evaluator's vote phase: waves of one model's samples for every problem at once, with
the same stop rule (`tts.signals.vote_stops`) and probe score (`tts.signals`) as the live
strategies (`Vote`, `Adaptive`, ladder rungs), until max_samples, the budget or a stop.

Everything that decides how a vote is tallied or when it stops belongs here (and in
`tts.signals`), so a change to voting is made in one place on the evaluator's side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tts.errors import ValidationError
from tts.evaluate.arrays import Prefix
from tts.evaluate.ledger import ABSTAINED, ANSWERED, INSUFFICIENT, Run
from tts.signals import CLIMB_FEATURES, climb_logit, escalates_early, sampling_mode, vote_signals, vote_stops
from tts.strategies.vote import missing_confidence

__all__ = ["VoteOut", "vote_phase", "apply_vote"]


@dataclass
class VoteOut:
    """Per row: samples drawn `k`, whether the first wave was unaffordable, early escalation,
    the last probe score `z` (nan without one), the stream's prefix and its (model, mode)."""

    k: np.ndarray
    insufficient: np.ndarray
    escalate_now: np.ndarray
    z: np.ndarray
    pre: Prefix
    key: tuple[str, str]

    def answered(self) -> np.ndarray:
        return ~self.insufficient & (self.pre.total[np.arange(len(self.k)), self.k] > 0)


def vote_phase(run: Run, rows: np.ndarray, *, model: str, max_samples: int, probe: int,
               wave: int, max_tokens: int, temperature: float, confidence: float,
               weights: tuple[float, ...] | None = None, prior: np.ndarray | float = 0.0,
               early_above: float = 1.0, mode: str | None = None, weight: str = "none",
               keep: float = 1.0, report_confidence: bool = False) -> VoteOut:
    """Draw waves of samples until max_samples, the budget, the stop test or early escalation
    (`Vote.steps` and `Adaptive.steps` for every row of `rows`). `weight`, `keep` and
    `report_confidence` are `Vote`'s confidence options: the vote and its stop test read a
    `WeightedPrefix` (whose `leader_conf` a reporting vote's ladder rung scores)."""
    greedy = temperature == 0
    mode = sampling_mode(mode, temperature)
    m = run.a.mode(model, mode)
    seed = None if greedy else run.seed
    voting = weight != "none" or keep < 1.0
    confident = voting or report_confidence
    pre = run.a.weighted_prefix(model, mode, seed, max_tokens, weight, keep) if confident else \
        run.a.prefix(model, mode, seed, max_tokens)
    p = len(rows)
    idx = np.arange(p)
    k = np.zeros(p, np.int64)
    insufficient = np.zeros(p, bool)
    escalate_now = np.zeros(p, bool)
    z = np.full(p, np.nan)
    active = rows.copy()
    while active.any():
        want = np.minimum(np.where(k == 0, probe, wave), max_samples - k)
        if greedy and (active & (want > 1)).any():
            w = int(want[active & (want > 1)][0])
            raise ValidationError(f"`n` must be 1 for greedy sampling (temperature 0), got {w}.",
                                  parameter="n", value=w)
        if run.count_prompt:
            run.require_records(active, m)
        due = run.due(model, m)
        n = np.where(active, run.affordable(model, max_tokens, due, want), 0)
        stopped = active & (n == 0)
        insufficient |= stopped & (k == 0)
        active = active & ~stopped
        if not active.any():
            break
        run.require_samples(active, m, k, n)
        units = (n * max_tokens) * run.a.cost.of(model).output + due * run.a.cost.of(model).prompt
        generated = pre.cum_tokens[idx, np.minimum(k + n, m.width)] - pre.cum_tokens[idx, k]
        run.commit(active, model, units, generated, due, mode)
        k = np.where(active, k + n, k)
        kk = np.minimum(k, m.width)
        if voting:
            _require_confidences(active, pre.missing,  # type: ignore[attr-defined]
                                 kk, model, weight, keep)
        if report_confidence:
            _require_confidences(active, pre.conf_missing, kk, model,  # type: ignore[attr-defined]
                                 weight, keep, scored=True)
        if weights is not None:  # a probe score (PROBE_FEATURES) or an early climb's
            signals = vote_signals(pre.agreement[idx, kk], pre.entropy[idx, kk],
                                   k - pre.answering()[idx, kk], pre.distinct[idx, kk],
                                   np.maximum(k, 1))
            prior_b = np.broadcast_to(prior, (p,))
            if len(weights) == len(CLIMB_FEATURES) + 1:  # `Vote.climb_early`: the rest 0
                zero = np.zeros(p)
                zz = climb_logit(weights, (*signals, zero, zero, prior_b, zero))
            else:
                zz = climb_logit(weights, (*signals, prior_b))
            z = np.where(active, zz, z)
            now = active & escalates_early(zz, early_above)
            escalate_now |= now
            active = active & ~now
        active = active & ~vote_stops(pre.total[idx, kk], pre.confidence[idx, kk], confidence)
        active = active & (k < max_samples)
    return VoteOut(np.minimum(k, m.width), insufficient, escalate_now, z, pre, (model, mode))


def _require_confidences(rows: np.ndarray, missing: np.ndarray, k: np.ndarray, model: str,
                         weight: str, keep: float, *, scored: bool = False) -> None:
    """The ValidationError `Vote` raises when a drawn answering sample has no confidence:
    `missing` counts them per draw (`WeightedPrefix.missing`, or `.conf_missing` for the
    min_conf a `scored` leader_conf needs)."""
    bad = rows & (missing[np.arange(len(k)), k] > 0)
    if not bad.any():
        return
    raise missing_confidence(weight, keep, model, scored=scored)


def apply_vote(run: Run, rows: np.ndarray, out: VoteOut, keys: list) -> None:
    """Make the vote the outcome of `rows` (status, answer, samples drawn)."""
    answered = out.answered()
    run.status = np.where(rows, np.where(out.insufficient, INSUFFICIENT,
                                         np.where(answered, ANSWERED, ABSTAINED)), run.status)
    run.set_answer(rows & ~out.insufficient, out.key, out.pre, out.k, keys)
    run.correct = np.where(rows & out.insufficient, False, run.correct)
    run.answer_mode = np.where(rows & out.insufficient, -1, run.answer_mode)
    run.small_samples = np.where(rows, out.k, run.small_samples)
