"""What a tuning run knows about its training questions (`LadderData`): the ladder and its
rungs (`parse_ladder`), the modes every question holds, the fitted prompt model and climb
scores, and the top model's reference accuracy and cost."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tts.bank import is_greedy_mode
from tts.build import chain_forcing
from tts.difficulty import fit_logistic
from tts.errors import BankError, ValidationError
from tts.evaluate import BankArrays, evaluate, ladder_features
from tts.signals import CLIMB_FEATURES
from tts.strategies.chain import is_chain_mode
from tts.strategies.ladder import Ladder, Rung
from tts.types import ladder_roles
from tts.tuning.folds import GroupBy, group_labels
from tts.tuning.priors import check_prior, fit_prior

MAX_TOKENS = 512


# ---- ladders of rungs ("model:mode") ---------------------------------------------------------
Slot = tuple[str, "str | None"]
"""One rung of a `model:mode` ladder: (role, mode, or None for the search to choose)."""


def parse_ladder(ladder: Sequence[str]) -> tuple[tuple[str, ...], tuple[Slot, ...] | None]:
    """(models cheapest first, rung slots) of a ladder's entries; slots are None when every
    entry is a plain model name (one rung per model, as always)."""
    entries = [str(e).strip() for e in ladder]
    if not any(":" in e for e in entries):
        return tuple(entries), None
    pairs = []
    for e in entries:
        model, _, mode = e.partition(":")
        if not model.strip() or (":" in e and not mode.strip()):
            raise ValidationError(f"a ladder rung is `model` or `model:mode`, got {e!r}.",
                                  parameter="ladder", value=e)
        pairs.append((model.strip(), mode.strip() or None))
    models = tuple(dict.fromkeys(m for m, _ in pairs))
    order = [models.index(m) for m, _ in pairs]
    if order != sorted(order):
        raise ValidationError(f"a model's rungs must be next to each other, cheapest model "
                              f"first, got {', '.join(entries)}.", parameter="ladder")
    if len(set(pairs)) != len(pairs):
        dup = next(e for e in entries if entries.count(e) > 1)
        raise ValidationError(f"ladder rung {dup!r} appears twice.", parameter="ladder")
    roles = ladder_roles(len(models))
    slots = tuple((roles[models.index(m)], mode) for m, mode in pairs)
    if len(slots) < 2 or slots[-1][0] != "large" or [r for r, _ in slots].count("large") > 1:
        raise ValidationError(f"a ladder of rungs needs at least two rungs, the last (only) "
                              f"one on the top model, got {', '.join(entries)}.",
                              parameter="ladder")
    return models, slots


def slot_name(slot: Slot) -> str:
    """Prefix of a slot's trial parameters (the role alone for a plain entry, as always)."""
    role, mode = slot
    return role if mode is None else f"{role}_{mode}"


# ---- data fitted on a training split -------------------------------------------------------
@dataclass
class LadderData:
    arrays: BankArrays
    """Training questions, roles from the ladder."""
    ladder: tuple[str, ...]
    seeds: tuple[int, ...]
    count_prompt: bool
    budget: float
    modes: dict[str, list[str]]
    """Per role: sampled modes every training question has (>= 2 samples)."""
    greedy: dict[str, list[str]]
    """Per role: greedy modes every training question has."""
    max_samples: dict[tuple[str, str], int]
    learned: dict[tuple[str, str, str | None], tuple[float, ...]]
    """Climb weights fitted per (role, mode, check mode)."""
    ref_cost: float
    top_accuracy: float
    prompt: Any = None
    """PromptDifficulty fitted on the training questions (its logit is the `prior` feature),
    None when the labels are all one class."""
    priors: Any = None
    """Out-of-fold prompt logits of the training questions (for fitting climb scores)."""
    prior_kind: str = "prompt"
    """What the prior is ("prompt" features or a "router", `tts.tuning.priors`)."""
    group_by: Any = "question"
    """How the tuning's folds group questions (`tts.tuning.folds.GroupBy`): a router prior's
    own folds group them the same way, and so does every inner tuning run."""
    fingerprint: str = ""
    slots: tuple[Slot, ...] | None = None
    """The rungs of a `model:mode` ladder (None: one rung per model, modes searched)."""
    chain_rung: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    """Per chain slot, the settings of its rung: `max_tokens` (the longest chain of the mode
    in the bank, so replay never cuts one) and the budget forcing the bank's chains were built
    with (`answer_tokens`, `max_waits`, `tts.build.chain_forcing`), so that the deployed rung
    runs live what replay scored."""
    confident: frozenset[tuple[str, str]] = frozenset()
    """(role, mode) of the vote modes whose every answering sample, on every training
    question, has its min_conf and mean logprob: only these rungs may weight or filter their
    vote by confidence and learn a `leader_conf` weight (`_has_confidences`)."""

    @property
    def roles(self) -> tuple[str, ...]:
        return ladder_roles(len(self.ladder))

    @property
    def entries(self) -> tuple[str, ...]:
        """The ladder as given (`model` or `model:mode` entries)."""
        if self.slots is None:
            return self.ladder
        models = dict(zip(self.roles, self.ladder))
        return tuple(models[r] if m is None else f"{models[r]}:{m}" for r, m in self.slots)


def _modes(arrays: BankArrays, model: str) -> tuple[list[str], list[str], dict[str, int]]:
    sampled, greedy, sizes = [], [], {}
    for (m, mode), ma in arrays.modes.items():
        if m != model or (ma.size == 0).any():
            continue
        if is_greedy_mode(mode):
            greedy.append(mode)
        elif int(ma.size.min()) >= 2 and not is_chain_mode(mode):
            sampled.append(mode)
            sizes[mode] = int(ma.size.min())
    return sorted(sampled), sorted(greedy), sizes


def _vote_modes(sampled: Sequence[str], slots: Sequence[Slot] | None, role: str) -> list[str]:
    """The modes a lower rung of `role` may vote in: its sampled modes, and the vote modes
    its `model:mode` entries name."""
    named = [m for r, m in slots or () if r == role and m is not None and not is_chain_mode(m)]
    return list(dict.fromkeys([*sampled, *named]))


def _chain_forcing(arrays: BankArrays, model: str, mode: str) -> dict[str, int]:
    """`tts.build.chain_forcing` of the bank, read from its meta.json once per bank (kept in
    the root arrays' cache, which every fold's subset shares) rather than once per fold."""
    key = ("chain-forcing", model, mode)
    got = arrays.root.cache.get(key)
    if got is None:
        got = arrays.root.cache[key] = chain_forcing(arrays.bank, model, mode)
    return got


def _has_confidences(arrays: BankArrays, model: str, mode: str) -> bool:
    """Whether every answering sample of (model, mode) on every question of `arrays` has
    both confidences (min_conf and mean logprob), so any confidence option can replay."""
    m = arrays.mode(model, mode)
    if (m.size == 0).any():
        return False
    answering = m.cls >= 0
    return all(not np.isnan(arrays.confidences(model, mode, measure)[answering]).any()
               for measure in ("min_conf", "logprob"))


def top_rung(greedy_modes: Sequence[str]) -> Rung:
    """The top model's greedy answer ("greedy" when the bank has it, else its first greedy
    mode)."""
    return greedy_rung("large", "greedy" if "greedy" in greedy_modes else greedy_modes[0])


def greedy_rung(role: str, mode: str, **kw: Any) -> Rung:
    """A rung of `role`'s one greedy answer in `mode` (the top model's, or a lower rung whose
    `model:mode` entry names a greedy mode: the cheapest first answer to escalate from)."""
    return Rung(role=role, mode=mode, temperature=0.0, max_samples=1, wave=1,
                max_tokens=MAX_TOKENS, **kw)


def prepare_ladder(arrays: BankArrays, ladder: Sequence[str], *, budget: float,
                   seeds: Sequence[int] = (0, 1, 2), count_prompt: bool = True,
                   prior: str = "prompt", group_by: GroupBy = "question") -> LadderData:
    """Roles, available modes, fitted climb scores and the top model's reference. `group_by`:
    the tuning's grouping of questions, which a router prior's inner folds follow."""
    ladder, slots = parse_ladder(ladder)
    if len(ladder) < 2:
        raise ValidationError("a ladder to tune needs at least two models.", parameter="ladder")
    arrays = arrays.with_ladder(ladder)
    roles = ladder_roles(len(ladder))
    modes, greedy, sizes = {}, {}, {}
    for role, model in zip(roles, ladder):
        s, g, z = _modes(arrays, model)
        modes[role], greedy[role] = s, g
        sizes.update({(role, k): v for k, v in z.items()})
        named = slots is not None and all(m is not None for r, m in slots if r == role)
        if role != "large" and not s and not named:  # a rung of a named mode needs no votes
            raise BankError(f"the ladder needs sampled answers of {model!r} on every question; "
                            f"the bank has modes {arrays.bank.modes(model)} for it, none with "
                            f">= 2 samples on all {len(arrays)} questions.")
    if not greedy["large"]:
        raise BankError(f"the top model {ladder[-1]!r} needs a greedy answer on every question "
                        f"(modes: {arrays.bank.modes(ladder[-1])}).")
    chain_rung = {}
    for role, mode in slots or ():
        if mode is None:
            continue
        model = ladder[roles.index(role)]
        m = arrays.mode(model, mode)
        if (m.size == 0).any():
            raise BankError(f"the rung {model}:{mode} needs samples on every question; "
                            f"{int((m.size == 0).sum())} of {len(arrays)} have none (tune on "
                            f"the questions that hold every rung's mode).")
        if is_chain_mode(mode):
            sizes[(role, mode)] = int(m.size.min())
            chain_rung[(role, mode)] = {
                "max_tokens": max(64, int(arrays.root.mode(model, mode).tokens.max())),
                **_chain_forcing(arrays, model, mode)}
        elif mode not in greedy[role]:
            sizes[(role, mode)] = int(m.size.min())
            if role != "large" and sizes[(role, mode)] < 2:
                raise BankError(f"the vote rung {model}:{mode} needs >= 2 samples on every "
                                f"question.")
    seeds = tuple(int(s) for s in seeds)
    ref = evaluate(arrays, Ladder(rungs=(top_rung(greedy["large"]),)), budget, seeds[:1],
                   count_prompt=count_prompt)
    data = LadderData(arrays, tuple(ladder), seeds, count_prompt, float(budget), modes, greedy,
                      sizes, {}, max(ref.mean_cost, 1e-9), ref.accuracy, slots=slots,
                      chain_rung=chain_rung, confident=frozenset(
                          (role, mode) for role, model in zip(roles[:-1], ladder)
                          for mode in _vote_modes(modes[role], slots, role)
                          if _has_confidences(arrays, model, mode)))
    data.prior_kind = check_prior(prior)
    data.group_by = group_by
    data.prompt, data.priors = fit_prior(
        arrays, prior, groups=None if group_by == "question" else group_labels(arrays, group_by))
    data.learned = _fit_scores(data)
    fp = {"ids": arrays.problem_ids, "ladder": list(ladder), "seeds": seeds,
          "budget": budget, "count_prompt": count_prompt,
          "prompt": None if data.prompt is None else data.prompt.to_dict(),
          **({"prior": prior} if prior != "prompt" else {}),
          "learned": {"|".join(map(str, k)): v for k, v in sorted(data.learned.items(),
                                                                  key=str)}}
    if slots is not None:  # plain ladders keep their fingerprints (and study names)
        fp["rungs"] = list(data.entries)
    if data.confident:  # so do banks without confidences
        fp["confident"] = sorted(map(list, data.confident))
    else:
        fp["learned"] = {k: v[:-1] for k, v in fp["learned"].items()}
    data.fingerprint = hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
    return data


def check_top_affordable(data: LadderData) -> None:
    """A cost objective or cap compares plans with the top model's cost: refuse a budget
    that cannot pay for one of its answers on any question, naming what it would need."""
    if data.ref_cost > 1e-9:
        return
    ev = evaluate(data.arrays, Ladder(rungs=(top_rung(data.greedy["large"]),)), 1e12, (0,),
                  count_prompt=data.count_prompt)
    raise ValidationError(
        f"a budget of {data.budget:g} units cannot pay for one answer of the top model "
        f"{data.ladder[-1]!r} on any question, so there is no cost to compare a ladder with; "
        f"raise --budget (its answers cost up to {float(ev.cost.max()):,.0f} units here), or "
        f"use --objective accuracy without --max-cost-share.", parameter="budget",
        value=data.budget)


def _fit_scores(data: LadderData) -> dict[tuple[str, str, str | None], tuple[float, ...]]:
    """Logistic climb scores per (role, mode, check): P(the rung's leader is wrong)."""
    if data.slots is not None:
        return _fit_slot_scores(data)
    out = {}
    top = top_rung(data.greedy["large"])
    for role in data.roles[:-1]:
        for mode in data.modes[role]:
            for check in [None, *[m for m in data.modes[role] if m != mode]]:
                rung = _fit_rung(data, role, mode, check)
                w = _fit_score(data, (rung, top), 0)
                if w is not None:
                    out[(role, mode, check)] = w
    return out


def _fit_rung(data: LadderData, role: str, mode: str, check: str | None) -> Rung:
    """The vote rung a climb score is fitted on: up to 8 samples, a check of 2, always
    climbing below unanimity; where the bank has confidences it measures `leader_conf` (a
    weight on it that the climb, by `climb_below` alone, never reads)."""
    weights = _MEASURE if (role, mode) in data.confident else Rung().weights
    if mode in data.greedy[role]:
        return greedy_rung(role, mode, climb_below=1.0, weights=weights)
    k = min(8, data.max_samples[(role, mode)])
    return Rung(role=role, mode=mode, wave=k, max_samples=k, max_tokens=MAX_TOKENS,
                check_mode=check, check_samples=0 if check is None else min(
                    2, data.max_samples[(role, check)]), climb_below=1.0, weights=weights)


_MEASURE = (0.0,) * len(CLIMB_FEATURES) + (1.0,)
"""Score weights that only make a rung measure `leader_conf` (the last feature)."""


def _fit_score(data: LadderData, rungs: tuple[Rung, ...],
               index: int) -> tuple[float, ...] | None:
    """Logistic weights of "rung `index`'s leader is wrong" over the climb features that rung
    of the ladder `rungs` saw, pooled over the seeds (None when there are fewer than 4
    examples or one label). Where the rung's (role, mode) has no confidences the leader_conf
    column (all 0) is left out of the fit and gets weight 0, so such scores are what they were
    before the feature existed, to the bit."""
    xs, ys = [], []
    for seed in data.seeds:
        for j, rows, x, right in ladder_features(data.arrays, Ladder(rungs=rungs), 1e12, seed,
                                                 count_prompt=data.count_prompt,
                                                 prior=data.priors):
            if j == index:
                xs.append(x[rows])
                ys.append(~right[rows])
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(y) < 4 or y.min() == y.max():
        return None
    if (rungs[index].role, rungs[index].mode) in data.confident:
        return tuple(float(v) for v in fit_logistic(x, y))
    return tuple(float(v) for v in fit_logistic(np.ascontiguousarray(x[:, :-1]), y)) + (0.0,)


def default_rung(data: LadderData, slot: Slot, **kw: Any) -> Rung:
    """A slot's rung with default settings: a vote of up to 8 in its (first) mode, all of a
    chain slot's chains, or a greedy slot's answer."""
    role, mode = slot
    if mode in data.greedy[role]:
        return greedy_rung(role, mode, **kw)
    if mode is not None and is_chain_mode(mode):
        return Rung(role=role, mode=mode, max_samples=data.max_samples[slot],
                    **data.chain_rung[slot], **kw)
    mode = mode or data.modes[role][0]
    k = min(8, data.max_samples[(role, mode)])
    return Rung(role=role, mode=mode, wave=k, max_samples=k, max_tokens=MAX_TOKENS, **kw)


def _fit_slot_scores(data: LadderData) -> dict[tuple[str, str, str | None], tuple[float, ...]]:
    """`_fit_scores` for a ladder of rungs: each lower rung's score is fitted where it sits,
    above default rungs of the slots below it (which always climb), so its agreement with
    the rung below (what a single chain has to go on) is learned too."""
    out = {}
    top = top_rung(data.greedy["large"])
    slots = data.slots or ()
    below = [default_rung(data, s, climb_above=0.0) for s in slots[:-2]]
    for i, slot in enumerate(slots[:-1]):
        role, fixed = slot
        for mode in [fixed] if fixed is not None else data.modes[role]:
            checks: list[str | None] = [None]
            if not is_chain_mode(mode) and mode not in data.greedy[role]:
                checks += [m for m in data.modes[role] if m != mode]
            for check in checks:
                rung = default_rung(data, slot, climb_below=1.0) if is_chain_mode(mode) \
                    else _fit_rung(data, role, mode, check)
                w = _fit_score(data, (*below[:i], rung, top), i)
                if w is not None:
                    out[(role, mode, check)] = w
    return out
