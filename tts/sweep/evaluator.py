"""One plan on every question of a bank under one budget, for every seed: the per (seed,
question) outcomes (`Cell`), the per-question oracle over them and their summary `SweepRow`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tts.errors import BankError, ValidationError
from tts.measures import accuracy_ci, oracle_pick
from tts.sweep.plans import Entry
from tts.sweep.rows import SweepRow, rounded

if TYPE_CHECKING:
    from tts.bank import SampleBank

__all__ = ["Cell", "Evaluator", "oracle_cell", "summarise"]


@dataclass
class Cell:
    """Per (seed, question) outcomes of one plan at one budget."""

    correct: np.ndarray  # bool [S, Q]
    cost: np.ndarray  # float [S, Q]
    spend: dict[str, np.ndarray]  # model -> float [S, Q]
    escalated: np.ndarray  # bool [S, Q]
    insufficient: np.ndarray  # bool [S, Q]


class Evaluator:
    """Runs one plan on every question of the bank under one budget, for every seed.

    `method="vectorised"` uses `tts.evaluate` (numpy, exact to the replay engine);
    `"solve_many"` drives `Engine.solve_many` once per seed (the code path users run; slower,
    kept as the reference). `"auto"` picks the vectorised path when `tts.evaluate` exists.
    """

    METHODS = ("auto", "vectorised", "solve_many")

    def __init__(self, bank: SampleBank, seeds: Sequence[int], models: Sequence[str],
                 method: str = "auto", *, ladder: Sequence[str] | None = None,
                 count_prompt: bool = False):
        if method not in self.METHODS:
            raise ValidationError(f"`method` must be one of {list(self.METHODS)}, got "
                                  f"{method!r}.", parameter="method", value=method)
        self.bank = bank
        self.ladder = None if ladder is None else tuple(ladder)
        self.count_prompt = count_prompt
        self.seeds = tuple(seeds)
        self.models = tuple(models)
        self.problems = [bank.problems[pid] for pid in bank.problem_ids]
        self.prices = {m: bank.meta.cost.of(m).output for m in self.models}
        self._arrays = None
        if method in ("auto", "vectorised"):
            try:
                from tts.evaluate import BankArrays, evaluate
            except ImportError:
                if method == "vectorised":
                    raise
            else:
                try:
                    self._arrays = BankArrays.from_bank(bank)
                    if self.ladder is not None:
                        self._arrays = self._arrays.with_ladder(self.ladder)
                except BankError:
                    if method == "vectorised":
                        raise
                    # e.g. non-transitive answer equivalence: only the engine is exact there
                self._evaluate = evaluate
        self.auto = method == "auto"
        self.method = "vectorised" if self._arrays is not None else "solve_many"
        self._engines: dict[tuple[int, int], Any] = {}
        self._correct_cache: dict[tuple[str | None, str], bool] = {}

    def run(self, entry: Entry, budget: float) -> Cell:
        if self._arrays is not None:
            try:
                ev = self._evaluate(self._arrays, entry.plan, budget, self.seeds,
                                    count_prompt=self.count_prompt)
            except ValidationError:
                if not self.auto:
                    raise
                # A plan numpy cannot vectorise (a custom Strategy or Policy): the engine can.
                return self._run_engine(entry, budget)
            from tts.evaluate import INSUFFICIENT

            shape = ev.correct.shape
            return Cell(correct=ev.correct.astype(bool), cost=ev.cost.astype(float),
                         spend={m: ev.tokens[m] * self.prices[m] if m in ev.tokens
                                else np.zeros(shape) for m in self.models},
                         escalated=ev.escalated.astype(bool),
                         insufficient=ev.status == INSUFFICIENT)
        return self._run_engine(entry, budget)

    def _engine(self, seed: int, policy: Any = None):
        from tts.backends.replay import ReplayBackend
        from tts.engine import Engine

        key = (seed, id(policy))
        eng = self._engines.get(key)
        if eng is None and self.ladder is not None:
            eng = self._engines[key] = Engine(
                [ReplayBackend(self.bank, m) for m in self.ladder], cost=self.bank.meta.cost,
                seed=seed, count_prompt=self.count_prompt, policy=policy)
        if eng is None:
            small = ReplayBackend(self.bank, self.bank.role_model("small"))
            large_model = self.bank.meta.roles.get("large")
            large = ReplayBackend(self.bank, large_model) if large_model in self.bank.models \
                else None
            eng = self._engines[key] = Engine(small, large, cost=self.bank.meta.cost, seed=seed,
                                              count_prompt=self.count_prompt, policy=policy)
        return eng

    def _run_engine(self, entry: Entry, budget: float) -> Cell:
        from tts.answers import is_correct

        S, Q = len(self.seeds), len(self.problems)
        correct = np.zeros((S, Q), dtype=bool)
        cost = np.zeros((S, Q))
        spend = {m: np.zeros((S, Q)) for m in self.models}
        escalated = np.zeros((S, Q), dtype=bool)
        insufficient = np.zeros((S, Q), dtype=bool)
        for i, seed in enumerate(self.seeds):
            if entry.kind == "policy":
                results = self._engine(seed, entry.plan).solve_many(self.problems, budget)
            else:
                results = self._engine(seed).solve_many(self.problems, budget,
                                                        strategy=entry.plan)
            for j, (problem, r) in enumerate(zip(self.problems, results)):
                key = (r.answer, problem.gold)
                hit = self._correct_cache.get(key)
                if hit is None:
                    hit = self._correct_cache[key] = bool(is_correct(r.answer, problem.gold))
                correct[i, j] = hit
                cost[i, j] = r.cost
                for m, t in r.tokens.items():
                    spend[m][i, j] = t * self.prices[m]
                escalated[i, j] = r.escalated
                insufficient[i, j] = r.status == "insufficient_budget"
        return Cell(correct, cost, spend, escalated, insufficient)


def oracle_cell(cells: Sequence[Cell]) -> Cell:
    """Per (seed, question): the cheapest correct plan, else the cheapest plan."""
    correct = np.stack([c.correct for c in cells])
    pick = oracle_pick(correct, np.stack([c.cost for c in cells]))

    def take(arrs: list[np.ndarray]) -> np.ndarray:
        return np.take_along_axis(np.stack(arrs), pick[None], axis=0)[0]

    return Cell(correct=correct.any(axis=0), cost=take([c.cost for c in cells]),
                spend={m: take([c.spend[m] for c in cells]) for m in cells[0].spend},
                escalated=take([c.escalated for c in cells]),
                insufficient=take([c.insufficient for c in cells]))


def summarise(budget: float, entry: Entry, cell: Cell, boot: tuple[np.ndarray, np.ndarray],
              models: Sequence[str]) -> SweepRow:
    """The SweepRow of `entry` at `budget`: accuracy with its bootstrap CI, spend (mean, p95,
    per model), escalation and insufficient-budget shares."""
    acc, lo, hi = accuracy_ci(cell.correct, boot)
    by_model = {m: (float(cell.spend[m].mean()), float(np.percentile(cell.spend[m], 95)))
                for m in models}
    return rounded(SweepRow(
        budget=budget, strategy=entry.name, kind=entry.kind, available=True, accuracy=acc,
        ci_low=lo, ci_high=hi, spend_mean=float(cell.cost.mean()),
        spend_p95=float(np.percentile(cell.cost, 95)), spend_by_model=by_model,
        escalated=float(cell.escalated.mean()), insufficient=float(cell.insufficient.mean())))

