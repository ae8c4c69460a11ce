"""The budget a caller grants and the ledger that enforces it.

Strategies reserve before they generate (n * max_tokens at the model's price, plus the prompt
when it is counted and not yet paid) and commit what was really used. A reservation that does
not fit is refused, so the spent total can never pass the limit.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from tts.budgets.cost import CostModel
from tts.errors import BackendError, BudgetExceeded, TTSError, ValidationError

MAX_BUDGET = 1e12
"""Larger budgets are rejected as a likely unit mistake (a trillion small-model tokens)."""
MAX_COUNT = 10**12
"""Largest token count the ledger accepts (more would overflow float prices)."""


def _count(value: object, what: str, *, low: int = 0, error: type[TTSError] = ValidationError
           ) -> int:
    """`value` as an int if it is an integer in [low, MAX_COUNT] (bools refused), else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not low <= value <= MAX_COUNT:
        shown = repr(value)
        if len(shown) > 40:
            shown = f"{shown[:20]}... ({len(shown)} characters)"
        raise error(f"{what} must be an integer in [{low}, {MAX_COUNT:.0e}], got "
                    f"{type(value).__name__} {shown}.")
    return int(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """A hard limit on what one prompt may spend."""

    tokens: float
    """Limit in budget units (generated small-model tokens); must be in (0, 1e12]."""
    count_prompt: bool = False
    """Also charge prompt (prefill) tokens, once per prompt per model."""

    def __post_init__(self) -> None:
        tokens = check_budget(self.tokens)
        if type(self.tokens) not in (int, float):  # numpy numbers, Fractions: a plain float
            object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "count_prompt", check_flag("count_prompt", self.count_prompt))

    @classmethod
    def of(cls, budget: Budget | float | int) -> Budget:
        return budget if isinstance(budget, Budget) else cls(tokens=budget)


def check_flag(parameter: str, value: object) -> bool:
    """`value` if it is True or False (numpy's too), else ValidationError: a string such as
    "no" would otherwise count as true."""
    if isinstance(value, bool):
        return value
    import numpy as np

    if isinstance(value, np.bool_):
        return bool(value)
    shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:20]}..."
    raise ValidationError(f"`{parameter}` must be True or False, got {type(value).__name__} "
                          f"{shown}.", parameter=parameter, value=value)


def check_budget(value: object, parameter: str = "budget") -> float:
    """Return `value` as a float if it is a usable budget, else raise ValidationError.

    Any real number type is accepted (int, float, numpy integers and floats); bools, strings,
    NaN, values <= 0 and values above 1e12 (including integers too large for a float) are not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:20]}..."
        raise ValidationError(f"`{parameter}` must be a number of tokens, got "
                              f"{type(value).__name__} {shown}.", parameter=parameter,
                              value=value)
    if isinstance(value, numbers.Integral) and value > MAX_BUDGET:  # no float conversion
        raise ValidationError(f"`{parameter}` must be <= {MAX_BUDGET:.0e} tokens, got an "
                              f"integer of {len(str(int(value)))} digits (check the unit).",
                              parameter=parameter, value=value)
    number = float(value)
    if math.isnan(number):
        raise ValidationError(f"`{parameter}` must be a number, got NaN.", parameter=parameter,
                              value=value)
    if number <= 0:
        raise ValidationError(f"`{parameter}` must be > 0, got {number:g}.", parameter=parameter,
                              value=value)
    if number > MAX_BUDGET:
        raise ValidationError(f"`{parameter}` must be <= {MAX_BUDGET:.0e} tokens, got "
                              f"{number:.3g} (check the unit).", parameter=parameter, value=value)
    return number


@dataclass(frozen=True, slots=True)
class Reservation:
    id: int
    model: str
    n: int
    max_tokens: int
    prompt_key: str | None
    prompt_tokens: int
    """Prompt tokens reserved (0 when prompts are not counted or already paid)."""
    units: float


class Ledger:
    """Mutable account of one prompt's spending against its Budget."""

    def __init__(self, budget: Budget, cost: CostModel):
        self.budget = budget
        self.cost = cost
        self.spent = 0.0
        self.tokens: dict[str, int] = {}
        self._open: dict[int, Reservation] = {}
        self._paid_prompts: set[tuple[str, str]] = set()
        self._next_id = 0

    @property
    def limit(self) -> float:
        return self.budget.tokens

    @property
    def reserved(self) -> float:
        return math.fsum(r.units for r in self._open.values())

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.spent - self.reserved)

    def price(self, model: str, n: int, max_tokens: int, *, prompt_key: str | None = None,
              prompt_tokens: int = 0) -> float:
        """Units a reservation of n samples of up to max_tokens would hold."""
        return self._units(model, n, max_tokens, self._prompt_due(model, prompt_key,
                                                                  prompt_tokens))

    def fits(self, model: str, n: int, max_tokens: int, *, prompt_key: str | None = None,
             prompt_tokens: int = 0) -> bool:
        units = self.price(model, n, max_tokens, prompt_key=prompt_key,
                           prompt_tokens=prompt_tokens)
        return self.spent + self.reserved + units <= self.limit

    def max_samples(self, model: str, max_tokens: int, *, prompt_key: str | None = None,
                    prompt_tokens: int = 0, cap: int | None = None) -> int:
        """Largest n (up to `cap`) whose reservation fits now."""
        max_tokens = _count(max_tokens, "max_tokens", low=1)
        c = self.cost.of(model)
        free = self.limit - self.spent - self.reserved
        free -= self._prompt_due(model, prompt_key, prompt_tokens) * c.prompt
        n = max(0, int(free // (max_tokens * c.output))) if free > 0 else 0
        if cap is not None:
            n = min(n, cap)
        while n > 0 and not self.fits(model, n, max_tokens, prompt_key=prompt_key,
                                      prompt_tokens=prompt_tokens):
            n -= 1  # guards float rounding at the boundary
        return n

    def reserve(self, model: str, n: int, max_tokens: int, *, prompt_key: str | None = None,
                prompt_tokens: int = 0) -> Reservation:
        """Hold units for a generation, or raise BudgetExceeded without holding anything."""
        due = self._prompt_due(model, prompt_key, prompt_tokens)
        units = self._units(model, n, max_tokens, due)
        if self.spent + self.reserved + units > self.limit:
            raise BudgetExceeded(
                f"reserving {n} x {max_tokens} tokens of {model} ({units:.6g} units) would pass "
                f"the budget: {self.spent:.6g} spent + {self.reserved:.6g} reserved of "
                f"{self.limit:.6g}.")
        self._next_id += 1
        r = Reservation(self._next_id, model, n, max_tokens, prompt_key if due else None, due,
                        units)
        self._open[r.id] = r
        return r

    def commit(self, reservation: Reservation, generated: list[int],
               prompt_tokens: int | None = None) -> float:
        """Charge what a reserved generation really used and release the rest.

        `generated` holds the generated token count of each sample; `prompt_tokens` the
        engine's prompt count (charged only if the reservation held the prompt).
        """
        r = self._open.get(reservation.id)
        if r is None:
            raise TTSError(f"reservation {reservation.id} was already committed or never made.")
        # Counts come from a backend: refuse anything but integers within the reservation
        # (a negative, NaN or float count would lower `spent`). A refused commit charges
        # nothing and keeps the reservation's units held.
        generated = list(generated)
        if len(generated) > r.n or any(
                isinstance(t, bool) or not isinstance(t, numbers.Integral)
                or not 0 <= t <= r.max_tokens for t in generated):
            raise BackendError(f"backend returned {len(generated)} samples of {r.model} with "
                               f"token counts {generated!r:.200}, outside the reservation of "
                               f"{r.n} x {r.max_tokens}.")
        generated = [int(t) for t in generated]
        if prompt_tokens is not None:
            prompt_tokens = _count(prompt_tokens, f"prompt tokens counted for {r.model}",
                                   error=BackendError)
        used_prompt = 0
        if r.prompt_tokens:
            used_prompt = r.prompt_tokens if prompt_tokens is None else prompt_tokens
            if used_prompt > r.prompt_tokens:
                raise BackendError(f"backend counted {used_prompt} prompt tokens for {r.model}, "
                                   f"more than the {r.prompt_tokens} it reported before "
                                   f"generating.")
        del self._open[r.id]
        if r.prompt_tokens:
            self._paid_prompts.add((r.model, r.prompt_key))
        c = self.cost.of(r.model)
        units = min(r.units, sum(generated) * c.output + used_prompt * c.prompt)
        self.spent += units
        self.tokens[r.model] = self.tokens.get(r.model, 0) + sum(generated) + used_prompt
        return units

    def cancel(self, reservation: Reservation) -> None:
        self._open.pop(reservation.id, None)

    def _prompt_due(self, model: str, prompt_key: str | None, prompt_tokens: int) -> int:
        prompt_tokens = _count(prompt_tokens, f"prompt_tokens of {model}")
        if not self.budget.count_prompt or prompt_key is None:
            return 0
        if (model, prompt_key) in self._paid_prompts:
            return 0
        if any(r.model == model and r.prompt_key == prompt_key for r in self._open.values()):
            return 0
        return prompt_tokens

    def _units(self, model: str, n: int, max_tokens: int, prompt_tokens: int) -> float:
        _count(n, "n")
        _count(max_tokens, "max_tokens", low=1)
        c = self.cost.of(model)
        return n * max_tokens * c.output + prompt_tokens * c.prompt
