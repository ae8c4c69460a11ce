"""Folds of a bank's questions for held-out tuning: by question, or by group (a scenario, the
question's first sentence; a subject, the id's prefix; or a tag per question id from a user's
file, `read_groups`), so a group is never split."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Mapping, Union

import numpy as np

from tts.errors import ValidationError
from tts.evaluate import BankArrays
from tts.files import read_json_file
from tts.routellm import group_of
from tts.types import shown

GROUP_BY = ("question", "scenario", "subject", "tag")
"""What `--group-by` may name ("subject": the problem id before its last "/", as an imported
RouteLLM bank's MMLU subject, `tts.routellm.group_of`; "tag": the groups of a `--groups
FILE`)."""
GroupBy = Union[str, Mapping[str, str]]
"""A grouping: "question", "scenario", "subject", or a mapping question id -> group (tags)."""


def scenario(question: str) -> str:
    """A question's scenario: its first sentence ("Yesterday was April 30, 2021.")."""
    m = re.match(r"\s*(.+?[.!?])(\s|$)", question)
    return (m.group(1) if m else question).strip()


def group_name(group_by: GroupBy) -> str:
    """How a grouping is named in reports ("tag" for a mapping)."""
    return group_by if isinstance(group_by, str) else "tag"


def group_labels(arrays: BankArrays, group_by: GroupBy) -> list[str]:
    """Each question's group under `group_by`; a question missing from a tag mapping is a
    clear error naming it."""
    if isinstance(group_by, Mapping):
        missing = [p for p in arrays.problem_ids if p not in group_by]
        if missing:
            raise ValidationError(f"{len(missing)} of {len(arrays)} questions have no group in "
                                  f"the --groups file, e.g. {missing[:3]}; give every question "
                                  f"id of the bank a group.", parameter="groups")
        return [str(group_by[p]) for p in arrays.problem_ids]
    if group_by not in ("question", "scenario", "subject"):
        raise ValidationError(f"`group_by` must be 'question', 'scenario' or 'subject' (or a "
                              f"mapping of question id to group), got {group_by!r}.",
                              parameter="group_by", value=group_by)
    if group_by == "scenario":
        return [scenario(q) for q in arrays.questions]
    if group_by == "subject":
        if not any("/" in p for p in arrays.problem_ids):
            raise ValidationError(f"--group-by subject reads a question's subject from its id "
                                  f"(<subject>/<row>, as `tts bank import-routellm` writes), but "
                                  f"no id of bank {arrays.bank.meta.name!r} has one (e.g. "
                                  f"{arrays.problem_ids[0]!r}); give --groups FILE instead.",
                                  parameter="group_by", value=group_by)
        return [group_of(p) for p in arrays.problem_ids]
    return list(arrays.problem_ids)


def group_folds(arrays: BankArrays, folds: int, group_by: GroupBy = "question",
                seed: int = 0) -> list[np.ndarray]:
    """`folds` held-out index sets; grouped by anything but "question", a group is never
    split."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValidationError(f"`folds` must be an integer >= 2, got {folds!r}.",
                              parameter="folds", value=folds)
    labels = group_labels(arrays, group_by)
    names = list(dict.fromkeys(labels))
    if len(names) < folds:
        raise ValidationError(f"{len(names)} {group_name(group_by)} groups cannot fill {folds} "
                              f"folds.", parameter="folds", value=folds)
    perm = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[g]: f for f, part in enumerate(np.array_split(perm, folds)) for g in part}
    per = np.array([fold_of[k] for k in labels])
    return [np.flatnonzero(per == f) for f in range(folds)]


def read_groups(path: str | Path) -> dict[str, str]:
    """A `--groups FILE`: a JSON object mapping question id -> group name (a string or an
    integer); anything else is a clear error naming the file."""
    p = Path(path)
    error = partial(ValidationError, parameter="groups", value=str(p))
    data = read_json_file(p, error, f"--groups file {p}")
    if not isinstance(data, dict) or not data:
        raise error(f"--groups file {p} must be a JSON object mapping question id to group, "
                    f"got {shown(data)}.")
    for k, v in data.items():
        if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
            raise error(f"--groups file {p}: the group of {k!r} must be a non-empty string or "
                        f"an integer, got {shown(v)}.")
    return {str(k): str(v) for k, v in data.items()}
