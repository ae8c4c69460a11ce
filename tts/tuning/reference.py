"""What a tuned plan is scored against: the gold answers, or the top model's greedy answer.

`agreement_arrays(arrays, top)` is the bank with every sample's "correct" replaced by "its
answer is the top model's greedy answer" (same answer class; a question where the top model
gave no greedy answer agrees with nothing). Plans decide on answer classes, tokens and
confidences only, never on correctness, so a plan runs the same on both views at the same
cost; its accuracy on this view is its agreement with the top model, and one minus that its
disagreement (what audits measure in deployment). `tts tune --reference top` tunes on it,
which needs no gold: audit banks and users' own logs.
"""

from __future__ import annotations

from dataclasses import replace

from tts.bank import is_greedy_mode
from tts.errors import ValidationError
from tts.evaluate import BankArrays

REFERENCES = ("gold", "top")
"""`tts tune --reference`: tune for gold accuracy, or for agreement with the top model."""

__all__ = ["REFERENCES", "agreement_arrays", "top_greedy_mode", "has_gold", "check_reference"]


def top_greedy_mode(arrays: BankArrays, top: str) -> str | None:
    """The greedy mode whose answer is the reference ("greedy" when every question has it,
    else the first greedy mode every question has; None when there is none): the same
    answer as the tuner's top rung (`tts.tuning.data.top_rung`)."""
    modes = sorted(mode for (model, mode), m in arrays.modes.items()
                   if model == top and is_greedy_mode(mode) and (m.size > 0).all())
    if not modes:
        return None
    return "greedy" if "greedy" in modes else modes[0]


def has_gold(arrays: BankArrays) -> bool:
    """Whether every question of `arrays` has a gold answer."""
    return all(g is not None and str(g).strip() for g in arrays.gold)


def check_reference(arrays: BankArrays, reference: str, top: str) -> None:
    """Refuse a reference the bank cannot give, before any tuning: `gold` without gold
    answers on every question, `top` without the top model's greedy answer on every one."""
    if reference not in REFERENCES:
        raise ValidationError(f"`reference` must be one of {list(REFERENCES)}, got "
                              f"{reference!r}.", parameter="reference", value=reference)
    if reference == "gold" and not has_gold(arrays):
        missing = sum(1 for g in arrays.gold if g is None or not str(g).strip())
        raise ValidationError(
            f"{missing} of {len(arrays)} questions of bank {arrays.bank.meta.name!r} have no "
            f"gold answer, so there is no accuracy to tune for; tune for agreement with the "
            f"top model instead (--reference top).", parameter="reference", value=reference)
    if reference == "top" and top_greedy_mode(arrays, top) is None:
        have = sorted({mode for (model, mode), m in arrays.modes.items()
                       if model == top and (m.size > 0).any()})
        raise ValidationError(
            f"--reference top needs the top model {top!r}'s greedy answer on every question, "
            f"but bank {arrays.bank.meta.name!r} has no greedy mode of it on all "
            f"{len(arrays)} questions (its modes of {top!r}: {have or 'none'}); log them "
            f"(tts bank build --model ... --greedy) or tune against gold (--reference gold).",
            parameter="reference", value=reference)


def agreement_arrays(arrays: BankArrays, top: str) -> BankArrays:
    """`arrays` (a root view, or a subset: the result is a root of the same questions) with
    every sample correct iff its answer class is the top model `top`'s greedy answer's."""
    mode = top_greedy_mode(arrays, top)
    if mode is None:
        check_reference(arrays, "top", top)
    ref = arrays.mode(top, mode).cls[:, 0]  # type: ignore[arg-type]
    modes = {key: replace(m, correct=(m.cls >= 0) & (m.cls == ref[:, None]))
             for key, m in arrays.modes.items()}
    return BankArrays(arrays.bank, arrays.problem_ids, modes, dict(arrays.models))

