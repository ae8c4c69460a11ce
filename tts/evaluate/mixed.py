"""The evaluator's view of a mixed-representation vote (`Vote.mix_mode`): two records of one
model side by side as one stream whose draws alternate between them, as
`tts.strategies.mixed` draws them live, and the class of every draw (ESC's window stop).

Kept apart from `tts.evaluate.arrays` (which builds the prefixes of any stream) so each module
has one job; the arrays are built with `dataclasses.replace` on the first record's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from tts.bank import sample_order

ModeArrays = Prefix = Any
"""`tts.evaluate.arrays`'s classes, which import this module (so it cannot import them)."""

__all__ = ["MIX", "mixed_key", "mixed_arrays", "mixed_order", "draw_classes"]

MIX = "|"
"""Joins the two modes of a mixed stream's name (no mode name holds it)."""


def mixed_key(mode: str, mix_mode: str) -> str:
    """The stream name of a vote mixing `mode` and `mix_mode` (`Vote.mix_mode`)."""
    return f"{mode}{MIX}{mix_mode}"


def mixed_arrays(a: ModeArrays, b: ModeArrays) -> ModeArrays:
    """Both records of a mixed vote in one: `a`'s samples at stored indices [0, w), `b`'s at
    [w, 2w) (w the wider record's width), so a draw position can index either; `parts`
    keeps the two."""
    w = max(a.width, b.width)
    p = len(a.size)

    def both(fill: Any, name: str) -> np.ndarray:
        out = np.full((p, 2 * w), fill, getattr(a, name).dtype)
        out[:, :a.width] = getattr(a, name)
        out[:, w:w + b.width] = getattr(b, name)
        return out

    answers = tuple(ra + (None,) * (w - len(ra)) + rb for ra, rb in zip(a.answers, b.answers))
    return dataclasses.replace(
        a, mode=mixed_key(a.mode, b.mode), size=a.size + b.size, cls=both(-1, "cls"),
        tokens=both(0, "tokens"), correct=both(False, "correct"),
        prompt_tokens=a.prompt_tokens + b.prompt_tokens, answers=answers,
        n_classes=max(a.n_classes, b.n_classes), parts=(a, b))


def mixed_order(m: ModeArrays, pids: Sequence[str], seed: int | None) -> np.ndarray:
    """(P, 2w) stored index served at each draw of a mixed stream (-1 past a record): draw
    2j is sample j of the first record's seeded order, draw 2j + 1 of the second's."""
    p, s = m.cls.shape
    w = s // 2
    order = np.full((p, s), -1, np.int64)
    for i, pid in enumerate(pids):
        for j, part in enumerate(m.parts):
            stored = int(part.size[i])
            if stored:
                order[i, j + 2 * np.arange(stored)] = sample_order(
                    pid, m.model, part.mode, seed, stored) + j * w
    return order


def draw_classes(m: ModeArrays, pre: Prefix, max_tokens: int) -> np.ndarray:
    """(P, S) answer class of each draw of `pre`'s stream, -1 where it abstains (no answer,
    longer than `max_tokens`, or past the record)."""
    valid = pre.order >= 0
    oc = np.where(valid, pre.order, 0)
    cls = np.take_along_axis(m.cls, oc, 1)
    tok = np.take_along_axis(m.tokens, oc, 1)
    return np.where(valid & (tok <= max_tokens), cls, -1)
