"""A policy over a model ladder: per budget, which rungs to climb and when (plain JSON data).

`LadderPolicy` holds the ladder it was tuned for (model names, cheapest first), an optional
prompt-feature difficulty model (its logit is the `prior` climb feature) and one `LadderLevel`
per budget range (the level for budget B is the last whose `from_budget` <= B, as in
`tts.policy.ParamPolicy`). Each level is a tuple of `Rung`s; `decide` returns the
`tts.strategies.Ladder` of those rungs with this prompt's prior.

    {"format": "tts-ladder-policy/1", "ladder": ["gpt-3.5-turbo", "gpt-4"], "prompt": null,
     "levels": [{"from_budget": 0, "rungs": [{"role": "small", "mode": "pot", ...},
                                             {"role": "large", "mode": "greedy", ...}]}],
     "notes": {...}}

Loading validates every field and names the one that is wrong; an engine whose models are
not the policy's ladder is refused with both lists in the message.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tts.budgets import Budget
from tts.errors import ValidationError
from tts.signals import CLIMB_FEATURES
from tts.strategies.ladder import Ladder, Rung
from tts.types import Problem, Role, is_finite_number, ladder_roles, shown

FORMAT = "tts-ladder-policy/1"
RUNG_FIELDS = tuple(f.name for f in dataclasses.fields(Rung))
_OPTIONAL = {"answer_tokens": 0, "max_waits": 0, "weight": "none", "keep": 1.0}
"""Rung fields written only when set (chain rungs' budget forcing, vote rungs' confidence
options), so policies without them read as before."""


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
        return {"from_budget": self.from_budget, "rungs": [
            {k: v for k, v in {**dataclasses.asdict(r), "weights": list(r.weights)}.items()
             if k not in _OPTIONAL or v != _OPTIONAL[k]} for r in self.rungs]}


@dataclass(frozen=True)
class LadderPolicy:
    """Tuned rungs per budget for one ladder of models; see the module docstring."""

    ladder: tuple[str, ...]
    levels: tuple[LadderLevel, ...]
    prompt: Any = None
    """A tts.difficulty.PromptDifficulty, or None (prior 0)."""
    notes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ladder = tuple(self.ladder)
        if not ladder or not all(isinstance(m, str) and m for m in ladder) \
                or len(set(ladder)) != len(ladder):
            raise ValidationError(f"`ladder` must be distinct model names, cheapest first, got "
                                  f"{self.ladder!r}.", parameter="ladder", value=self.ladder)
        object.__setattr__(self, "ladder", ladder)
        levels = tuple(self.levels)
        if not levels or levels[0].from_budget != 0:
            raise ValidationError("a ladder policy needs levels, the first from budget 0.",
                                  parameter="levels")
        for a, b in zip(levels, levels[1:]):
            if not b.from_budget > a.from_budget:
                raise ValidationError(f"levels must have strictly increasing from_budget; "
                                      f"{b.from_budget} follows {a.from_budget}.",
                                      parameter="levels")
        roles = set(ladder_roles(len(ladder)))
        for lv in levels:
            for r in lv.rungs:
                if r.role not in roles:
                    raise ValidationError(f"a rung uses role {r.role!r}, but a ladder of "
                                          f"{len(ladder)} models has roles "
                                          f"{list(ladder_roles(len(ladder)))}.",
                                          parameter="rungs", value=r.role)
        object.__setattr__(self, "levels", levels)

    def level(self, budget: float) -> LadderLevel:
        from tts.policy import level_at

        return level_at(self.levels, budget)

    def check_models(self, models: Mapping[Role, str]) -> None:
        """Refuse an engine (or bank) whose ladder is not the one this policy was tuned on."""
        expected = dict(zip(ladder_roles(len(self.ladder)), self.ladder))
        if dict(models) != expected:
            raise ValidationError(
                f"this policy was tuned for the ladder {list(self.ladder)}, but the engine has "
                f"{dict(models)}; build the engine with that ladder (e.g. "
                f"replay_engine(bank, ladder={list(self.ladder)})).", parameter="policy")

    def decide(self, problem: Problem, budget: Budget,
               models: Mapping[Role, str]) -> tuple[Ladder, float | None]:
        self.check_models(models)
        prior = 0.0 if self.prompt is None else self.prompt.logit(problem.question)
        rungs = self.level(Budget.of(budget).tokens).rungs
        return Ladder(rungs=rungs, prior=prior), None

    def vector_groups(self, arrays, budget: Budget) -> list[tuple]:
        """`tts.evaluate` hook: every row runs this level's ladder with its own prior."""
        self.check_models(arrays.models)
        from tts.policy import prompt_priors

        priors = prompt_priors(self.prompt, arrays)
        rungs = self.level(budget.tokens).rungs
        return [(np.ones(len(arrays), bool), Ladder(rungs=rungs), priors, None)]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "ladder": list(self.ladder),
                "climb_features": list(CLIMB_FEATURES),
                "prompt": None if self.prompt is None else self.prompt.to_dict(),
                "levels": [lv.to_dict() for lv in self.levels], "notes": dict(self.notes)}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def ladder_policy_from_dict(data: Any, *, source: str = "policy") -> LadderPolicy:
    """Build a LadderPolicy from JSON data; every problem is a ValidationError naming it."""
    from tts.policy import (built, check_feature_names, check_item_fields, check_top_fields,
                            levels_list, notes_of, prompt_model)

    check_top_fields(data, source, {"format", "ladder", "climb_features", "prompt", "levels",
                                    "notes"}, {"format", "ladder", "levels"}, "a ladder policy")
    added = _features_added_since(data)
    if not added:
        check_feature_names(data, source, "climb_features", CLIMB_FEATURES)
    ladder = data["ladder"]
    if not isinstance(ladder, list):
        raise ValidationError(f"{source}: `ladder` must be a list of model names, got "
                              f"{ladder!r}.", parameter="ladder")
    prompt = prompt_model(data.get("prompt"), source)
    levels = []
    for i, lv in enumerate(levels_list(data, source)):
        where = f"{source}: levels[{i}]"
        if not isinstance(lv, Mapping) or set(lv) != {"from_budget", "rungs"} \
                or not isinstance(lv["rungs"], list):
            raise ValidationError(f"{where} must be an object with `from_budget` and a list "
                                  f"`rungs`.", parameter=f"levels[{i}]")
        rungs = []
        for j, r in enumerate(lv["rungs"]):
            at = f"{where}.rungs[{j}]"
            check_item_fields(r, at, at, RUNG_FIELDS, "a rung", required=False)
            fields = dict(r)
            if isinstance(fields.get("weights"), list):
                fields["weights"] = tuple(fields["weights"]) + (0.0,) * added
            rungs.append(built(at, Rung, **fields, param=at))
        levels.append(built(where, LadderLevel, lv["from_budget"], tuple(rungs)))
    return built(source, LadderPolicy, tuple(ladder), tuple(levels), prompt,
                 dict(notes_of(data, source)))


def _features_added_since(data: Mapping) -> int:
    """How many climb features this code appends to a policy file's older `climb_features`
    (0 when the file names today's, or none). Such a file keeps its meaning: its rungs give
    the newer features (e.g. leader_conf) weight 0."""
    names = data.get("climb_features")
    if isinstance(names, list) and 0 < len(names) < len(CLIMB_FEATURES) \
            and names == list(CLIMB_FEATURES[:len(names)]):
        return len(CLIMB_FEATURES) - len(names)
    return 0


def single_level(ladder: Sequence[str], rungs: Sequence[Rung], prompt: Any = None,
                 notes: Mapping[str, Any] | None = None) -> LadderPolicy:
    """A one-level policy (the same rungs at every budget)."""
    return LadderPolicy(tuple(ladder), (LadderLevel(0.0, tuple(rungs)),), prompt,
                        dict(notes or {}))
