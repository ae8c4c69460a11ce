"""K-fold policies in one: each question is decided by the fold policy not tuned on it."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from tts.budgets import Budget
from tts.errors import ValidationError
from tts.policy.ladder import LadderPolicy
from tts.strategies import Strategy
from tts.types import Problem, Role

CROSSFIT_FORMAT = "tts-crossfit-policy/1"


class CrossFitPolicy:
    """One fold policy per held-out id list; evaluating it over the whole bank gives held-out
    numbers for every question (the k-fold estimate of the tuning procedure). It refuses
    questions outside the bank's folds."""

    def __init__(self, policies: Sequence[LadderPolicy], heldout: Sequence[Sequence[str]]):
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

    @property
    def ladder(self) -> tuple[str, ...] | None:
        return self.policies[0].ladder

    @property
    def notes(self) -> Mapping:
        return self.policies[0].notes

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
        return {"format": CROSSFIT_FORMAT,
                "folds": [{"heldout_ids": sorted(pid for pid, f in self.fold_of.items()
                                                 if f == i),
                           "policy": p.to_dict()} for i, p in enumerate(self.policies)]}
