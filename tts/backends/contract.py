"""The one place where what a backend returns is checked before the ledger trusts it.

Budgets are hard limits only if the counts they are charged with are honest in form: a
negative prompt count makes a reservation cheaper, a NaN token count disables every later
comparison, a float or bool slips past integer arithmetic, and more samples than asked for were
never reserved. Every count a backend reports goes through `check_completions` (generation) or
`check_prompt_tokens` (prompt length, known before generating); a violation raises
BackendError naming the model and what was wrong, and nothing is charged.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

from tts.errors import BackendError
from tts.types import Completion, GenRequest

__all__ = ["MAX_COUNT", "check_completions", "check_results", "check_prompt_tokens"]

MAX_COUNT = 10**12
"""Largest token count a backend may report; more is a broken backend, not a real prompt (and
would overflow float prices)."""

_FINISH = ("stop", "length", "error")


def _is_count(value: Any) -> bool:
    """A non-negative integer (Python or numpy), not a bool, within MAX_COUNT."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and 0 <= value <= MAX_COUNT)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_prompt_tokens(model: str, request: GenRequest, count: Any) -> int:
    """`count` (what `backend.prompt_tokens(request)` returned) as an int, or BackendError."""
    if not _is_count(count):
        raise BackendError(f"backend of {model} broke the contract: prompt_tokens() returned "
                           f"{type(count).__name__} {_show(count)} for a request, expected an "
                           f"integer in [0, {MAX_COUNT:.0e}].")
    return int(count)


def check_completions(model: str, request: GenRequest, completions: Any) -> list[Completion]:
    """Validate the samples a backend returned for one request; return them as a list.

    Demands a list of exactly `request.n` Completion objects, each with an integer `tokens` in
    [0, request.max_tokens], an integer `prompt_tokens` >= 0, finite `mean_logprob` and
    `min_conf` or None, `answer` and `text` strings or None and a known `finish_reason`.
    """
    def fail(what: str) -> BackendError:
        return BackendError(f"backend of {model} broke the contract: {what} (request n="
                            f"{request.n}, max_tokens={request.max_tokens}).")

    if not isinstance(completions, (list, tuple)):
        raise fail(f"generate() returned {type(completions).__name__} for a request, expected "
                   f"a list of Completions")
    if len(completions) != request.n:
        raise fail(f"returned {len(completions)} samples for a request of n={request.n}")
    for k, c in enumerate(completions):
        if not isinstance(c, Completion):
            raise fail(f"sample {k} is {type(c).__name__}, not a Completion")
        if not _is_count(c.tokens) or c.tokens > request.max_tokens:
            raise fail(f"sample {k} reports {type(c.tokens).__name__} {_show(c.tokens)} "
                       f"generated tokens, expected an integer in [0, {request.max_tokens}]")
        if not _is_count(c.prompt_tokens):
            raise fail(f"sample {k} reports {type(c.prompt_tokens).__name__} "
                       f"{_show(c.prompt_tokens)} prompt tokens, expected an integer >= 0")
        for field in ("mean_logprob", "min_conf"):
            value = getattr(c, field, None)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, numbers.Real)
                                      or not math.isfinite(value)):
                raise fail(f"sample {k} has {field} {_show(value)}, expected a finite number "
                           f"or None")
        for field in ("answer", "text"):
            value = getattr(c, field)
            if value is not None and not isinstance(value, str):
                raise fail(f"sample {k} has {field} of type {type(value).__name__}, expected "
                           f"str or None")
        if c.finish_reason not in _FINISH:
            raise fail(f"sample {k} has finish_reason {_show(c.finish_reason)}, expected one "
                       f"of {list(_FINISH)}")
    return list(completions)


def check_results(model: str, requests: Sequence[GenRequest],
                  results: Any) -> list[list[Completion]]:
    """Validate a whole `generate(requests)` answer: one sample list per request, each
    passing `check_completions`."""
    if not isinstance(results, (list, tuple)):
        raise BackendError(f"backend of {model} broke the contract: generate() returned "
                           f"{type(results).__name__}, expected a list of sample lists.")
    if len(results) != len(requests):
        raise BackendError(f"backend of {model} broke the contract: {len(results)} results "
                           f"for {len(requests)} requests.")
    return [check_completions(model, req, got) for req, got in zip(requests, results)]
