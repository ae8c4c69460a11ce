"""tts: spend inference compute where it pays.

    >>> import tts
    >>> r = tts.solve("Janet's ducks lay 16 eggs per day. ...", budget=200_000)
    >>> r.answer, r.strategy, r.cost

`solve` and `solve_many` replay the embedded bank of real Llama-2-13B and GPT-4 samples for
its 300 GSM8K questions; any other prompt goes to the live models pulled with
`tts.models.pull("small")` / `("large")` (vLLM, loaded once per process), unless you pass a
bank or an Engine.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from tts.bank import bank_path
from tts.budgets import Budget, CostModel
from tts.engine import Engine, as_budget, as_problems, forced_strategy
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

    b = _load(str(bank_path(bank) if bank is not None else BUNDLED_BANK))
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

    Uses `engine` if given, else replays `bank` when given. Otherwise a question of the
    bundled MoT GSM8K bank is replayed and any other prompt is answered live by the pulled
    models (`live_engine()`, kept loaded for the next call). `strategy` forces a strategy
    by instance or name (options as keywords); otherwise the engine's policy decides. A
    budget too small for any step returns a Result with status "insufficient_budget" and
    nothing spent.

    Raises:
        TTSError: the prompt is not a bundled question and no live model is available (the
            message says what to call or install).
    """
    return solve_many([prompt], budget, engine=engine, strategy=strategy, bank=bank,
                      seed=seed, **options)[0]


def solve_many(prompts: Iterable[str | Problem], budget: Budget | float, *,
               engine: Engine | None = None, strategy: Strategy | str | None = None,
               bank: str | Path | None = None, seed: int | None = 0, **options) -> list[Result]:
    """`solve` for many prompts, batching their generation steps together (bundled
    questions are replayed, the others answered live)."""
    if engine is not None or bank is not None:
        engine = engine or replay_engine(bank, seed=seed)
        return engine.solve_many(prompts, budget, strategy=strategy, **options)
    items = as_problems(prompts)  # every input checked before a live engine loads
    as_budget(budget)
    forced_strategy(strategy, dict(options))
    replay = replay_engine(None, seed=seed)
    known = [_bundled(replay, p) for p in items]
    live = [p for p, k in zip(items, known) if not k]
    results: dict[int, Result] = {}
    if len(live) < len(items):
        idx = [i for i, k in enumerate(known) if k]
        for i, r in zip(idx, replay.solve_many([items[i] for i in idx], budget,
                                               strategy=strategy, **options)):
            results[i] = r
    if live:
        idx = [i for i, k in enumerate(known) if not k]
        engine = live_engine(seed=seed, prompt=live[0].question)
        for i, r in zip(idx, engine.solve_many(live, budget, strategy=strategy, **options)):
            results[i] = r
    return [results[i] for i in range(len(items))]


def _bundled(replay: Engine, problem: Problem) -> bool:
    if problem.id is not None:
        return True
    try:
        replay.backends["small"].lookup(problem.question)  # type: ignore[attr-defined]
    except BankError:
        return False
    return True


_LIVE: dict[tuple, Engine] = {}


def live_engine(small: str | None = None, large: str | None = None, *,
                seed: int | None = 0, prompt: str | None = None) -> Engine:
    """The Engine `solve` uses for prompts outside the bundled bank: in-process vLLM over the
    pulled models (small and large when both are pulled, else the one that is; tiny last),
    built once per process and argument set. Prices: `tts.budgets.default_cost`.

    Raises:
        TTSError: no model is pulled, or vLLM is not installed; the message says what to run.
    """
    from tts import models

    about = f"{prompt[:60]!r} is not one of the bundled bank's questions, so " if prompt else ""
    if small is None and large is None:
        pulled = [n for n in ("small", "large", "tiny") if models.is_pulled(n)]
        if not pulled:
            raise TTSError(
                f"{about}tts.solve needs a live model, and none is pulled into "
                f"{models.models_dir()}. In Python: `import tts.models; "
                f"tts.models.pull(\"small\"); tts.models.pull(\"large\")` (needs vLLM: run "
                f"`bash scripts/install_cpu.sh` in the tts repository first, or `bash "
                f"scripts/install_cpu.sh small large` for both steps), or pass your own "
                f"`engine=tts.Engine(tts.backends.openai.OpenAIBackend(url, model=name))`.")
        small = pulled[0]
        large = "large" if small == "small" and "large" in pulled else None
    key = (small, large, seed)
    if key not in _LIVE:
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise TTSError(f"{about}tts.solve needs vLLM to run the pulled models, and it is not "
                           f"importable ({exc}). Install it with `bash scripts/install_cpu.sh` "
                           f"(CPU) or `pip install 'tts-allocator[vllm]'` (GPU).") from None
        from tts.backends.vllm import VLLMBackend

        # KV cache sized from each model's config (tts.backends.cpu), not a fixed share.
        _LIVE[key] = Engine(VLLMBackend(small),
                            VLLMBackend(large) if large else None, seed=seed)
    return _LIVE[key]


__all__ = ["solve", "solve_many", "replay_engine", "live_engine", "Engine", "Budget", "CostModel",
           "Result",
           "Problem", "Plan", "GenRequest", "Completion", "Strategy", "TTSError",
           "ValidationError", "BankError", "BackendError", "BudgetExceeded", "UnknownNameError",
           "BUNDLED_BANK"]
