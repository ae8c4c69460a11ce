"""The evaluator's simulated ledger (`Run`: one seed over every problem, the vectorised
counterpart of `tts.budgets.Ledger`) and its result (`Evaluation`).

The ledger's float arithmetic (reserve n * max_tokens * price, shrink a wave to what the
budget pays, commit actual use, pay a prompt once per (model, mode)) is done here in the same
order of float64 operations as `Ledger`, so costs agree to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tts.errors import BankError
from tts.evaluate.arrays import BankArrays, ModeArrays, Prefix

__all__ = ["Evaluation", "Run", "STATUS_NAMES", "ANSWERED", "ABSTAINED", "INSUFFICIENT"]

STATUS_NAMES = ("answered", "abstained", "insufficient_budget")
ANSWERED, ABSTAINED, INSUFFICIENT = 0, 1, 2


# ---- results -----------------------------------------------------------------------------
@dataclass
class Evaluation:
    """Per-(seed, problem) outcomes of one plan at one budget; arrays are (n_seeds, P)."""

    seeds: tuple[int | None, ...]
    problem_ids: list[str]
    budget: float
    correct: np.ndarray
    cost: np.ndarray
    tokens: dict[str, np.ndarray]
    escalated: np.ndarray
    status: np.ndarray
    small_samples: np.ndarray
    difficulty: np.ndarray
    answer_mode: np.ndarray
    """Index into `answer_keys` of the record the answer came from (-1: no answer)."""
    answer_index: np.ndarray
    """Stored sample index of the answer in that record."""
    answer_keys: list[tuple[str, str]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def mean_cost(self) -> float:
        return float(self.cost.mean())

    @property
    def escalation_rate(self) -> float:
        return float(self.escalated.mean())

    def per_seed_accuracy(self) -> np.ndarray:
        return self.correct.mean(1)

    def status_names(self) -> np.ndarray:
        return np.array(STATUS_NAMES, dtype=object)[self.status]

    def answers(self, arrays: BankArrays) -> list[list[str | None]]:
        """Answer strings per seed and problem (None where there is none)."""
        out = []
        for s in range(len(self.seeds)):
            row = []
            for p in range(len(self.problem_ids)):
                k = int(self.answer_mode[s, p])
                if k < 0:
                    row.append(None)
                else:
                    m = arrays.mode(*self.answer_keys[k])
                    row.append(m.answers[p][int(self.answer_index[s, p])])
            out.append(row)
        return out


# ---- the simulated ledger ----------------------------------------------------------------
class Run:
    """State of one seed's run over all problems: the vectorised counterpart of the Ledgers."""

    def __init__(self, arrays: BankArrays, seed: int | None, limit: float, count_prompt: bool):
        p = len(arrays)
        self.a = arrays
        self.seed = seed
        self.limit = limit
        self.count_prompt = count_prompt
        self.spent = np.zeros(p)
        self.held = np.zeros(p)
        self.paid: dict[str, np.ndarray] = {}
        self.tokens: dict[str, np.ndarray] = {}
        # outcome
        self.status = np.full(p, INSUFFICIENT, np.int8)
        self.correct = np.zeros(p, bool)
        self.escalated = np.zeros(p, bool)
        self.small_samples = np.zeros(p, np.int64)
        self.difficulty = np.full(p, np.nan)
        self.answer_mode = np.full(p, -1, np.int64)
        self.answer_index = np.full(p, -1, np.int64)
        self.rung_features: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        """Per ladder rung reached: (rung index, rows, features (P, F), leader correct)."""

    def paid_of(self, model: str, mode: str) -> np.ndarray:
        """Rows whose prompt of (model, mode) is paid (the ledger's `prompt_key` rule)."""
        got = self.paid.get((model, mode))
        if got is None:
            got = self.paid[(model, mode)] = np.zeros(len(self.spent), bool)
        return got

    def due(self, model: str, m: ModeArrays) -> np.ndarray:
        if not self.count_prompt:
            return np.zeros(len(self.spent), np.int64)
        return np.where(self.paid_of(model, m.mode), 0, m.prompt_tokens)

    def require_records(self, rows: np.ndarray, m: ModeArrays) -> None:
        missing = rows & (m.size == 0)
        if missing.any():
            raise self.a.record_error(int(np.flatnonzero(missing)[0]), m.model, m.mode)

    def require_samples(self, rows: np.ndarray, m: ModeArrays, offset: np.ndarray,
                        n: np.ndarray) -> None:
        self.require_records(rows, m)
        beyond = rows & (offset + n > m.size)
        if beyond.any():
            i = int(np.flatnonzero(beyond)[0])
            end = int(offset[i] + n[i])
            raise BankError(
                f"request for samples {int(offset[i])}..{end - 1} of {m.model} ({m.mode}) on "
                f"problem {self.a.problem_ids[i]!r}, but the bank holds {int(m.size[i])}; lower "
                f"the sample count or build a larger bank.")

    def commit(self, rows: np.ndarray, model: str, units: np.ndarray, generated: np.ndarray,
               due: np.ndarray, mode: str) -> None:
        c = self.a.cost.of(model)
        used = np.minimum(units, generated * c.output + due * c.prompt)
        self.spent = np.where(rows, self.spent + used, self.spent)
        tok = self.tokens.get(model)
        if tok is None:
            tok = self.tokens[model] = np.zeros(len(self.spent), np.int64)
        tok += np.where(rows, generated + due, 0)
        paid = self.paid_of(model, mode)
        paid |= rows & (due > 0)

    def affordable(self, model: str, max_tokens: int, due: np.ndarray,
                   cap: np.ndarray) -> np.ndarray:
        """Ledger.max_samples, row by row, with the same float operations."""
        c = self.a.cost.of(model)
        free = (self.limit - self.spent) - self.held
        free = free - due * c.prompt
        per = max_tokens * c.output
        with np.errstate(invalid="ignore"):
            n = np.where(free > 0, np.floor_divide(free, per), 0.0)
        n = np.minimum(np.maximum(n, 0.0), np.asarray(cap, np.float64)).astype(np.int64)
        while True:
            units = (n * max_tokens) * c.output + due * c.prompt
            bad = (n > 0) & ~((self.spent + self.held) + units <= self.limit)
            if not bad.any():
                return n
            n = n - bad

    def fits(self, model: str, n: int, max_tokens: int, due: np.ndarray) -> tuple[np.ndarray,
                                                                                    np.ndarray]:
        c = self.a.cost.of(model)
        units = (n * max_tokens) * c.output + due * c.prompt
        return (self.spent + self.held) + units <= self.limit, units

    def set_answer(self, rows: np.ndarray, key: tuple[str, str], pre: Prefix, k: np.ndarray,
                   keys: list[tuple[str, str]]) -> None:
        idx = np.arange(len(k))
        leader = pre.leader[idx, k]
        if key not in keys:
            keys.append(key)
        has = rows & (leader >= 0)
        self.answer_mode = np.where(has, keys.index(key), np.where(rows, -1, self.answer_mode))
        self.answer_index = np.where(has, leader, np.where(rows, -1, self.answer_index))
        self.correct = np.where(rows, pre.leader_correct[idx, k], self.correct)
