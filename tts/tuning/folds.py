"""Folds of a bank's questions for held-out tuning: by question, or by group (a scenario,
the question's first sentence), so a group is never split."""

from __future__ import annotations

import re

import numpy as np

from tts.errors import ValidationError
from tts.evaluate import BankArrays

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
