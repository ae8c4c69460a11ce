"""The one policy: per budget, which rungs of a model ladder to climb and when (plain data).

`LadderPolicy` holds the ladder it was tuned for (model names, cheapest first; or None for a
policy written in roles only, which then runs on any engine and drops the rungs of roles the
engine lacks), an optional prompt-feature difficulty model (its logit is the `prior` climb
feature) and one `LadderLevel` per budget range: the level for budget B is the last whose
`from_budget` <= B, so a level is tuned for the smallest budget it serves. A level's rungs
make a `tts.strategies.Ladder`; a rung's `skip_above` lets a prompt skip it (start higher up
the ladder, or go straight to the top: routing) when its prior says that rung fails.

Every plan tts has is such a ladder: a vote is one rung, an escalation one top-model rung, a
cascade two rungs (`hold_next` keeps the top model's price while voting), a chain a chain
rung, the adaptive strategy a probe rung with a score (`probe`, `climb_above`,
`climb_early_above`). `DefaultPolicy` is the untuned cascade.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from tts.budgets import Budget
from tts.difficulty import PromptDifficulty
from tts.errors import ValidationError
from tts.signals import CLIMB_FEATURES
from tts.strategies import Strategy
from tts.strategies.adaptive import sigmoid
from tts.strategies.ladder import Ladder, Rung
from tts.types import Problem, Role, is_finite_number, ladder_roles, shown

FORMAT = "tts-policy/2"
RUNG_FIELDS = tuple(f.name for f in dataclasses.fields(Rung))
OPTIONAL_RUNG_FIELDS = {"answer_tokens": 0, "max_waits": 0, "weight": "none", "keep": 1.0,
                        "probe": None, "climb_early_above": 1.0, "hold_next": False,
                        "mix_mode": None, "window_stop": False, "climb_split": False}
"""Rung fields written only when set, so policies without them read as before."""


class Policy(Protocol):
    def decide(self, problem: Problem, budget: Budget,
               models: Mapping[Role, str]) -> tuple[Strategy, float | None]:
        """The strategy for this problem and the difficulty estimate behind it (or None)."""
        ...


@dataclass(frozen=True, slots=True)
class LadderLevel:
    """The rungs used for budgets from `from_budget` up to the next level's."""

    from_budget: float
    rungs: tuple[Rung, ...]

    def __post_init__(self) -> None:
        b = self.from_budget
        if not is_finite_number(b) or b < 0:
            raise ValidationError(f"`from_budget` must be a finite number >= 0, got {shown(b)}.",
                                  parameter="from_budget", value=b)
        Ladder(rungs=tuple(self.rungs))  # validates the rungs
        object.__setattr__(self, "rungs", tuple(self.rungs))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"from_budget": self.from_budget, "rungs": [
            {k: v for k, v in {**dataclasses.asdict(r), "weights": list(r.weights)}.items()
             if k not in OPTIONAL_RUNG_FIELDS or v != OPTIONAL_RUNG_FIELDS[k]}
            for r in self.rungs]}
        return out


@dataclass(frozen=True)
class LadderPolicy:
    """Tuned rungs per budget for one ladder of models; see the module docstring."""

    ladder: tuple[str, ...] | None
    levels: tuple[LadderLevel, ...]
    prompt: Any = None
    """The prompt prior: a tts.difficulty.PromptDifficulty (hand-made prompt features), a
    tts.routing.RouterPrior (a router on sentence embeddings), or None (prior 0). Its logit
    is the rungs' `prior` climb feature and what `skip_above` reads."""
    notes: Mapping[str, Any] = field(default_factory=dict)
    """Free-form provenance (objective, bank, `train_ids`, `count_prompt`, ...)."""

    def __post_init__(self) -> None:
        if self.ladder is not None:
            ladder = tuple(self.ladder)
            if not ladder or not all(isinstance(m, str) and m for m in ladder) \
                    or len(set(ladder)) != len(ladder):
                raise ValidationError(f"`ladder` must be distinct model names, cheapest first, "
                                      f"got {self.ladder!r}.", parameter="ladder",
                                      value=self.ladder)
            object.__setattr__(self, "ladder", ladder)
        levels = tuple(self.levels)
        if not levels or not all(isinstance(lv, LadderLevel) for lv in levels) \
                or levels[0].from_budget != 0:
            raise ValidationError("a policy needs levels (LadderLevel), the first from budget 0.",
                                  parameter="levels")
        for a, b in zip(levels, levels[1:]):
            if not b.from_budget > a.from_budget:
                raise ValidationError(f"levels must have strictly increasing from_budget; "
                                      f"{b.from_budget} follows {a.from_budget}.",
                                      parameter="levels")
        roles = ladder_roles(len(self.ladder)) if self.ladder is not None else \
            ("small", "large")
        for lv in levels:
            for r in lv.rungs:
                if r.role not in roles:
                    raise ValidationError(f"a rung uses role {r.role!r}, but this policy's "
                                          f"ladder has roles {list(roles)}.",
                                          parameter="rungs", value=r.role)
        object.__setattr__(self, "levels", levels)
        if self.prompt is not None and not isinstance(self.prompt, PromptDifficulty) and not all(
                callable(getattr(self.prompt, m, None)) for m in ("logit", "logits", "to_dict")):
            raise ValidationError(f"`prompt` must be a prompt prior (a PromptDifficulty, or a "
                                  f"tts.routing.RouterPrior) or None, got "
                                  f"{type(self.prompt).__name__}.", parameter="prompt")
        if not isinstance(self.notes, Mapping):
            raise ValidationError("`notes` must be a mapping.", parameter="notes")
        check_train_ids(self.notes.get("train_ids"))

    # ---- deciding ----------------------------------------------------------------------------
    def level(self, budget: float) -> LadderLevel:
        return level_at(self.levels, budget)

    def check_models(self, models: Mapping[Role, str]) -> None:
        """Refuse an engine (or bank) whose ladder is not the one this policy was tuned on."""
        if self.ladder is None:
            return
        expected = dict(zip(ladder_roles(len(self.ladder)), self.ladder))
        if dict(models) != expected:
            raise ValidationError(
                f"this policy was tuned for the ladder {list(self.ladder)}, but the engine has "
                f"{dict(models)}; build the engine with that ladder (e.g. "
                f"replay_engine(bank, ladder={list(self.ladder)})).", parameter="policy")

    def rungs(self, budget: float, models: Mapping[Role, str]) -> tuple[Rung, ...]:
        """This budget's rungs that `models` can run: all of them for a named ladder; for a
        roles-only policy those of the roles present (the top one kept never climbs)."""
        self.check_models(models)
        rungs = self.level(budget).rungs
        if self.ladder is not None:
            return rungs
        kept = tuple(r for r in rungs if r.role in models)
        if not kept:
            raise ValidationError(f"this policy's rungs use roles "
                                  f"{sorted({r.role for r in rungs})}, but the engine has only "
                                  f"{sorted(models)}.", parameter="policy")
        if len(kept) < len(rungs):  # the new top rung neither holds nor is skipped
            kept = (*kept[:-1], replace(kept[-1], hold_next=False, skip_above=1.0))
        return kept

    def decide(self, problem: Problem, budget: Budget,
               models: Mapping[Role, str]) -> tuple[Ladder, float | None]:
        prior = 0.0 if self.prompt is None else self.prompt.logit(problem.question)
        difficulty = None if self.prompt is None else sigmoid(prior)
        return Ladder(rungs=self.rungs(Budget.of(budget).tokens, models), prior=prior), \
            difficulty

    def vector_groups(self, arrays, budget: Budget) -> list[tuple]:
        """`tts.evaluate` hook: (rows, ladder, per-row prior, per-row difficulty) groups."""
        rungs = self.rungs(budget.tokens, arrays.models)
        priors = prompt_priors(self.prompt, arrays)
        difficulty = None if self.prompt is None else 1.0 / (1.0 + np.exp(-priors))
        return [(np.ones(len(arrays), bool), Ladder(rungs=rungs), priors, difficulty)]

    @property
    def train_ids(self) -> list[str] | None:
        """Questions the policy was tuned on (from its notes), for held-out evaluation."""
        ids = self.notes.get("train_ids")
        return None if ids is None else [str(i) for i in ids]

    # ---- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The policy as plain data (a copy: editing it leaves the policy as it was)."""
        return {"format": FORMAT, "ladder": None if self.ladder is None else list(self.ladder),
                "climb_features": list(CLIMB_FEATURES),
                "prompt": None if self.prompt is None else self.prompt.to_dict(),
                "levels": [lv.to_dict() for lv in self.levels], "notes": copy.deepcopy(dict(self.notes))}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


DEFAULT_RUNGS = (Rung(role="small", wave=4, max_samples=16, max_tokens=512, temperature=0.7,
                      confidence=0.95, climb_below=0.6, hold_next=True),
                 Rung(role="large", temperature=0.0, max_samples=1, wave=1, max_tokens=512))
"""The untuned cascade: a small-model vote of up to 16 in waves of 4 with
Adaptive-Consistency stopping, climbing to the large model's greedy answer when the leader has
< 60% of the votes, the large call's price held while voting."""


class DefaultPolicy(LadderPolicy):
    """Untuned default (`DEFAULT_RUNGS` at every budget, for any models): the cascade when a
    large model is present, else the small-model vote alone."""

    def __init__(self) -> None:
        super().__init__(None, (LadderLevel(0.0, DEFAULT_RUNGS),), None,
                         {"policy": "default"})


def check_train_ids(ids: Any) -> None:
    """A policy's `notes.train_ids`: absent, or a list of question ids (str or int)."""
    if ids is not None and (not isinstance(ids, (list, tuple)) or not all(
            isinstance(x, (str, int)) and not isinstance(x, bool) for x in ids)):
        raise ValidationError(f"`notes.train_ids` must be a list of question ids, got "
                              f"{shown(ids)}.", parameter="notes.train_ids", value=ids)


def single_level(ladder: Sequence[str] | None, rungs: Sequence[Rung], prompt: Any = None,
                 notes: Mapping[str, Any] | None = None) -> LadderPolicy:
    """A one-level policy (the same rungs at every budget)."""
    return LadderPolicy(None if ladder is None else tuple(ladder),
                        (LadderLevel(0.0, tuple(rungs)),), prompt, dict(notes or {}))


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


