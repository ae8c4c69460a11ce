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
from tts.evaluate.arrays import ModeArrays, Prefix
from tts.evaluate.mixed import draw_classes, mixed_key
from tts.evaluate.ledger import ABSTAINED, ANSWERED, INSUFFICIENT, Run
from tts.signals import CLIMB_FEATURES, climb_logit, escalates_early, sampling_mode, vote_signals, vote_stops
from tts.strategies.mixed import split_draws
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
    split: np.ndarray | None = None
    """A mixed vote's `Outcome.split` per row (None for a vote of one representation)."""

    def answered(self) -> np.ndarray:
        return ~self.insufficient & (self.pre.total[np.arange(len(self.k)), self.k] > 0)


def vote_phase(run: Run, rows: np.ndarray, *, model: str, max_samples: int, probe: int,
               wave: int, max_tokens: int, temperature: float, confidence: float,
               weights: tuple[float, ...] | None = None, prior: np.ndarray | float = 0.0,
               early_above: float = 1.0, mode: str | None = None, weight: str = "none",
               keep: float = 1.0, report_confidence: bool = False,
               mix_mode: str | None = None, window_stop: bool = False) -> VoteOut:
    """Draw waves of samples until max_samples, the budget, the stop test or early escalation
    (`Vote.steps` and `Adaptive.steps` for every row of `rows`). `weight`, `keep` and
    `report_confidence` are `Vote`'s confidence options: the vote and its stop test read a
    `WeightedPrefix` (whose `leader_conf` a reporting vote's ladder rung scores). With
    `mix_mode` the stream alternates two records (`tts.strategies.mixed`), each wave one
    call per representation; `window_stop` is ESC's stop on a unanimous wave."""
    greedy = temperature == 0
    mode = sampling_mode(mode, temperature)
    if mix_mode is not None:
        mode = mixed_key(mode, mix_mode)
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
    runs = None
    active = rows.copy()
    while active.any():
        want = np.minimum(np.where(k == 0, probe, wave), max_samples - k)
        if greedy and (active & (want > 1)).any():
            w = int(want[active & (want > 1)][0])
            raise ValidationError(f"`n` must be 1 for greedy sampling (temperature 0), got {w}.",
                                  parameter="n", value=w)
        if mix_mode is not None:
            n = _mixed_wave(run, active, model, m, k, want, max_tokens, seed)
            stopped = active & (n == 0)
            insufficient |= stopped & (k == 0)
            active = active & ~stopped
            if not active.any():
                break
        else:
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
            c = run.a.cost.of(model)
            units = (n * max_tokens) * c.output + due * c.prompt
            generated = pre.cum_tokens[idx, np.minimum(k + n, m.width)] - pre.cum_tokens[idx, k]
            run.commit(active, model, units, generated, due, mode)
        k_before = k
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
        if window_stop:
            if runs is None:
                runs = _runs(draw_classes(m, pre, max_tokens))
            last = np.minimum(np.maximum(k - 1, 0), m.width - 1)
            active = active & ~((n > 0) & (runs[idx, last] >= n) & (k > k_before))
        active = active & ~vote_stops(pre.total[idx, kk], pre.confidence[idx, kk], confidence)
        active = active & (k < max_samples)
    k = np.minimum(k, m.width)
    split = None if mix_mode is None else _split(run, m, k, seed, max_tokens)
    return VoteOut(k, insufficient, escalate_now, z, pre, (model, mode), split)


def _mixed_wave(run: Run, active: np.ndarray, model: str, m: ModeArrays, k: np.ndarray,
                want: np.ndarray, max_tokens: int, seed: int | None) -> np.ndarray:
    """One wave of a mixed vote on `active` rows (`tts.strategies.mixed.mixed_calls`): the
    largest wave of at most `want` draws whose calls, reserved one after the other (the first
    representation's, then the second's), both fit; commits both and returns the draws (0
    where none fits). The ledger's checks, `(spent + reserved) + units <= limit`, in its
    float order."""
    c = run.a.cost.of(model)
    parts = m.parts
    p = len(k)
    idx = np.arange(p)
    for part in parts:  # a record's prompt is priced (so read) before anything is reserved
        if run.count_prompt:
            run.require_records(active, part)
    due = [run.due(model, part) for part in parts]
    n = np.where(active, want, 0)
    while True:
        a_off, a, b_off, b = split_draws(k, n)
        ua = (a * max_tokens) * c.output + due[0] * c.prompt
        ub = (b * max_tokens) * c.output + due[1] * c.prompt
        fit_a = (a == 0) | ((run.spent + run.held) + ua <= run.limit)
        held_a = np.where(a > 0, run.held + ua, run.held)
        fit_b = (b == 0) | ((run.spent + held_a) + ub <= run.limit)
        bad = (n > 0) & ~(fit_a & fit_b)
        if not bad.any():
            break
        n = n - bad
    go = active & (n > 0)
    for part, off, cnt, units, d in ((parts[0], a_off, a, ua, due[0]),
                                     (parts[1], b_off, b, ub, due[1])):
        rows = go & (cnt > 0)
        run.require_samples(rows, part, off, cnt)
        if not rows.any():
            continue
        pre = run.a.prefix(model, part.mode, seed, max_tokens)
        end = np.minimum(off + cnt, part.width)
        start = np.minimum(off, part.width)
        run.commit(rows, model, units, pre.cum_tokens[idx, end] - pre.cum_tokens[idx, start], d,
                   part.mode)
    return n


def _runs(cls: np.ndarray) -> np.ndarray:
    """(P, S) length of the run of equal answering classes ending at each draw (0 where the
    draw abstains)."""
    out = np.zeros(cls.shape, np.int64)
    for j in range(cls.shape[1]):
        ans = cls[:, j] >= 0
        same = ans & (cls[:, j] == cls[:, j - 1]) if j else np.zeros(len(cls), bool)
        out[:, j] = np.where(ans, np.where(same, out[:, j - 1] + 1 if j else 1, 1), 0)
    return out


def _split(run: Run, m: ModeArrays, k: np.ndarray, seed: int | None,
           max_tokens: int) -> np.ndarray:
    """`tts.strategies.mixed.leaders_split` after k draws of a mixed stream: each
    representation's own leader (over its (k+1)//2 or k//2 draws) by class."""
    idx = np.arange(len(k))
    leaders = []
    for part, drawn in zip(m.parts, ((k + 1) // 2, k // 2)):
        pre = run.a.prefix(m.model, part.mode, seed, max_tokens)
        lead = pre.leader[idx, np.minimum(drawn, part.width)]
        leaders.append(np.where(lead >= 0, part.cls[idx, np.maximum(lead, 0)], -1))
    return (leaders[0] < 0) | (leaders[1] < 0) | (leaders[0] != leaders[1])


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
