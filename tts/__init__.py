"""tts: spend inference compute where it pays.

    >>> import tts
    >>> r = tts.solve("Janet's ducks lay 16 eggs per day. ...", budget=200_000)
    >>> r.answer, r.strategy, r.cost

`solve` and `solve_many` run on the embedded default, a replay bank of real Llama-2-13B and
GPT-4 samples on 300 GSM8K questions, unless you pass a bank or an Engine with live backends.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from tts.budgets import Budget, CostModel
from tts.engine import Engine
from tts.errors import (BackendError, BankError, BudgetExceeded, TTSError, UnknownNameError,
                        ValidationError)
from tts.strategies import Strategy
from tts.types import Completion, GenRequest, Plan, Problem, Result

__version__ = "0.1.0"

BUNDLED_BANK = Path(__file__).parent / "data" / "mot_gsm8k"
"""Replay bank shipped with the package: answers and token counts of real samples."""
BUNDLED_DATE_BANK = Path(__file__).parent / "data" / "mot_date"  # DATE: Llama-2, gpt-3.5, gpt-4


@lru_cache(maxsize=8)
def _load(path: str):
    from tts.bank import load_bank

    return load_bank(path)


def replay_engine(bank: str | Path | None = None, *, seed: int | None = 0,
                  count_prompt: bool = False, policy=None,
                  ladder: Sequence[str] | None = None) -> Engine:
    """An Engine replaying a bank (default: the bundled one) with its small and large models,
    or with `ladder` (model names of the bank, cheapest first)."""
    from tts.backends.replay import ReplayBackend

    b = _load(str(Path(bank) if bank is not None else BUNDLED_BANK))
    if ladder is not None:
        if isinstance(ladder, str) or not ladder:
            raise ValidationError(f"`ladder` must be a non-empty list of model names, got "
                                  f"{ladder!r}.", parameter="ladder", value=ladder)
        return Engine([ReplayBackend(b, m) for m in ladder], cost=b.meta.cost, seed=seed,
                      count_prompt=count_prompt, policy=policy)
    small = ReplayBackend(b, b.role_model("small"))
    large_model = b.meta.roles.get("large")
    large = ReplayBackend(b, large_model) if large_model in b.models else None
    return Engine(small, large, cost=b.meta.cost, seed=seed, count_prompt=count_prompt,
                  policy=policy)


def solve(prompt: str | Problem, budget: Budget | float, *, engine: Engine | None = None,
          strategy: Strategy | str | None = None, bank: str | Path | None = None,
          seed: int | None = 0, **options) -> Result:
    """Answer `prompt` without spending more than `budget` (small-model token units).

    Uses `engine` if given, else replays `bank` (default: the bundled MoT GSM8K bank).
    `strategy` forces a strategy by instance or name (options as keywords); otherwise the
    engine's policy decides. A budget too small for any step returns a Result with
    status "insufficient_budget" and nothing spent.
    """
    engine = engine or replay_engine(bank, seed=seed)
    return engine.solve(prompt, budget, strategy=strategy, **options)


def solve_many(prompts: Iterable[str | Problem], budget: Budget | float, *,
               engine: Engine | None = None, strategy: Strategy | str | None = None,
               bank: str | Path | None = None, seed: int | None = 0, **options) -> list[Result]:
    """`solve` for many prompts, batching their generation steps together."""
    engine = engine or replay_engine(bank, seed=seed)
    return engine.solve_many(prompts, budget, strategy=strategy, **options)


__all__ = ["solve", "solve_many", "replay_engine", "Engine", "Budget", "CostModel", "Result",
           "Problem", "Plan", "GenRequest", "Completion", "Strategy", "TTSError",
           "ValidationError", "BankError", "BackendError", "BudgetExceeded", "UnknownNameError",
           "BUNDLED_BANK"]
