"""Policies: per prompt, which strategy (with which settings) spends the budget best.

A policy is plain data. `ParamPolicy` holds

* `levels`: one parameter set (`Level`) per budget range; the level used for a budget B is the
  last one whose `from_budget` <= B, so a level is tuned for the smallest budget it serves;
* `probe_weights`: the logistic difficulty model over the probe's answer distribution
  (`tts.strategies.adaptive.PROBE_FEATURES`);
* `prompt`: an optional prompt-feature difficulty model (`tts.difficulty.PromptDifficulty`).

For each prompt it computes the prompt difficulty (free: no tokens), escalates straight to
the large model when that is at least `direct_above`, and otherwise runs the `Adaptive`
strategy (probe wave, adaptive stop, escalation on probe difficulty). JSON round trip:
`policy.to_json()` / `load_policy(path)`; a missing or unknown field, or a value out of
range, is a ValidationError naming it.

`DefaultPolicy` (untuned, used when no policy is given): a cascade (small-model vote with
Adaptive-Consistency stopping; escalate when the leader has < 60% of the votes) that holds back
the price of the large call before voting, so escalation stays affordable, when a large model
is present; else that vote alone. `tts tune` writes tuned `ParamPolicy` files.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from tts.budgets import Budget
from tts.errors import ValidationError
from tts.strategies import Adaptive, Cascade, Escalate, Strategy, Vote
from tts.strategies.adaptive import DEFAULT_PROBE_WEIGHTS, PROBE_FEATURES, logit, sigmoid
from tts.types import Problem, Role, is_finite_number, shown

__all__ = ["Policy", "DefaultPolicy", "ParamPolicy", "CrossFitPolicy", "Level", "load_policy",
           "policy_from_dict", "crossfit_from_dict", "FORMAT"]

FORMAT = "tts-policy/1"


class Policy(Protocol):
    def decide(self, problem: Problem, budget: Budget,
               models: Mapping[Role, str]) -> tuple[Strategy, float | None]:
        """The strategy for this problem and the difficulty estimate behind it (or None)."""
        ...


class DefaultPolicy:
    """Untuned default: cascade (small vote, escalate when agreement < 0.6, the large call's
    price held back while voting) when a large model is present, else a small-model vote with
    Adaptive-Consistency early stopping."""

    def decide(self, problem: Problem, budget: Budget,
               models: Mapping[Role, str]) -> tuple[Strategy, float | None]:
        if "large" in models:
            return Cascade(keep_for_large=True), None
        return Vote(), None


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """Policy parameters for budgets from `from_budget` up to the next level's."""

    from_budget: float = 0.0
    """Smallest budget this level serves (the first level must start at 0)."""
    probe: int = 4
    """Small-model samples in the first wave."""
    wave: int = 4
    """Samples in every later wave."""
    max_samples: int = 16
    max_tokens: int = 512
    """Cap per small-model sample (the budget reserves samples x max_tokens)."""
    temperature: float = 0.7
    confidence: float = 0.95
    """Adaptive-Consistency stop: leader_confidence >= this ends sampling (1.0: never)."""
    escalate_above: float = 0.5
    """Escalate after sampling when the probe difficulty is >= this."""
    escalate_early_above: float = 1.0
    """Stop sampling and escalate at once when the probe difficulty is >= this."""
    direct_above: float = 1.0
    """Escalate without probing when the prompt difficulty is >= this (needs a prompt model;
    0 escalates every prompt, with or without one)."""
    use_large: bool = True
    """Allow escalation at this level at all."""
    large_samples: int = 1
    large_max_tokens: int = 512
    keep_for_large: bool = False
    probe_weights: tuple[float, ...] | None = None
    """This level's probe difficulty model (bias + one weight per PROBE_FEATURES entry), or
    None to use the policy's `probe_weights`."""

    def __post_init__(self) -> None:
        from tts.strategies._checks import check_weights

        object.__setattr__(self, "probe_weights", check_weights(
            "probe_weights", self.probe_weights, PROBE_FEATURES, nullable=True))
        b = self.from_budget
        if not is_finite_number(b) or b < 0:
            raise ValidationError(f"`from_budget` must be a finite number >= 0, got {shown(b)}.",
                                  parameter="from_budget", value=b)
        from tts.strategies._checks import check_fraction

        check_fraction("direct_above", self.direct_above)
        if not isinstance(self.use_large, bool):
            raise ValidationError(f"`use_large` must be true or false, got {self.use_large!r}.",
                                  parameter="use_large", value=self.use_large)
        self.strategy()  # Adaptive validates the rest

    def strategy(self, *, prior: float = 0.0, large: bool = True,
                 weights: Sequence[float] = DEFAULT_PROBE_WEIGHTS) -> Adaptive:
        if self.probe_weights is not None:
            weights = self.probe_weights
        return Adaptive(probe=self.probe, wave=self.wave, max_samples=self.max_samples,
                        max_tokens=self.max_tokens, temperature=self.temperature,
                        confidence=self.confidence, escalate_above=self.escalate_above,
                        escalate_early_above=self.escalate_early_above, weights=tuple(weights),
                        prior=prior, large=large and self.use_large,
                        large_samples=self.large_samples, large_max_tokens=self.large_max_tokens,
                        keep_for_large=self.keep_for_large)

    def escalate(self) -> Escalate:
        return Escalate(samples=self.large_samples, max_tokens=self.large_max_tokens,
                        temperature=self.temperature)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["probe_weights"] is not None:
            d["probe_weights"] = list(d["probe_weights"])
        return d


LEVEL_FIELDS = tuple(f.name for f in dataclasses.fields(Level))


@dataclass(frozen=True)
class ParamPolicy:
    """A tuned (or hand-written) allocation policy; see the module docstring."""

    levels: tuple[Level, ...]
    probe_weights: tuple[float, ...] = DEFAULT_PROBE_WEIGHTS
    prompt: Any = None
    """A PromptDifficulty, or None (then prior 0 and no direct escalation)."""
    notes: Mapping[str, Any] = field(default_factory=dict)
    """Free-form provenance (objective, bank, training split ids, ...), saved with it."""

    def __post_init__(self) -> None:
        levels = tuple(self.levels)
        if not levels:
            raise ValidationError("a policy needs at least one level.", parameter="levels")
        for i, lv in enumerate(levels):
            if not isinstance(lv, Level):
                raise ValidationError(f"levels[{i}] must be a Level, got {type(lv).__name__}.",
                                      parameter="levels")
        if levels[0].from_budget != 0:
            raise ValidationError(f"levels[0].from_budget must be 0 (every budget needs a "
                                  f"level), got {levels[0].from_budget}.",
                                  parameter="levels[0].from_budget")
        for i in range(1, len(levels)):
            if not levels[i].from_budget > levels[i - 1].from_budget:
                raise ValidationError(f"levels must have strictly increasing from_budget; "
                                      f"levels[{i}] has {levels[i].from_budget} after "
                                      f"{levels[i - 1].from_budget}.",
                                      parameter=f"levels[{i}].from_budget")
        object.__setattr__(self, "levels", levels)
        w = self.probe_weights
        if not isinstance(w, (list, tuple)) or len(w) != len(PROBE_FEATURES) + 1 or any(
                not is_finite_number(v) for v in w):
            raise ValidationError(f"`probe_weights` must be {len(PROBE_FEATURES) + 1} finite "
                                  f"numbers (bias, then {', '.join(PROBE_FEATURES)}), got "
                                  f"{shown(w, 120)}.", parameter="probe_weights", value=w)
        object.__setattr__(self, "probe_weights", tuple(float(v) for v in w))
        if self.prompt is not None:
            from tts.difficulty import PromptDifficulty

            if not isinstance(self.prompt, PromptDifficulty):
                raise ValidationError(f"`prompt` must be a PromptDifficulty or None, got "
                                      f"{type(self.prompt).__name__}.", parameter="prompt")

    # ---- deciding ----------------------------------------------------------------------------
    def level(self, budget: float) -> Level:
        return level_at(self.levels, budget)

    def prior(self, question: str) -> float:
        return 0.0 if self.prompt is None else self.prompt.logit(question)

    def decide(self, problem: Problem, budget: Budget,
               models: Mapping[Role, str]) -> tuple[Strategy, float | None]:
        lv = self.level(Budget.of(budget).tokens)
        prior = self.prior(problem.question)
        difficulty = None if self.prompt is None else sigmoid(prior)
        large = "large" in models and lv.use_large
        if large and (lv.direct_above == 0.0 or self.prompt is not None
                      and prior >= logit(lv.direct_above)):
            return lv.escalate(), difficulty
        return lv.strategy(prior=prior, large=large, weights=self.probe_weights), difficulty

    def vector_groups(self, arrays, budget: Budget) -> list[tuple]:
        """`tts.evaluate` hook: (rows, strategy, per-row prior, per-row difficulty) groups."""
        lv = self.level(budget.tokens)
        priors = self.priors(arrays)
        difficulty = None if self.prompt is None else 1.0 / (1.0 + np.exp(-priors))
        large = "large" in arrays.models and lv.use_large
        direct = np.zeros(len(arrays), bool)
        if large and lv.direct_above == 0.0:
            direct[:] = True
        elif large and self.prompt is not None:
            direct = priors >= logit(lv.direct_above)
        template = lv.strategy(large=large, weights=self.probe_weights)
        groups = []
        if direct.any():
            groups.append((direct, lv.escalate(), None, difficulty))
        if (~direct).any():
            groups.append((~direct, template, priors, difficulty))
        return groups

    def priors(self, arrays) -> np.ndarray:
        return prompt_priors(self.prompt, arrays)

    # ---- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT,
                "probe_features": list(PROBE_FEATURES),
                "probe_weights": list(self.probe_weights),
                "prompt": None if self.prompt is None else self.prompt.to_dict(),
                "levels": [lv.to_dict() for lv in self.levels],
                "notes": dict(self.notes)}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @property
    def train_ids(self) -> list[str] | None:
        """Questions the policy was tuned on (from its notes), for held-out evaluation."""
        ids = self.notes.get("train_ids") if isinstance(self.notes, Mapping) else None
        return None if ids is None else [str(i) for i in ids]


class CrossFitPolicy:
    """K-fold policies in one: each question is decided by the fold policy not tuned on it.

    Evaluating it over the whole bank gives held-out numbers for every question (the k-fold
    estimate of the tuning procedure); it refuses questions outside the bank's folds.
    """

    def __init__(self, policies: Sequence[ParamPolicy], heldout: Sequence[Sequence[str]]):
        if len(policies) != len(heldout) or not policies:
            raise ValidationError("CrossFitPolicy needs one held-out id list per policy.",
                                  parameter="heldout")
        self.policies = list(policies)
        self.fold_of: dict[str, int] = {}
        for f, ids in enumerate(heldout):
            for pid in ids:
                if pid in self.fold_of:
                    raise ValidationError(f"question {pid!r} is held out by two folds.",
                                          parameter="heldout", value=pid)
                self.fold_of[pid] = f
        self.train_ids: list[str] = []
        """Empty: no question is scored by a policy that trained on it."""

    def _fold(self, problem_id: str | None) -> int:
        f = self.fold_of.get(problem_id)  # type: ignore[arg-type]
        if f is None:
            raise ValidationError(f"question {problem_id!r} is in no fold of this cross-fitted "
                                  f"policy; use one of its fold policies for new questions.",
                                  parameter="problem", value=problem_id)
        return f

    def decide(self, problem: Problem, budget: Budget,
               models: Mapping[Role, str]) -> tuple[Strategy, float | None]:
        return self.policies[self._fold(problem.id)].decide(problem, budget, models)

    def vector_groups(self, arrays, budget: Budget) -> list[tuple]:
        folds = np.array([self._fold(pid) for pid in arrays.problem_ids])
        groups = []
        for f, pol in enumerate(self.policies):
            mask = folds == f
            if not mask.any():
                continue
            for rows, strategy, prior, diff in pol.vector_groups(arrays, budget):
                groups.append((rows & mask, strategy, prior, diff))
        return [g for g in groups if g[0].any()]

    def to_dict(self) -> dict:
        return {"format": "tts-crossfit-policy/1",
                "folds": [{"heldout_ids": sorted(pid for pid, f in self.fold_of.items()
                                                 if f == i),
                           "policy": p.to_dict()} for i, p in enumerate(self.policies)]}


# ---- loading -------------------------------------------------------------------------------
_TOP_FIELDS = {"format", "probe_features", "probe_weights", "prompt", "levels", "notes"}
_REQUIRED_TOP = {"format", "probe_weights", "prompt", "levels"}


def level_at(levels: Sequence[Any], budget: float) -> Any:
    """The level of a policy that serves `budget`: the last one whose `from_budget` is at most
    `budget` (the first level below all of them)."""
    chosen = levels[0]
    for lv in levels:
        if budget >= lv.from_budget:
            chosen = lv
    return chosen


def prompt_priors(prompt: Any, arrays: Any) -> np.ndarray:
    """The prompt model's logit of every question of `arrays` (zeros without a model),
    cached on the arrays so every trial of a study computes them once."""
    if prompt is None:
        return np.zeros(len(arrays))
    key = ("prompt-logits", prompt)
    got = arrays.cache.get(key)
    if got is None:
        got = arrays.cache[key] = prompt.logits(arrays.questions)
    return got


def check_top_fields(data: Any, source: str, allowed: set[str], required: set[str],
                     what: str) -> None:
    """A policy file's top level: a JSON object with only `allowed` fields and all
    `required` ones (`what` names the kind of policy in the message)."""
    if not isinstance(data, Mapping):
        raise ValidationError(f"{source}: a policy must be a JSON object, got "
                              f"{type(data).__name__}.", parameter="policy")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(f"{source}: unknown field(s) {unknown}; {what} has "
                              f"{sorted(allowed)}.", parameter=unknown[0])
    missing = sorted(required - set(data))
    if missing:
        raise ValidationError(f"{source}: missing field(s) {missing}.", parameter=missing[0])


def check_item_fields(item: Any, where: str, param: str, fields: Sequence[str], what: str, *,
                      required: bool = True) -> None:
    """One entry of a policy file's list (a level, a rung): an object with only `fields`
    (and all of them when `required`); errors name it by `where` and `param`."""
    if not isinstance(item, Mapping):
        raise ValidationError(f"{where} must be an object, got {type(item).__name__}.",
                              parameter=param)
    unknown = sorted(set(item) - set(fields))
    if unknown:
        raise ValidationError(f"{where} has unknown field(s) {unknown}; {what} has "
                              f"{list(fields)}.", parameter=f"{param}.{unknown[0]}")
    missing = [f for f in fields if f not in item] if required else []
    if missing:
        raise ValidationError(f"{where} is missing field(s) {missing}.",
                              parameter=f"{param}.{missing[0]}")


def check_feature_names(data: Mapping, source: str, key: str, features: Sequence[str]) -> None:
    """A policy file's optional list of feature names (`key`) must be this code's `features`,
    in order: weights saved for other features would be applied to the wrong inputs."""
    if key in data and data[key] != list(features):
        raise ValidationError(f"{source}: `{key}` must be {list(features)}, got "
                              f"{data[key]!r}.", parameter=key)


def levels_list(data: Mapping, source: str) -> list:
    """A policy file's `levels`: a non-empty list."""
    levels = data["levels"]
    if not isinstance(levels, list) or not levels:
        raise ValidationError(f"{source}: `levels` must be a non-empty list of objects.",
                              parameter="levels")
    return levels


def notes_of(data: Mapping, source: str) -> Mapping:
    """A policy file's `notes` (an object; {} when absent)."""
    notes = data.get("notes", {})
    if not isinstance(notes, Mapping):
        raise ValidationError(f"{source}: `notes` must be an object.", parameter="notes")
    return notes


def built(where: str, make: Any, *args: Any, param: str | None = None, **kwargs: Any) -> Any:
    """`make(*args, **kwargs)`, with a ValidationError's message prefixed by `where` (and its
    parameter by `param.`), so a bad value deep in a policy file names its place."""
    try:
        return make(*args, **kwargs)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}", parameter=exc.parameter if param is None
                              else f"{param}.{exc.parameter}", value=exc.value) from None


def prompt_model(data: Any, source: str) -> Any:
    """The PromptDifficulty of a policy file's `prompt` field (None stays None)."""
    if data is None:
        return None
    from tts.difficulty import PromptDifficulty

    try:
        return PromptDifficulty.from_dict(data)
    except ValidationError as exc:
        raise ValidationError(f"{source}: {exc}", parameter="prompt") from None


def policy_from_dict(data: Any, *, source: str = "policy") -> ParamPolicy:
    """Build a ParamPolicy from its JSON data; every problem is a ValidationError."""
    check_top_fields(data, source, _TOP_FIELDS, _REQUIRED_TOP, "a policy")
    if data["format"] != FORMAT:
        raise ValidationError(f"{source}: `format` must be {FORMAT!r}, got {data['format']!r}.",
                              parameter="format", value=data["format"])
    check_feature_names(data, source, "probe_features", PROBE_FEATURES)
    prompt = prompt_model(data.get("prompt"), source)
    levels = []
    for i, lv in enumerate(levels_list(data, source)):
        where = f"{source}: levels[{i}]"
        check_item_fields(lv, where, f"levels[{i}]", LEVEL_FIELDS, "a level")
        levels.append(built(where, Level, **lv, param=f"levels[{i}]"))
    weights = data["probe_weights"]
    return built(source, ParamPolicy, tuple(levels),
                 tuple(weights) if isinstance(weights, list) else weights, prompt,
                 notes_of(data, source))


def crossfit_from_dict(data: Any, *, source: str = "policy") -> CrossFitPolicy:
    folds = data.get("folds") if isinstance(data, Mapping) else None
    if not isinstance(folds, list) or not folds:
        raise ValidationError(f"{source}: a cross-fitted policy needs a non-empty `folds` list.",
                              parameter="folds")
    policies, heldout = [], []
    for i, fold in enumerate(folds):
        if not isinstance(fold, Mapping) or set(fold) != {"heldout_ids", "policy"}:
            raise ValidationError(f"{source}: folds[{i}] must be an object with exactly "
                                  f"`heldout_ids` and `policy`.", parameter=f"folds[{i}]")
        policies.append(policy_from_dict(fold["policy"], source=f"{source} folds[{i}]"))
        ids = fold["heldout_ids"]
        if not isinstance(ids, list) or not all(isinstance(x, (str, int)) for x in ids):
            raise ValidationError(f"{source}: folds[{i}].heldout_ids must be a list of problem "
                                  f"ids, got {shown(ids)}.", parameter=f"folds[{i}].heldout_ids")
        heldout.append([str(x) for x in ids])
    return CrossFitPolicy(policies, heldout)


def load_policy(path: str | Path) -> ParamPolicy | CrossFitPolicy:
    """Read a policy JSON file written by `tts tune` (or `ParamPolicy.to_json`); a
    cross-fitted k-fold policy file (`crossfit_policy.json`) gives a CrossFitPolicy."""
    from functools import partial

    from tts.bank import read_json_file

    p = Path(path)
    if not p.exists():
        raise ValidationError(f"policy file {p} does not exist.", parameter="policy",
                              value=str(p))
    data = read_json_file(p, partial(ValidationError, parameter="policy", value=str(p)),
                          f"policy file {p}")
    if isinstance(data, Mapping) and data.get("format") == "tts-crossfit-policy/1":
        return crossfit_from_dict(data, source=f"policy file {p}")
    if isinstance(data, Mapping) and data.get("format") == "tts-ladder-policy/1":
        from tts.ladder_policy import ladder_policy_from_dict

        return ladder_policy_from_dict(data, source=f"policy file {p}")
    return policy_from_dict(data, source=f"policy file {p}")
