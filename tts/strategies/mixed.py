"""Votes over two representations at once (the mixture-of-thought vote of Yue et al. 2023), and
the window stop of Early-Stopping Self-Consistency (Li et al. 2024): the rules `Vote` applies
when it is given `mix_mode` or `window_stop`, in one place for the live strategies (the
vectorised evaluator, `tts.evaluate.vote`, mirrors them with arrays).

A mixed vote draws its samples alternately: draw 2j is sample j of the `mode` stream, draw
2j + 1 sample j of the `mix_mode` stream, so any prefix of the draws holds half of each
(the first representation one more when the count is odd), and a wave of n draws from draw k
is one call per representation. Both calls are reserved before either generates, largest wave
first: the wave shrinks one draw at a time until both fit.
"""

from __future__ import annotations

from typing import Callable, Sequence

from tts.answers import count_votes, equivalent
from tts.strategies.base import Call, RunContext
from tts.types import Completion, GenRequest, Role

__all__ = ["split_draws", "mixed_calls", "interleave", "leaders_split", "unanimous"]


def split_draws(k: int, n: int) -> tuple[int, int, int, int]:
    """Draws k .. k+n-1 of a mixed vote as (offset, count) in the first representation's
    stream, then in the second's."""
    a_off, b_off = (k + 1) // 2, k // 2
    a = (k + n + 1) // 2 - a_off
    return a_off, a, b_off, n - a


def mixed_calls(ctx: RunContext, role: Role, k: int, want: int,
                request: Callable[[int, int, int], GenRequest]) -> list[tuple[int, Call]]:
    """The reserved calls, as (representation 0 or 1, call), of the largest wave of at most
    `want` draws from draw `k` whose calls (one per representation that draws) all fit; []
    when not even one draw fits. `request(which, n, offset)` builds a representation's
    request."""
    for n in range(want, 0, -1):
        a_off, a, b_off, b = split_draws(k, n)
        calls: list[tuple[int, Call]] = []
        for which, count, offset in ((0, a, a_off), (1, b, b_off)):
            if count == 0:
                continue
            call = ctx.try_call(role, request(which, count, offset))
            if call is None:
                break
            calls.append((which, call))
        else:
            return calls
        for _, call in calls:
            ctx.ledger.cancel(call.reservation)
    return []


def interleave(k: int, parts: Sequence[tuple[int, Sequence[Completion]]]) -> list[Completion]:
    """A mixed wave's completions in draw order: draw k + i is of representation
    (k + i) % 2; `parts` are (representation, its completions in stream order)."""
    streams = {which: list(done) for which, done in parts}
    out: list[Completion] = []
    for i in range(sum(len(s) for s in streams.values())):
        stream = streams.get((k + i) % 2) or streams.get((k + i + 1) % 2)
        out.append(stream.pop(0))  # a short reply leaves the other's samples in order
    return out


def leaders_split(answers: Sequence[str | None]) -> bool:
    """Whether a mixed vote's representations disagree: the majority of its first
    representation's answers (even draws) and of its second's (odd draws) are not the same
    answer, or one of them has none (MoT's verification signal)."""
    first = count_votes(answers[0::2]).leader
    second = count_votes(answers[1::2]).leader
    return first is None or second is None or not equivalent(first, second)


def unanimous(answers: Sequence[str | None]) -> bool:
    """Whether a window of answers (at least one) all give one answer: ESC's stop."""
    return bool(answers) and all(a is not None and equivalent(a, answers[0]) for a in answers)
