"""The search space of a study: the rungs one trial suggests (`suggest_rungs`), and the
fixed plans every selection compares with (`baselines`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tts.signals import AGREEMENT_CLIMB_WEIGHTS, MOT_CLIMB_WEIGHTS
from tts.strategies.chain import is_chain_mode
from tts.strategies.ladder import Rung
from tts.tuning.data import (MAX_TOKENS, LadderData, default_rung, greedy_rung, slot_name,
                             top_rung)

FLOOR_RANGE = (0.5, 1.0)
"""The agreement floor a tuned rung always climbs below (tuned within this range)."""
CHECK_MAX = 4
CONF_WEIGHTS = ("none", "min_conf", "logprob")
"""What a lower vote's samples may count, where the bank has confidences (`Vote.weight`)."""
CONF_KEEP = (1.0, 0.9, 0.5, 0.1)
"""Shares of the most confident samples a lower vote may keep (`Vote.keep`; DeepConf's
conservative 90% and aggressive 10% filters, and half)."""


def mixes(data: LadderData) -> bool:
    """Whether the search space holds mixed-representation votes: some lower rung whose
    representation is searched has two or more sampled modes. Banks with one mode per model
    search exactly the space they did before mixed votes existed (no new trial parameter,
    the same study name)."""
    return any(len(data.modes[role]) >= 2 for role in _searched_roles(data))


def _searched_roles(data: LadderData) -> list[str]:
    """The role of every lower rung whose representation a trial chooses."""
    if data.slots is None:
        return list(data.roles[:-1])
    return [role for role, mode in data.slots[:-1] if mode is None]


# ---- search space ----------------------------------------------------------------------------
def suggest_rungs(trial: Any, data: LadderData) -> tuple[Rung, ...]:
    """The rungs of one trial (every choice is recorded in the trial's params)."""
    if data.slots is not None:
        return _suggest_slots(trial, data)
    rungs = []
    for role in data.roles[:-1]:
        if len(data.roles) > 2 and not trial.suggest_categorical(f"{role}_use", [True, False]):
            continue
        mode = trial.suggest_categorical(f"{role}_mode", data.modes[role])
        rungs.append(_suggest_climb(trial, data, _suggest_vote(trial, data, role, mode, role,
                                                               mixable=True), role))
    return (*rungs, _suggest_plain_top(trial, data))


def _suggest_vote(trial: Any, data: LadderData, role: str, mode: str, p: str,
                  mixable: bool = False) -> Rung:
    """A lower rung's vote in `mode` (parameters named `p`_...); where `mixable` (the
    representation is searched) and the role has two sampled modes or more, maybe a vote
    mixing `mode` with another (`_suggest_mixed`)."""
    mix = _suggest_mix(trial, data, role, mode, p) if mixable else None
    if mix is not None:
        return _suggest_mixed(trial, data, role, mode, mix, p)
    cap = data.max_samples[(role, mode)]
    wave = trial.suggest_int(f"{p}_wave", 1, min(8, cap))
    max_samples = trial.suggest_int(f"{p}_max_samples", 1, cap)
    confidence = _suggest_stop(trial, p)
    # A fixed choice list (Optuna's categoricals are static); checking the vote's own
    # representation means no check.
    check = trial.suggest_categorical(f"{p}_check", ["none", *data.modes[role]])
    check = "none" if check == mode else check
    check_samples = 0
    if check != "none":
        check_samples = trial.suggest_int(f"{p}_check_samples", 1,
                                          min(CHECK_MAX, data.max_samples[(role, check)]))
    return Rung(role=role, mode=mode, wave=wave, max_samples=max_samples, max_tokens=MAX_TOKENS,
                confidence=confidence, check_mode=None if check == "none" else check,
                check_samples=check_samples, **_suggest_confidence(trial, data, role, mode, p))


def _suggest_stop(trial: Any, p: str) -> float:
    """A vote's Adaptive-Consistency stop (`p`_stop_early, `p`_confidence; 1.0: none)."""
    if trial.suggest_categorical(f"{p}_stop_early", [True, False]):
        return trial.suggest_float(f"{p}_confidence", 0.5, 1.0)
    return 1.0


def _suggest_mix(trial: Any, data: LadderData, role: str, mode: str, p: str) -> str | None:
    """The representation a vote in `mode` mixes in (`p`_mixed; with three modes or more,
    `p`_mix_mode, the next mode in order when it names `mode` itself), or None. With one
    sampled mode no parameter is asked."""
    modes = data.modes[role]
    if len(modes) < 2 or not trial.suggest_categorical(f"{p}_mixed", [False, True]):
        return None
    if len(modes) == 2:
        return modes[1 - modes.index(mode)]
    mix = trial.suggest_categorical(f"{p}_mix_mode", list(modes))
    return modes[(modes.index(mode) + 1) % len(modes)] if mix == mode else mix


def _suggest_mixed(trial: Any, data: LadderData, role: str, mode: str, mix: str,
                   p: str) -> Rung:
    """A mixed vote (`Rung.mix_mode`: `mode` and `mix` drawn alternately, MoT's vote) of
    2..2n draws (n: the smaller record), in waves, with Adaptive-Consistency stopping. It
    votes plainly and takes no check: both representations already vote. ESC's window stop
    (`Rung.window_stop`) is not searched: on MoT DATE it cost more than Adaptive-Consistency
    for the same accuracy, mixed or not (bench/results/peers)."""
    cap = 2 * min(data.max_samples[(role, mode)], data.max_samples[(role, mix)])
    wave = trial.suggest_int(f"{p}_wave", 1, min(8, data.max_samples[(role, mode)]))
    return Rung(role=role, mode=mode, mix_mode=mix, wave=wave, max_tokens=MAX_TOKENS,
                max_samples=trial.suggest_int(f"{p}_mix_samples", 2, cap),
                confidence=_suggest_stop(trial, p))


def _suggest_confidence(trial: Any, data: LadderData, role: str, mode: str,
                        p: str) -> dict[str, Any]:
    """A lower vote's DeepConf options (`Rung.weight`, `Rung.keep`; parameters `p`_vote_weight
    and `p`_keep), searched only where the bank has confidences for (role, mode) on every
    training question; elsewhere none, and no trial parameter, so such studies are as they
    were before these options existed."""
    if (role, mode) not in data.confident:
        return {}
    return {"weight": trial.suggest_categorical(f"{p}_vote_weight", list(CONF_WEIGHTS)),
            "keep": trial.suggest_categorical(f"{p}_keep", list(CONF_KEEP))}


def _suggest_climb(trial: Any, data: LadderData, rung: Rung, p: str) -> Rung:
    """`rung` with its climb rule (parameters named `p`_...): the score's weights (fixed
    agreement or MoT weights, or those learned for its (role, mode, check)), the agreement
    floor and the score threshold; a mixed vote also whether to climb when its two
    representations' majorities differ (`p`_climb_split, MoT's verification); with a router
    prior, whether and when to skip the rung."""
    score = trial.suggest_categorical(f"{p}_score", ["agreement", "mot", "learned"])
    weights = {"agreement": AGREEMENT_CLIMB_WEIGHTS, "mot": MOT_CLIMB_WEIGHTS}.get(
        score, data.learned.get((rung.role, rung.mode, rung.check_mode),
                                AGREEMENT_CLIMB_WEIGHTS))
    extra: dict[str, Any] = {}
    if data.prior_kind == "router" and data.prompt is not None \
            and trial.suggest_categorical(f"{p}_skip", [False, True]):
        # Route before generating: skip this rung when the router says it likely fails.
        extra["skip_above"] = trial.suggest_float(f"{p}_skip_above", 0.5, 1.0)
    if rung.mix_mode is not None:
        extra["climb_split"] = trial.suggest_categorical(f"{p}_climb_split", [False, True])
    return replace(rung, weights=weights,
                   climb_below=trial.suggest_float(f"{p}_floor", *FLOOR_RANGE),
                   climb_above=trial.suggest_float(f"{p}_climb_above", 0.05, 1.0), **extra)


def _suggest_plain_top(trial: Any, data: LadderData) -> Rung:
    """The top model's rung when no mode is named: its greedy answer, or a vote of 2..n."""
    if trial.suggest_categorical("large_vote", [False, True]) and data.modes["large"]:
        mode = data.modes["large"][0]
        k = trial.suggest_int("large_samples", 2, data.max_samples[("large", mode)])
        return Rung(role="large", mode=mode, wave=k, max_samples=k, max_tokens=MAX_TOKENS)
    return top_rung(data.greedy["large"])


def _suggest_slots(trial: Any, data: LadderData) -> tuple[Rung, ...]:
    """`suggest_rungs` for a ladder of rungs: per lower slot the same choices as a plain
    ladder's rung (the representation only where the entry names none); a chain slot
    chooses 1..n chains and its climb rule, no check; a greedy slot (a lower model's greedy
    answer) only its climb rule."""
    slots = data.slots or ()
    rungs = []
    for slot in slots[:-1]:
        role, mode = slot
        p = slot_name(slot)
        if len(slots) > 2 and not trial.suggest_categorical(f"{p}_use", [True, False]):
            continue
        if mode in data.greedy[role]:
            rung = greedy_rung(role, mode)
        elif mode is not None and is_chain_mode(mode):
            rung = Rung(role=role, mode=mode, **data.chain_rung[slot],
                        max_samples=trial.suggest_int(f"{p}_max_samples", 1,
                                                      data.max_samples[slot]))
        else:
            searched = mode is None
            if searched:
                mode = trial.suggest_categorical(f"{p}_mode", data.modes[role])
            rung = _suggest_vote(trial, data, role, mode, p, mixable=searched)
        rungs.append(_suggest_climb(trial, data, rung, p))
    return (*rungs, _top_slot_rung(trial, data))


def _top_slot_rung(trial: Any, data: LadderData) -> Rung:
    """The top rung of a ladder of rungs: the plain choice (greedy, or a vote) for an entry
    without a mode; else its greedy answer, a vote of 1..n samples or 1..n chains."""
    role, mode = (data.slots or ())[-1]
    if mode is None:
        return _suggest_plain_top(trial, data)
    if mode in data.greedy["large"]:
        return greedy_rung("large", mode)
    k = trial.suggest_int(f"{slot_name((role, mode))}_samples", 1,
                          data.max_samples[(role, mode)])
    if is_chain_mode(mode):
        return Rung(role=role, mode=mode, max_samples=k, **data.chain_rung[(role, mode)])
    return Rung(role=role, mode=mode, wave=k, max_samples=k, max_tokens=MAX_TOKENS)


CHEAPER_CASCADES = ((2, 0.5), (4, 0.5), (8, 0.5))
"""(samples, agreement floor) of the cheaper fixed cascades beside the default (16, 0.6): a
capped selection then has a fixed plan near every cost level (MoT GSM8K at a 60% cap: the
search alone, on all 300 questions, found nothing between 10% and 60%, and every cap deployed
a 0.39 plan; the vote of 8 climbing below 50% agreement scores 0.79 at 59%)."""


def baselines(data: LadderData) -> dict[str, tuple[Rung, ...]]:
    """Fixed plans every selection compares with: the top model alone, and from every lower
    tier in every sampled representation the default cascade (a vote of up to 16 samples in
    waves of 4 with Adaptive-Consistency stopping, climbing to the top model below 60%
    agreement) and cheaper ones (`CHEAPER_CASCADES`). Fixed plans are not fitted to the
    training questions, so they carry no winner's curse: a tuned plan has to beat them
    clearly to be kept. MoT-1D-Vote is not one of them: on MoT DATE it ties the PoT cascade
    on training folds at twice its cost, and the most accurate fixed plan is taken without a
    margin, so with it the 40% and 60% caps deployed it and lost held-out accuracy (0.939 at
    38% and 0.949 at 45% of GPT-4's cost, against 0.947 at 29% and 0.953 at 31% without it;
    `python bench/tune_date.py --trials 100`, two tiers)."""
    top = top_rung(data.greedy["large"])
    out = {"top-model": (top,)}
    votes: list[tuple[str, str]] = []
    if data.slots is not None:
        for slot in data.slots[:-1]:
            role, mode = slot
            if mode is not None and (is_chain_mode(mode) or mode in data.greedy[role]):
                out[f"cascade-{role}-{mode}"] = (
                    default_rung(data, slot, climb_below=0.6), top)
                continue
            votes += [(role, v) for v in ([mode] if mode is not None else data.modes[role])]
    else:
        votes = [(role, mode) for role in data.roles[:-1] for mode in data.modes[role]]
    for role, mode in votes:
        cap = data.max_samples[(role, mode)]
        out[f"cascade-{role}-{mode}"] = (
            Rung(role=role, mode=mode, wave=min(4, cap), max_samples=min(16, cap),
                 max_tokens=MAX_TOKENS, confidence=0.95, climb_below=0.6), top)
        for k, floor in CHEAPER_CASCADES:
            if k < min(16, cap):
                out[f"cascade-{role}-{mode}@{k}/{floor:g}"] = (
                    Rung(role=role, mode=mode, wave=min(4, k), max_samples=k,
                         max_tokens=MAX_TOKENS, confidence=0.95, climb_below=floor), top)
    return out

