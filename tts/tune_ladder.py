"""Tune a ladder policy with Optuna, choose among its trials without the winner's curse, and
report it on questions (or whole scenarios) it never saw.

    tts tune --ladder gpt-3.5-turbo,gpt-4 --objective cost --folds 5 --group-by scenario

One tuning run on a set of training questions (`tune_ladder`):

1. Fit a climb score per (tier, representation, check) on the training questions: a logistic
   model of "this rung's leader is wrong" over `tts.signals.CLIMB_FEATURES` (leader_conf, the
   leader's mean min_conf, only where the bank has confidences for that tier and
   representation on every training question; elsewhere its weight is 0).
2. An Optuna study searches one `LadderLevel` (`suggest_rungs`) for the most accurate plan
   within a cost cap (a share of the top model's cost; none for the plain accuracy
   objective): per lower rung whether to use it, its representation, waves, sample cap,
   early stop, the mixture-of-thought check, DeepConf's confidence weighting and filter (where
   the bank has confidences), the score and its threshold, and an agreement
   floor in [0.5, 1] below which it always climbs (so no tuned policy can stop climbing on
   questions whose own vote is split); the top rung's greedy answer or vote.
3. Candidates: the best trials re-scored with twice the seeds, plus fixed plans (the top
   model alone; the default cascade from every lower tier in every representation).
4. Selection (`select_candidate`): the most accurate candidate within the cap, kept over the
   best fixed plan within the cap only if it wins by more than m standard errors of the
   paired per-question difference.
5. The cap and m (cost objective) or m (accuracy objective) are not constants: an inner
   cross-validation on the training questions (`choose_rule`) runs steps 1-4 on each inner
   training split for every cap of `CAPS` and margin of `MARGINS` and scores the selected
   plan on the inner held-out questions. The cost objective takes the cheapest rule whose pooled
   inner held-out accuracy, less `INNER_SE` standard errors of its paired difference with
   the top model, reaches the top model's pooled inner held-out accuracy (the target,
   unless given), or, when none does, the cap with the best inner held-out accuracy (the
   top model alone is one of its candidates, so this falls back on it where nothing beats
   it); the accuracy objective the
   margin with the best pooled inner held-out accuracy. Picking the best of many plans on
   the questions that scored them is optimistic (the winner's curse; Varma & Simon 2006,
   Tibshirani & Tibshirani 2009); tuning the selection rule itself on held-out questions
   removes that optimism from the choice, and the outer folds of `run_ladder_tune` measure
   the whole procedure, rule choice included (nested cross-validation). Where the small
   tiers cannot match the top model out of sample (MoT GSM8K) the rule falls back on it;
   where they can (MoT DATE) it keeps the savings.

Rungs may also be given as `model:mode` (`parse_ladder`): each entry is then one rung of that
model in that mode, so one model may appear several times (a vote, then a chain of the small
model, then the large one): "qwen-0.5b:sample,qwen-0.5b:chain-1024,qwen-1.5b:greedy". A rung
in a chain mode ("chain-<L>") votes 1..n of the bank's chains and has no check; a lower rung
in a greedy mode ("qwen-0.5b:greedy") is that model's one greedy answer, climbing by its rule
(the plainest cascade: answer cheaply, escalate the doubtful); an entry
without a mode keeps the plain meaning (the search picks the model's representation). Plain
model names are today's ladders, unchanged.

`run_ladder_tune` reports the k-fold held-out numbers (folds by question or by scenario, a
question's first sentence, so whole scenarios are held out) and returns the deployable policy
tuned by the same procedure on every question.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tts.bank import is_greedy_mode
from tts.build import chain_forcing
from tts.errors import BankError, ValidationError
from tts.evaluate import BankArrays, Evaluation, evaluate, ladder_features
from tts.ladder_policy import LadderPolicy, single_level
from tts.measures import mean_ci95, paired_difference
from tts.signals import AGREEMENT_CLIMB_WEIGHTS, CLIMB_FEATURES, MOT_CLIMB_WEIGHTS
from tts.strategies.chain import is_chain_mode
from tts.strategies.ladder import Ladder, Rung
from tts.types import ladder_roles

__all__ = ["LadderData", "parse_ladder", "prepare_ladder", "suggest_rungs", "tune_ladder",
           "select_candidate", "choose_rule", "run_ladder_tune", "CAPS", "group_folds",
           "scenario", "MARGINS"]

MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
"""Margins (standard errors) the inner cross-validation chooses from."""
FLOOR_RANGE = (0.5, 1.0)
"""The agreement floor a tuned rung always climbs below (tuned within this range)."""
MAX_TOKENS = 512
CHECK_MAX = 4
RERANK = 8
CONF_WEIGHTS = ("none", "min_conf", "logprob")
"""What a lower vote's samples may count, where the bank has confidences (`Vote.weight`)."""
CONF_KEEP = (1.0, 0.9, 0.5, 0.1)
"""Shares of the most confident samples a lower vote may keep (`Vote.keep`; DeepConf's
conservative 90% and aggressive 10% filters, and half)."""
CAPS = (0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 1.0)
"""Cost caps (shares of the top model's cost) the cost objective chooses from."""
INNER_SE = 1.0
"""The cost objective keeps a cap only if its inner held-out accuracy, minus this many
standard errors of its paired difference with the top model, still reaches the target: among
seven caps the cheapest one that merely touches the target is often luck (one-SE rule)."""
FORMAT = "tts-ladder-tune/1"


def scenario(question: str) -> str:
    """A question's scenario: its first sentence ("Yesterday was April 30, 2021.")."""
    m = re.match(r"\s*(.+?[.!?])(\s|$)", question)
    return (m.group(1) if m else question).strip()


def group_folds(arrays: BankArrays, folds: int, group_by: str = "question",
                seed: int = 0) -> list[np.ndarray]:
    """`folds` held-out index sets; with group_by "scenario" a scenario is never split."""
    if group_by not in ("question", "scenario"):
        raise ValidationError(f"`group_by` must be 'question' or 'scenario', got {group_by!r}.",
                              parameter="group_by", value=group_by)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValidationError(f"`folds` must be an integer >= 2, got {folds!r}.",
                              parameter="folds", value=folds)
    keys = arrays.questions if group_by == "scenario" else arrays.problem_ids
    names = list(dict.fromkeys(scenario(k) if group_by == "scenario" else k for k in keys))
    if len(names) < folds:
        raise ValidationError(f"{len(names)} {group_by}s cannot fill {folds} folds.",
                              parameter="folds", value=folds)
    perm = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[g]: f for f, part in enumerate(np.array_split(perm, folds)) for g in part}
    per = np.array([fold_of[scenario(k) if group_by == "scenario" else k] for k in keys])
    return [np.flatnonzero(per == f) for f in range(folds)]


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


def _slot_name(slot: Slot) -> str:
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
                   seeds: Sequence[int] = (0, 1, 2), count_prompt: bool = True) -> LadderData:
    """Roles, available modes, fitted climb scores and the top model's reference."""
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
        if role != "large" and not s:
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
    data.prompt, data.priors = _fit_prompt(arrays)
    data.learned = _fit_scores(data)
    fp = {"ids": arrays.problem_ids, "ladder": list(ladder), "seeds": seeds,
          "budget": budget, "count_prompt": count_prompt,
          "prompt": None if data.prompt is None else data.prompt.to_dict(),
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


def _fit_prompt(arrays: BankArrays) -> tuple[Any, np.ndarray]:
    """The prompt-feature difficulty model of "the cheapest tier's full vote is wrong", and
    out-of-fold logits for the same questions."""
    from tts.difficulty import PromptDifficulty, cross_fit_prior, vote_wrong

    labels = vote_wrong(arrays)
    if len(arrays) < 8 or labels.min() == labels.max():
        return None, np.zeros(len(arrays))
    prompt = PromptDifficulty.fit(arrays.questions, labels)
    return prompt, cross_fit_prior(arrays, np.arange(len(arrays)), labels=labels)


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
    from tts.difficulty import fit_logistic

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


def _default_rung(data: LadderData, slot: Slot, **kw: Any) -> Rung:
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
    below = [_default_rung(data, s, climb_above=0.0) for s in slots[:-2]]
    for i, slot in enumerate(slots[:-1]):
        role, fixed = slot
        for mode in [fixed] if fixed is not None else data.modes[role]:
            checks: list[str | None] = [None]
            if not is_chain_mode(mode) and mode not in data.greedy[role]:
                checks += [m for m in data.modes[role] if m != mode]
            for check in checks:
                rung = _default_rung(data, slot, climb_below=1.0) if is_chain_mode(mode) \
                    else _fit_rung(data, role, mode, check)
                w = _fit_score(data, (*below[:i], rung, top), i)
                if w is not None:
                    out[(role, mode, check)] = w
    return out


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
        rungs.append(_suggest_climb(trial, data, _suggest_vote(trial, data, role, mode, role),
                                    role))
    return (*rungs, _suggest_plain_top(trial, data))


def _suggest_vote(trial: Any, data: LadderData, role: str, mode: str, p: str) -> Rung:
    """A lower rung's vote in `mode` (parameters named `p`_...)."""
    cap = data.max_samples[(role, mode)]
    wave = trial.suggest_int(f"{p}_wave", 1, min(8, cap))
    max_samples = trial.suggest_int(f"{p}_max_samples", 1, cap)
    confidence = 1.0
    if trial.suggest_categorical(f"{p}_stop_early", [True, False]):
        confidence = trial.suggest_float(f"{p}_confidence", 0.5, 1.0)
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
    floor and the score threshold."""
    score = trial.suggest_categorical(f"{p}_score", ["agreement", "mot", "learned"])
    weights = {"agreement": AGREEMENT_CLIMB_WEIGHTS, "mot": MOT_CLIMB_WEIGHTS}.get(
        score, data.learned.get((rung.role, rung.mode, rung.check_mode),
                                AGREEMENT_CLIMB_WEIGHTS))
    return replace(rung, weights=weights,
                   climb_below=trial.suggest_float(f"{p}_floor", *FLOOR_RANGE),
                   climb_above=trial.suggest_float(f"{p}_climb_above", 0.05, 1.0))


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
        p = _slot_name(slot)
        if len(slots) > 2 and not trial.suggest_categorical(f"{p}_use", [True, False]):
            continue
        if mode in data.greedy[role]:
            rung = greedy_rung(role, mode)
        elif mode is not None and is_chain_mode(mode):
            rung = Rung(role=role, mode=mode, **data.chain_rung[slot],
                        max_samples=trial.suggest_int(f"{p}_max_samples", 1,
                                                      data.max_samples[slot]))
        else:
            if mode is None:
                mode = trial.suggest_categorical(f"{p}_mode", data.modes[role])
            rung = _suggest_vote(trial, data, role, mode, p)
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
    k = trial.suggest_int(f"{_slot_name((role, mode))}_samples", 1,
                          data.max_samples[(role, mode)])
    if is_chain_mode(mode):
        return Rung(role=role, mode=mode, max_samples=k, **data.chain_rung[(role, mode)])
    return Rung(role=role, mode=mode, wave=k, max_samples=k, max_tokens=MAX_TOKENS)


def baselines(data: LadderData) -> dict[str, tuple[Rung, ...]]:
    """Fixed plans every selection compares with: the top model alone, and the default
    cascade (a vote of up to 16 samples in waves of 4 with Adaptive-Consistency stopping,
    climbing to the top model below 60% agreement) from every lower tier in every sampled
    representation. Fixed plans are not fitted to the training questions, so they carry no
    winner's curse: a tuned plan has to beat them clearly to be kept."""
    top = top_rung(data.greedy["large"])
    out = {"top-model": (top,)}
    if data.slots is not None:
        for slot in data.slots[:-1]:
            role, mode = slot
            if mode is not None and (is_chain_mode(mode) or mode in data.greedy[role]):
                out[f"cascade-{role}-{mode}"] = (
                    _default_rung(data, slot, climb_below=0.6), top)
                continue
            for vote in [mode] if mode is not None else data.modes[role]:
                cap = data.max_samples[(role, vote)]
                out[f"cascade-{role}-{vote}"] = (
                    Rung(role=role, mode=vote, wave=min(4, cap), max_samples=min(16, cap),
                         max_tokens=MAX_TOKENS, confidence=0.95, climb_below=0.6), top)
        return out
    for role in data.roles[:-1]:
        for mode in data.modes[role]:
            cap = data.max_samples[(role, mode)]
            out[f"cascade-{role}-{mode}"] = (
                Rung(role=role, mode=mode, wave=min(4, cap), max_samples=min(16, cap),
                     max_tokens=MAX_TOKENS, confidence=0.95, climb_below=0.6), top)
    return out


# ---- one tuning run -------------------------------------------------------------------------
@dataclass
class Candidate:
    name: str
    rungs: tuple[Rung, ...]
    ev: Evaluation


@dataclass
class TuneRun:
    """What `tune_ladder` found on one training set."""

    data: LadderData
    candidates: list[Candidate]
    trials: int
    study_name: str
    max_cost_share: float | None = None
    margin: float = 0.0
    rule: dict[str, Any] = field(default_factory=dict)
    """How the nested cross-validation chose the cap and margin (inner held-out numbers)."""
    chosen: Candidate | None = None
    selection: dict[str, Any] = field(default_factory=dict)


def _score(data: LadderData, rungs: Sequence[Rung], seeds: Sequence[int],
           arrays: BankArrays | None = None) -> Evaluation:
    """Rungs (with `data`'s prompt model for the prior) on `arrays` (default: training)."""
    return evaluate(data.arrays if arrays is None else arrays,
                    single_level(data.ladder, rungs, data.prompt), data.budget, seeds,
                    count_prompt=data.count_prompt)


def _value(ev: Evaluation, data: LadderData, max_cost_share: float | None) -> float:
    """Minimised: -(accuracy), cost share breaking ties, any excess over the cap ranked
    below every plan within it."""
    share = ev.mean_cost / data.ref_cost
    over = over_cap(share, max_cost_share)
    return -(ev.accuracy - 1e-4 * share) + (5.0 + 10.0 * over if over > 0 else 0.0)


def over_cap(share: float, cap: float | None) -> float:
    """How far a cost share lies over `cap` (0.0 within it, and without a cap). Shares equal
    up to rounding count as within: the top model's own share, averaged over other seeds
    than its reference, can come out as 1.0000000000000002."""
    if cap is None or share <= cap * (1.0 + 1e-9):
        return 0.0
    return share - cap


def search(data: LadderData, *, trials: int, max_cost_share: float | None = None,
           sampler_seed: int = 0, storage: Any = None, study_name: str | None = None,
           progress: Callable[[int], None] | None = None) -> TuneRun:
    """Run (or resume) the study "most accurate within `max_cost_share` of the top model's
    cost"; candidates are its best trials re-scored with twice the seeds, plus fixed plans."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cap = "none" if max_cost_share is None else f"{max_cost_share:g}"
    name = study_name or f"tts-ladder-{data.fingerprint}-cap{cap}"
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize",
                                sampler=optuna.samplers.TPESampler(
                                    seed=sampler_seed, n_startup_trials=min(25, trials)),
                                load_if_exists=True)
    from tts.studies import claim_study

    claim_study(study, name, {"fingerprint": data.fingerprint, "format": FORMAT,
                              "max_cost_share": max_cost_share})

    def run(trial):
        ev = _score(data, suggest_rungs(trial, data), data.seeds)
        trial.set_user_attr("accuracy", ev.accuracy)
        trial.set_user_attr("cost_share", ev.mean_cost / data.ref_cost)
        return _value(ev, data, max_cost_share)

    def done() -> int:
        return sum(t.state == optuna.trial.TrialState.COMPLETE
                   for t in study.get_trials(deepcopy=False))

    callbacks = []
    if progress is not None:
        progress(done())
        callbacks.append(lambda s, t: progress(done()))
    remaining = trials - done()
    if remaining > 0:
        study.optimize(run, n_trials=remaining, callbacks=callbacks)
    complete = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state == optuna.trial.TrialState.COMPLETE),
                      key=lambda t: (t.value, t.number))
    seeds = tuple(data.seeds) + tuple(s + 7919 for s in data.seeds)
    candidates, seen = [], set()
    for t in complete[:RERANK]:
        rungs = suggest_rungs(optuna.trial.FixedTrial(t.params), data)
        if repr(rungs) not in seen:
            seen.add(repr(rungs))
            candidates.append(Candidate(f"trial-{t.number}", rungs, _score(data, rungs, seeds)))
    for nm, rungs in baselines(data).items():
        candidates.append(Candidate(nm, rungs, _score(data, rungs, seeds)))
    return TuneRun(data, candidates, done(), name, max_cost_share)


def select_candidate(run: TuneRun, margin: float) -> tuple[Candidate, dict[str, Any]]:
    """Step 4 of the module docstring, on the training questions: the most accurate
    candidate within the run's cost cap, kept over the best fixed plan within the cap only
    if it wins by more than `margin` standard errors of the paired difference."""
    data, cap = run.data, run.max_cost_share

    def share(c: Candidate) -> float:
        return c.ev.mean_cost / data.ref_cost

    ok = [c for c in run.candidates if over_cap(share(c), cap) == 0.0]
    if not ok:
        ok = [min(run.candidates, key=share)]
    best = max(ok, key=lambda c: (c.ev.accuracy, -c.ev.mean_cost))
    record: dict[str, Any] = {"train_accuracy": best.ev.accuracy,
                              "train_cost_share": share(best), "margin": margin}
    fixed = [c for c in ok if not c.name.startswith("trial-")]
    if not fixed or not best.name.startswith("trial-"):
        return best, {**record, "chosen": best.name,
                      "reason": "best within the cap" if not fixed else "a fixed plan is best"}
    base = max(fixed, key=lambda c: (c.ev.accuracy, -c.ev.mean_cost))
    mean, se = paired_difference(best.ev.correct.mean(0) - base.ev.correct.mean(0))
    pick = best if mean > margin * se else base
    return pick, {**record, "chosen": pick.name, "baseline": base.name, "mean_diff": mean,
                  "se": se, "train_accuracy": pick.ev.accuracy,
                  "train_cost_share": share(pick),
                  "reason": f"tuned vs {base.name}: {mean:+.4f} "
                            f"{'>' if pick is best else '<='} {margin:g} x SE {se:.4f}"}


def choose_rule(data: LadderData, *, objective: str, target: float | None, trials: int,
                folds: int, group_by: str, max_cost_share: float | None, sampler_seed: int,
                split_seed: int) -> tuple[float | None, float, dict[str, Any]]:
    """Step 5: (cost cap, margin) chosen on inner held-out questions (module docstring)."""
    parts = group_folds(data.arrays, folds, group_by, split_seed + 17)
    caps = list(CAPS) if objective == "cost" else [max_cost_share]
    margins = list(MARGINS)
    pooled: dict[tuple, dict[str, list]] = {(c, m): {"correct": [], "cost": []}
                                            for c in caps for m in margins}
    top_correct = []
    for f, held in enumerate(parts):
        train = np.setdiff1d(np.arange(len(data.arrays)), held)
        inner = prepare_ladder(data.arrays.subset(train), data.entries, budget=data.budget,
                               seeds=data.seeds, count_prompt=data.count_prompt)
        held_arrays = data.arrays.subset(held)
        top = evaluate(held_arrays, Ladder(rungs=(top_rung(data.greedy["large"]),)),
                       data.budget, data.seeds, count_prompt=data.count_prompt)
        top_correct.append(top.correct.mean(0))
        for c in caps:
            run = search(inner, trials=trials, max_cost_share=c,
                         sampler_seed=sampler_seed + 101 * (f + 1))
            cache: dict[str, Evaluation] = {}
            for m in margins:
                cand, _ = select_candidate(run, m)
                ev = cache.get(cand.name)
                if ev is None:
                    ev = cache[cand.name] = _score(inner, cand.rungs, data.seeds, held_arrays)
                pooled[(c, m)]["correct"].append(ev.correct.mean(0))
                pooled[(c, m)]["cost"].append(ev.cost.mean(0) / data.ref_cost)
    top_all = np.concatenate(top_correct)
    top_acc = float(top_all.mean())
    table = {}
    for k, v in pooled.items():
        mean, se = paired_difference(np.concatenate(v["correct"]) - top_all)
        table[k] = {"heldout_accuracy": float(np.concatenate(v["correct"]).mean()),
                    "heldout_cost_share": float(np.concatenate(v["cost"]).mean()),
                    "mean_diff_vs_top": mean, "se": se}
    record: dict[str, Any] = {"inner_folds": folds, "top_model_heldout_accuracy": top_acc,
                              "by_rule": [{"max_cost_share": c, "margin": m, **v}
                                          for (c, m), v in table.items()]}
    if objective == "cost":
        shift = 0.0 if target is None else float(target) - top_acc

        def holds(k) -> bool:
            t = table[k]
            return t["mean_diff_vs_top"] - INNER_SE * t["se"] >= shift - 1e-12

        ok = [k for k in table if holds(k)]
        goal = top_acc + shift
        if not ok:
            cap, margin = max(table, key=lambda k: (table[k]["heldout_accuracy"], k[0]))
            record["reason"] = (f"no cap reached {goal:.4f} + {INNER_SE:g} SE on inner held-out "
                                f"questions: the cap with the best inner held-out accuracy")
            return cap, margin, record
        cap, margin = min(ok, key=lambda k: (table[k]["heldout_cost_share"], -k[0], -k[1]))
        record["reason"] = (f"cheapest cap whose inner held-out accuracy minus {INNER_SE:g} SE "
                            f"of its paired difference reaches {goal:.4f}")
        return cap, margin, record
    cap, margin = max(table, key=lambda k: (table[k]["heldout_accuracy"], k[1]))
    record["reason"] = "margin with the best inner held-out accuracy"
    return cap, margin, record


def tune_ladder(arrays: BankArrays, ladder: Sequence[str], *, objective: str = "cost",
                budget: float = 262144.0, target: float | None = None, trials: int = 150,
                seeds: Sequence[int] = (0, 1, 2), count_prompt: bool = True,
                max_cost_share: float | None = None, inner_folds: int = 4,
                group_by: str = "question", margin: float | None = None,
                sampler_seed: int = 0, split_seed: int = 0, storage: Any = None,
                study_name: str | None = None,
                progress: Callable[[int], None] | None = None) -> TuneRun:
    """Steps 1-5 on `arrays` (the training questions). `margin` given: no inner CV (the
    cost objective then needs `max_cost_share`)."""
    if objective not in ("cost", "accuracy"):
        raise ValidationError(f"ladder tuning has objectives 'cost' and 'accuracy', got "
                              f"{objective!r}.", parameter="objective", value=objective)
    data = prepare_ladder(arrays, ladder, budget=budget, seeds=seeds, count_prompt=count_prompt)
    if margin is None:
        cap, margin, rule = choose_rule(
            data, objective=objective, target=target, trials=trials, folds=inner_folds,
            group_by=group_by, max_cost_share=max_cost_share, sampler_seed=sampler_seed,
            split_seed=split_seed)
    else:
        cap, rule = max_cost_share, {"reason": "given"}
    run = search(data, trials=trials, max_cost_share=cap, sampler_seed=sampler_seed,
                 storage=storage, study_name=study_name, progress=progress)
    run.margin, run.rule = margin, rule
    run.chosen, run.selection = select_candidate(run, margin)
    run.selection["max_cost_share"] = cap
    return run


def policy_of(run: TuneRun, notes: Mapping[str, Any] | None = None) -> LadderPolicy:
    assert run.chosen is not None
    return single_level(run.data.ladder, run.chosen.rungs, run.data.prompt, {
        "chosen": run.chosen.name, "margin": run.margin,
        "max_cost_share": run.max_cost_share, **(notes or {})})


# ---- reports -------------------------------------------------------------------------------
def run_ladder_tune(arrays: BankArrays, ladder: Sequence[str], *, objective: str = "cost",
                    budget: float = 262144.0, target: float | None = None, trials: int = 300,
                    folds: int = 5, group_by: str = "question", seeds: Sequence[int] = (0, 1, 2),
                    heldout_seeds: Sequence[int] = (100, 101, 102), count_prompt: bool = True,
                    max_cost_share: float | None = None, margin: float | None = None,
                    split_seed: int = 0, sampler_seed: int = 0, storage: Any = None,
                    study_name: str | None = None,
                    progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """K-fold held-out report of `tune_ladder` plus the deployable policy (all questions)."""
    t0 = time.perf_counter()
    entries = tuple(str(e).strip() for e in ladder)
    models, slots = parse_ladder(entries)
    arrays = arrays.with_ladder(models)
    dropped = 0
    if slots is not None:  # tune on the questions that hold every named rung's mode
        roles = ladder_roles(len(models))
        keep = np.ones(len(arrays), bool)
        for role, mode in slots:
            if mode is not None:
                keep &= arrays.mode(models[roles.index(role)], mode).size > 0
        dropped = int((~keep).sum())
        if dropped:
            arrays = arrays.subset(np.flatnonzero(keep))
    ladder = models
    parts = group_folds(arrays, folds, group_by, split_seed)
    correct, cost, top_c, top_cost, per_tier = [], [], [], [], {m: [] for m in ladder}
    fold_reports = []
    for f, held in enumerate(parts):
        train = np.setdiff1d(np.arange(len(arrays)), held)
        cb = None if progress is None else (lambda n, f=f: progress(f"fold {f + 1}/{folds}", n))
        run = tune_ladder(arrays.subset(train), entries, objective=objective, budget=budget,
                          target=target, trials=trials, seeds=seeds, count_prompt=count_prompt,
                          max_cost_share=max_cost_share, group_by=group_by, margin=margin,
                          sampler_seed=sampler_seed + 1000 * f, split_seed=split_seed + f,
                          storage=storage, progress=cb, study_name=None if study_name is None
                          else f"{study_name}-fold{f}of{folds}")
        pol = policy_of(run)
        held_arrays = arrays.subset(held)
        ev = evaluate(held_arrays, pol, budget, heldout_seeds, count_prompt=count_prompt)
        top = evaluate(held_arrays, Ladder(rungs=(top_rung(run.data.greedy["large"]),)), budget,
                       heldout_seeds, count_prompt=count_prompt)
        correct.append(ev.correct.mean(0))
        cost.append(ev.cost.mean(0))
        top_c.append(top.correct.mean(0))
        top_cost.append(top.cost.mean(0))
        for m in ladder:
            per_tier[m].append((ev.tokens[m] > 0).mean(0))
        fold_reports.append({"fold": f, "heldout": len(held), "chosen": run.chosen.name,
                             "margin": run.margin, "rule": run.rule,
                             "selection": run.selection, "policy": pol.to_dict()["levels"],
                             "heldout_accuracy": ev.accuracy,
                             "heldout_cost_share": ev.mean_cost / top.mean_cost})
    c, k, tc, tk = (np.concatenate(x) for x in (correct, cost, top_c, top_cost))
    report = {"format": FORMAT, "objective": objective, "ladder": list(entries),
              "budget": budget, "folds": folds, "group_by": group_by, "trials": trials,
              "train_seeds": list(seeds), "heldout_seeds": list(heldout_seeds),
              "count_prompt": count_prompt, "max_cost_share": max_cost_share,
              "questions": len(arrays),
              **({"questions_without_every_rung": dropped} if slots is not None else {}),
              "heldout": {"accuracy": float(c.mean()), "mean_cost": float(k.mean()),
                          "large_greedy_accuracy": float(tc.mean()),
                          "large_only_cost": float(tk.mean()),
                          "cost_share_of_large_only": float(k.mean() / tk.mean()),
                          "accuracy_ci95": mean_ci95(c),
                          "per_tier_share_of_questions": {
                              m: float(np.concatenate(v).mean()) for m, v in per_tier.items()}},
              "folds_detail": fold_reports}
    final = tune_ladder(arrays, entries, objective=objective, budget=budget, target=target,
                        trials=trials, seeds=seeds, count_prompt=count_prompt,
                        max_cost_share=max_cost_share, group_by=group_by, margin=margin,
                        sampler_seed=sampler_seed, split_seed=split_seed, storage=storage,
                        study_name=None if study_name is None else f"{study_name}-all")
    policy = policy_of(final, {"objective": objective, "trained_on": len(arrays)})
    report["deployed"] = {"chosen": final.chosen.name, "margin": final.margin,
                          "rule": final.rule, "selection": final.selection}
    report["elapsed_s"] = round(time.perf_counter() - t0, 2)
    return {"report": report, "policy": policy}
