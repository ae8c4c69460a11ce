"""The one place where what a backend returns is checked before the ledger trusts it.

Budgets are hard limits only if the counts they are charged with are honest in form: a
negative prompt count makes a reservation cheaper, a NaN token count disables every later
comparison, a float or bool slips past integer arithmetic, and more samples than asked for were
never reserved. Every count a backend reports goes through `check_completions` (generation) or
`check_prompt_tokens` (prompt length, known before generating); a violation raises
BackendError naming the model and what was wrong, and nothing is charged. Backends that read
counts out of a reply (an HTTP server's JSON) check each with `check_count` first.

Attempts whose answer is lost can still be billed: a hosted API charges a request that timed
out on the client's side. Backends that retry such attempts (`bills_lost_attempts = True`)
take `pay` from `generate_checked`, which charges each lost attempt to its request's ledger
before the retry, and refuses the retry when the budget cannot pay for it.
"""

from __future__ import annotations

import math
import numbers
import threading
from typing import Any, Callable, Sequence

from tts.errors import BackendError, TTSError
from tts.types import Completion, GenRequest

__all__ = ["MAX_COUNT", "Pay", "check_completions", "check_count", "check_prompt_tokens",
           "check_results", "generate_checked", "ledger_pay"]

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


def check_count(value: Any, what: str) -> int:
    """`value` as an int if it is an integer count in [0, MAX_COUNT] (not a bool, not a float:
    a float count would be truncated), else BackendError: "`what` <type> <value>, expected
    ..." (`what` says who gave it, e.g. "URL answered usage.completion_tokens")."""
    if not _is_count(value):
        raise BackendError(f"{what} {type(value).__name__} {_show(value)}, expected an integer "
                           f"in [0, {MAX_COUNT:.0e}].")
    return int(value)


def check_prompt_tokens(model: str, request: GenRequest, count: Any) -> int:
    """`count` (what `backend.prompt_tokens(request)` returned) as an int, or BackendError."""
    return check_count(count, f"backend of {model} broke the contract: prompt_tokens() "
                              f"returned")


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


Pay = Callable[[int, int], bool]
"""`pay(i, tokens)`: charge `tokens` generated tokens, lost in a timed-out attempt at
requests[i], to that request's budget before retrying it; False (nothing charged) when the
budget cannot pay for them (or nobody waits for the request any more): then no retry."""


def generate_checked(backend: Any, requests: Sequence[GenRequest],
                     pay: Pay | None = None) -> list[list[Completion]]:
    """`backend.generate(requests)`, checked with `check_results`. `pay` is passed to backends
    that may lose billed attempts (`bills_lost_attempts = True`); others never lose one."""
    if pay is not None and getattr(backend, "bills_lost_attempts", False):
        got = backend.generate(requests, pay=pay)
    else:
        got = backend.generate(requests)
    return check_results(backend.model, requests, got)


def ledger_pay(model: str, context: Callable[[int], Any], lock: threading.Lock) -> Pay:
    """A `Pay` charging request i's lost attempts to `context(i)` (a RunContext: its ledger
    and trace; None when nobody waits for the request), at `model`'s output price; `lock`
    guards the ledgers (the backend pays from its own threads)."""
    def pay(i: int, tokens: int) -> bool:
        with lock:
            ctx = context(i)
            if ctx is None:
                return False
            try:
                ledger = ctx.ledger
                ledger.commit(ledger.reserve(model, 1, tokens), [tokens])
            except TTSError:
                return False
            ctx.trace.append(f"{model}: an attempt timed out; charged its max_tokens "
                             f"({tokens} tokens, billed by the server) and retried")
        return True

    return pay
