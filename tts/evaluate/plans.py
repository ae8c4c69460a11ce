"""The evaluator's plans: every Strategy (Escalate, Cascade, Adaptive, Ladder, Chain) as
array operations over all problems, built on the vote phase (`tts.evaluate.vote`) and the
simulated ledger (`tts.evaluate.ledger`); decisions come from `tts.signals`, as in the
live strategies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tts.bank import sample_order
from tts.errors import ValidationError
from tts.evaluate.arrays import BankArrays
from tts.evaluate.ledger import ABSTAINED, ANSWERED, INSUFFICIENT, Run
from tts.evaluate.vote import VoteOut, apply_vote, vote_phase
from tts.signals import (CLIMB_FEATURES, climb_logit, climbs, sampling_mode, threshold_logit,
                         vote_signals)
from tts.strategies import Adaptive, Cascade, Chain, Escalate, Ladder, Strategy, Vote
from tts.strategies.chain import is_forced_chain_mode
from tts.strategies.ladder import Rung
from tts.strategies.router import RandomRouter, routed

__all__ = ["run_strategy", "run_ladder"]


def _large_request(samples: int, temperature: float) -> tuple[str, bool]:
    greedy = samples == 1
    if not greedy and temperature == 0:
        raise ValidationError(f"`n` must be 1 for greedy sampling (temperature 0), got "
                              f"{samples}.", parameter="n", value=samples)
    return sampling_mode(None, 0.0 if greedy else temperature), greedy  # as escalate_steps


def _large_price(run: Run, rows: np.ndarray, samples: int, max_tokens: int,
                 temperature: float):
    """The large call's (model, mode, greedy, mode arrays, prompt due, fits, units) per row."""
    model = run.a.models["large"]
    mode, greedy = _large_request(samples, temperature)
    m = run.a.mode(model, mode)
    if run.count_prompt:
        run.require_records(rows, m)
    due = run.due(model, m)
    fits, units = run.fits(model, samples, max_tokens, due)
    return model, mode, greedy, m, due, fits, units


def _large_phase(run: Run, rows: np.ndarray, *, samples: int, max_tokens: int,
                 temperature: float, keys: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One large-model call per row (escalate_steps); returns (insufficient, answered, rows)."""
    model, mode, greedy, m, due, fits, units = _large_price(run, rows, samples, max_tokens,
                                                          temperature)
    go = rows & fits
    run.require_samples(go, m, np.zeros(len(rows), np.int64), np.full(len(rows), samples))
    if not go.any():
        return rows & ~fits, np.zeros(len(rows), bool), go
    pre = run.a.prefix(model, mode, None if greedy else run.seed, max_tokens)
    k = np.full(len(rows), min(samples, m.width))
    run.commit(go, model, units, pre.cum_tokens[:, k[0]], due, mode)
    answered = go & (pre.total[:, k[0]] > 0)
    run.status = np.where(go, np.where(answered, ANSWERED, ABSTAINED), run.status)
    run.set_answer(go, (model, mode), pre, k, keys)
    run.escalated = run.escalated | go
    return rows & ~fits, answered, go


def _hold_large(run: Run, rows: np.ndarray, samples: int, max_tokens: int,
                temperature: float) -> None:
    """Cascade's keep_for_large: reserve the large call's price before voting."""
    *_, fits, units = _large_price(run, rows, samples, max_tokens, temperature)
    run.held = np.where(rows & fits, units, 0.0)


def _hold_rung(run: Run, rows: np.ndarray, rung: Rung) -> None:
    """A rung's `hold_next`: reserve the price of `rung`'s (the next one's) first call."""
    model = run.a.models[rung.role]
    m = run.a.mode(model, sampling_mode(rung.mode, rung.temperature))
    if run.count_prompt:
        run.require_records(rows, m)
    fits, units = run.fits(model, min(rung.probe or rung.wave, rung.max_samples),
                           rung.max_tokens, run.due(model, m))
    run.held = np.where(rows & fits, units, 0.0)


def _cascade_like(run: Run, rows: np.ndarray, keys: list, *, vote: dict, escalates,
                  large: dict | None, keep_for_large: bool) -> None:
    """A small-model vote, then one large call where `escalates(out, answered)` says so
    (`Cascade.steps` and `Adaptive.steps`)."""
    if large is not None and keep_for_large:
        _hold_large(run, rows, large["samples"], large["max_tokens"], large["temperature"])
    out = vote_phase(run, rows, model=run.a.models["small"], **vote)
    run.held = np.zeros(len(rows))
    apply_vote(run, rows, out, keys)
    if out.z is not None:
        run.difficulty = np.where(rows & ~np.isnan(out.z), _sigmoid(out.z), run.difficulty)
    if large is None:
        return
    small_answered = rows & out.answered()
    esc = rows & escalates(out, small_answered)
    if not esc.any():
        return
    # Snapshot the small outcome; the large call overwrites the rows it answers.
    saved = (run.status.copy(), run.correct.copy(), run.answer_mode.copy(),
             run.answer_index.copy())
    insufficient, answered, went = _large_phase(run, esc, keys=keys, **large)
    # Large model unaffordable: keep the small outcome (not escalated).
    # Large model abstained but the small vote answered: small answer, escalated.
    fallback = went & ~answered & small_answered
    restore = fallback | insufficient
    run.status = np.where(restore, saved[0], run.status)
    run.correct = np.where(restore, saved[1], run.correct)
    run.answer_mode = np.where(restore, saved[2], run.answer_mode)
    run.answer_index = np.where(restore, saved[3], run.answer_index)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def run_strategy(run: Run, rows: np.ndarray, strategy: Strategy, keys: list,
                 prior: np.ndarray | None = None) -> None:
    """Run `strategy` on `rows` of one seed's run (`Engine.solve_many` with that strategy)."""
    if isinstance(strategy, Vote):
        out = vote_phase(run, rows, model=run.a.models[strategy.role],
                         max_samples=strategy.max_samples, probe=strategy.wave,
                         wave=strategy.wave, max_tokens=strategy.max_tokens,
                         temperature=strategy.temperature, confidence=strategy.confidence,
                         mode=strategy.mode, weight=strategy.weight, keep=strategy.keep,
                         mix_mode=strategy.mix_mode, window_stop=strategy.window_stop)
        apply_vote(run, rows, out, keys)
    elif isinstance(strategy, Ladder):
        run_ladder(run, rows, strategy, keys, prior)
    elif isinstance(strategy, RandomRouter):
        strong = np.array([routed(pid, strategy.share, strategy.seed)
                           for pid in run.a.problem_ids], bool)
        for part, plan in ((rows & ~strong, strategy.weak), (rows & strong, strategy.strong)):
            if part.any():
                run_strategy(run, part, plan, keys, prior)
    elif isinstance(strategy, Escalate):
        _large_phase(run, rows, samples=strategy.samples, max_tokens=strategy.max_tokens,
                     temperature=strategy.temperature, keys=keys)
    elif isinstance(strategy, Cascade):
        vote = dict(max_samples=strategy.max_samples, probe=strategy.wave, wave=strategy.wave,
                    max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                    confidence=strategy.confidence)
        below = strategy.escalate_below
        _cascade_like(run, rows, keys, vote=vote,
                      escalates=lambda out, answered: climbs(  # the floor alone, as live
                          answered, out.pre.agreement[np.arange(len(out.k)), out.k], 0.0,
                          below, 1.0),
                      large=dict(samples=strategy.large_samples,
                                 max_tokens=strategy.large_max_tokens,
                                 temperature=strategy.temperature),
                      keep_for_large=strategy.keep_for_large)
    elif isinstance(strategy, Adaptive):
        vote = dict(max_samples=strategy.max_samples, probe=strategy.probe, wave=strategy.wave,
                    max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                    confidence=strategy.confidence, weights=strategy.weights,
                    prior=strategy.prior if prior is None else prior,
                    early_above=strategy.escalate_early_above if strategy.large else 1.0)
        above = strategy.escalate_above
        large = None
        if strategy.large:
            large = dict(samples=strategy.large_samples, max_tokens=strategy.large_max_tokens,
                         temperature=strategy.temperature)
        _cascade_like(run, rows, keys, vote=vote,
                      escalates=lambda out, answered: out.escalate_now | climbs(
                          answered, out.pre.agreement[np.arange(len(out.k)), out.k], out.z,
                          0.0, above),  # the score alone, as live
                      large=large, keep_for_large=strategy.keep_for_large)
    elif isinstance(strategy, Chain):
        _chain(run, rows, strategy, keys)
    else:
        raise ValidationError(f"evaluate cannot vectorise strategy {type(strategy).__name__}; "
                              f"it supports Vote, Escalate, Cascade, Chain, Adaptive, Ladder and "
                              f"RandomRouter.",
                              parameter="plan")


def run_ladder(run: Run, rows: np.ndarray, strategy: Ladder, keys: list,
               prior: np.ndarray | None) -> None:
    """`Ladder.steps` for all rows: vote, check, score and climb, rung by rung."""
    p = len(rows)
    idx = np.arange(p)
    prior_arr = np.broadcast_to(strategy.prior if prior is None else prior, (p,))
    active = rows.copy()
    have = np.zeros(p, bool)
    lower_cls = np.full(p, -1, np.int64)
    last = len(strategy.rungs) - 1
    for i, rung in enumerate(strategy.rungs):
        if not active.any():
            break
        model = run.a.models[rung.role]
        skip = np.zeros(p, bool)
        if rung.skip_above < 1.0:  # straight to the next rung, nothing drawn
            skip = active & (prior_arr >= threshold_logit(rung.skip_above))
            active = active & ~skip
            if not active.any():
                active = skip
                continue
        if rung.hold_next:
            _hold_rung(run, active, strategy.rungs[i + 1])
        if rung.is_chain:
            out: VoteOut = _chain_rung(run, active, model, rung)
        else:
            early = rung.climb_early_above < 1.0 and i < last
            out = vote_phase(run, active, model=model, max_samples=rung.max_samples,
                             probe=rung.probe or rung.wave, wave=rung.wave,
                             max_tokens=rung.max_tokens, temperature=rung.temperature,
                             confidence=rung.confidence, mode=rung.mode, weight=rung.weight,
                             keep=rung.keep, report_confidence=rung.measures_leader_conf,
                             weights=rung.weights if early else None, prior=prior_arr,
                             early_above=rung.climb_early_above, mix_mode=rung.mix_mode,
                             window_stop=rung.window_stop)
        run.held = np.zeros(p)
        k = out.k
        n_drawn = out.drawn if isinstance(out, ChainOut) else k
        answered = out.answered()
        if i == 0:
            run.small_samples = np.where(active, n_drawn, run.small_samples)
        first_none = active & out.insufficient & ~have
        run.status = np.where(first_none, INSUFFICIENT, run.status)
        run.correct = np.where(first_none, False, run.correct)
        run.answer_mode = np.where(first_none, -1, run.answer_mode)
        run.escalated = run.escalated | (active & ~out.insufficient & have & ~answered)
        ok = active & ~out.insufficient & ~(have & ~answered)
        run.status = np.where(ok, np.where(answered, ANSWERED, ABSTAINED), run.status)
        run.set_answer(ok, out.key, out.pre, k, keys)
        run.escalated = np.where(ok, i > 0 or strategy.skipped, run.escalated)
        m = run.a.mode(model, out.key[1])
        lead = out.pre.leader[idx, k]
        lead_cls = np.where(lead >= 0, m.cls[idx, np.maximum(lead, 0)], -1)
        same = have & (lead_cls >= 0) & (lead_cls == lower_cls)
        have = have | ok
        lower_cls = np.where(ok, lead_cls, lower_cls)
        if i == last:
            break
        agree = np.zeros(p, np.int64)
        drawn = np.zeros(p, np.int64)
        now = out.escalate_now
        if rung.check_samples:
            agree, drawn = _check(run, ok & answered & ~now, model, rung, lead_cls)
        ks = np.maximum(n_drawn, 1)
        kk = np.minimum(k, m.width)
        pre = out.pre
        with np.errstate(invalid="ignore", divide="ignore"):
            check_share = np.where(drawn > 0, agree / np.maximum(drawn, 1), 0.0)
        feats = (*vote_signals(pre.agreement[idx, kk], pre.entropy[idx, kk],
                               n_drawn - pre.answering()[idx, kk], pre.distinct[idx, kk], ks),
                 check_share, np.where(same, 1.0, 0.0), prior_arr,
                 pre.leader_conf[idx, kk] if rung.measures_leader_conf  # type: ignore
                 else np.zeros(p))
        assert len(feats) == len(CLIMB_FEATURES)
        z = climb_logit(rung.weights, feats)
        run.rung_features.append((i, ok.copy(), np.stack(feats, 1),
                                  out.pre.leader_correct[idx, kk] & answered))
        split = out.split if rung.climb_split else False
        active = skip | first_none | ok & (now | climbs(answered, pre.agreement[idx, kk], z,
                                                 rung.climb_below, rung.climb_above) | split)


@dataclass
class ChainOut(VoteOut):
    """A chain rung's outcome: `k` counts the chains the vote statistics (`pre`, the stream
    truncated at the rung's `max_tokens`) cover, `drawn` the chains drawn; they differ by
    one where the last chain was cut short by the budget (drawn, but without an answer)."""

    drawn: np.ndarray = None  # type: ignore[assignment]


def _chain_rung(run: Run, rows: np.ndarray, model: str, rung: Rung) -> ChainOut:
    """`Rung.steps` of a chain rung for all rows: up to `max_samples` chains one after
    another, each sized to the budget left (`Chain.chain_steps`, chain j = draw j of the
    seeded stream), then voted."""
    chain = rung.chain()
    mode = chain.mode
    m = run.a.mode(model, mode)
    c = run.a.cost.of(model)
    if (chain.answer_tokens or chain.max_waits) and _has_texts(run.a, model, mode):
        raise ValidationError("evaluate cannot vectorise a chain rung's budget forcing "
                              "(answer_tokens, max_waits) on a bank that stores the texts of "
                              "one-call chains: forcing depends on the text; use "
                              "Engine.solve_many.",
                              parameter="plan")
    pre = run.a.prefix(model, mode, run.seed, chain.max_tokens)
    p = len(rows)
    idx = np.arange(p)
    drawn = np.zeros(p, np.int64)
    counted = np.zeros(p, np.int64)
    insufficient = np.zeros(p, bool)
    held = chain.answer_tokens * c.output  # kept back for a forced final answer
    active = rows.copy()
    for j in range(rung.max_samples):
        if not active.any():
            break
        if run.count_prompt:
            run.require_records(active, m)
        due = run.due(model, m)
        remaining = np.maximum(0.0, (run.limit - run.spent) - run.held)
        with np.errstate(invalid="ignore"):
            length = np.minimum(chain.max_tokens, np.floor_divide(
                (remaining - due * c.prompt) - held, c.output)).astype(np.int64)
        units = length * c.output + due * c.prompt
        go = active & (length >= chain.min_tokens) & ((run.spent + run.held) + units
                                                       <= run.limit)
        insufficient |= active & ~go & (drawn == 0)
        if not go.any():
            break
        run.require_samples(go, m, np.full(p, j, np.int64), np.ones(p, np.int64))
        tok = m.tokens[idx, np.maximum(pre.order[:, min(j, m.width - 1)], 0)]
        run.commit(go, model, units, np.minimum(tok, length), due, mode)
        drawn = drawn + go
        # Cut by the budget below max_tokens: drawn without an answer, which the prefix
        # (truncated at max_tokens only) would count; such a chain leaves less than
        # min_tokens, so it is the last one.
        cut = go & (tok > length) & (tok <= chain.max_tokens)
        counted = np.where(go & ~cut, j + 1, counted)
        active = go & ~cut
    return ChainOut(counted, insufficient, np.zeros(p, bool), np.full(p, np.nan), pre,
                    (model, mode), drawn=drawn)


def _check(run: Run, rows: np.ndarray, model: str, rung: Any,
           lead_cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A rung's check call (all or nothing): (answers equal to the leader, samples drawn)."""
    p = len(rows)
    n = rung.check_samples
    cm = run.a.mode(model, rung.check_mode)
    if run.count_prompt:
        run.require_records(rows, cm)
    due = run.due(model, cm)
    fits, units = run.fits(model, n, rung.max_tokens, due)
    go = rows & fits
    run.require_samples(go, cm, np.zeros(p, np.int64), np.full(p, n))
    if not go.any():
        return np.zeros(p, np.int64), np.zeros(p, np.int64)
    pre = run.a.prefix(model, rung.check_mode, run.seed, rung.max_tokens)
    kc = min(n, cm.width)
    run.commit(go, model, units, pre.cum_tokens[:, kc], due, rung.check_mode)
    order = pre.order[:, :kc]
    valid = order >= 0
    oc = np.where(valid, order, 0)
    cls = np.take_along_axis(cm.cls, oc, 1)
    tok = np.take_along_axis(cm.tokens, oc, 1)
    cls = np.where(valid & (tok <= rung.max_tokens), cls, -1)
    agree = ((cls == lead_cls[:, None]) & (lead_cls[:, None] >= 0)).sum(1)
    return np.where(go, agree, 0), np.where(go, n, 0)


def _chain(run: Run, rows: np.ndarray, strategy: Chain, keys: list) -> None:
    model = run.a.models[strategy.role]
    m = run.a.mode(model, strategy.mode)
    c = run.a.cost.of(model)
    if run.count_prompt:
        run.require_records(rows, m)
        prompt_units = m.prompt_tokens * c.prompt
    else:
        prompt_units = np.zeros(len(rows))
    if (strategy.answer_tokens or strategy.max_waits) and _has_texts(run.a, model, strategy.mode):
        raise ValidationError("evaluate cannot vectorise Chain budget forcing (answer_tokens, "
                              "max_waits) on a bank that stores the texts of one-call chains: "
                              "forcing depends on the text; use Engine.solve_many.",
                              parameter="plan")
    remaining = np.maximum(0.0, (run.limit - run.spent) - run.held)
    held = strategy.answer_tokens * c.output  # kept back for a forced final answer
    with np.errstate(invalid="ignore"):
        length = np.minimum(strategy.max_tokens, np.floor_divide(
            (remaining - prompt_units) - held, c.output)).astype(np.int64)
    ok = rows & (length >= strategy.min_tokens)
    due = run.due(model, m)
    units = length * c.output + due * c.prompt
    fits = (run.spent + run.held) + units <= run.limit
    go = ok & fits
    run.require_samples(go, m, np.zeros(len(rows), np.int64), np.ones(len(rows), np.int64))
    if not go.any():
        return
    idx = np.arange(len(rows))
    seed = run.seed
    # Each row has its own length cap: read its first chain sample directly.
    order0 = np.zeros(len(rows), np.int64)
    for i in np.flatnonzero(go):
        order0[i] = sample_order(run.a.problem_ids[i], model, strategy.mode, seed,
                                 int(m.size[i]))[0]
    tok = m.tokens[idx, order0]
    cls = m.cls[idx, order0]
    truncated = tok > length
    generated = np.minimum(tok, length)
    run.commit(go, model, units, generated, due, strategy.mode)
    answered = go & ~truncated & (cls >= 0)
    run.status = np.where(go, np.where(answered, ANSWERED, ABSTAINED), run.status)
    key = (model, strategy.mode)
    if key not in keys:
        keys.append(key)
    run.answer_mode = np.where(answered, keys.index(key), run.answer_mode)
    run.answer_index = np.where(answered, order0, run.answer_index)
    run.correct = np.where(go, answered & m.correct[idx, order0], run.correct)


def _has_texts(arrays: BankArrays, model: str, mode: str) -> bool:
    """Whether replay serves texts of (model, mode) on these problems, on which a forcing
    chain would act (never for whole forced chains, "chain-<L>": replay withholds them)."""
    if is_forced_chain_mode(mode):
        return False
    key = ("has-texts", model, mode)
    got = arrays.cache.get(key)
    if got is None:
        wanted = set(arrays.problem_ids)
        got = arrays.cache[key] = any(
            s.text is not None for (pid, m, md), rec in arrays.bank.records.items()
            if m == model and md == mode and pid in wanted for s in rec.samples)
    return got
