"""Vectorised evaluation of strategies and policies over a whole bank, exact to the replay engine.

Running `Engine.solve_many` on a replay bank costs about a millisecond per problem; a sweep or an
Optuna study needs thousands of such runs. This module computes the same Results with numpy:

    arrays = BankArrays.from_bank(bank)                  # once per bank (answer classes, tokens)
    ev = evaluate(arrays, Vote(max_samples=8), 2_000, seeds=range(5))
    ev.accuracy, ev.mean_cost, ev.correct[seed_index, problem_index]

API (stable; `tts.sweep` and `tts.tune` rely on it):

* `BankArrays.from_bank(bank, problem_ids=None)`: per (model, mode), answer-class ids of every
  stored sample (-1 = abstain), per-sample correctness vs gold, tokens, prompt tokens.
  `.subset(indices)` is a cheap view for train / held-out splits (it shares the caches);
  `.problem_ids`, `.models` (roles -> model names), `.cost`.
* `evaluate(arrays, plan, budget, seeds=(0,), *, count_prompt=False) -> Evaluation`.
  `plan` is a Strategy (Vote, Escalate, Cascade, Chain, Adaptive: every option) or a Policy
  (`tts.policy.ParamPolicy` is vectorised; any other Policy is asked `decide` per problem and
  its strategies are evaluated group by group). `budget` is a number or a `Budget`; as in the
  Engine, `count_prompt` or `Budget.count_prompt` charges prompt tokens.
* `Evaluation`: arrays of shape (len(seeds), n_problems): `correct`, `cost` (budget units),
  `tokens[model]` (generated + charged prompt tokens), `escalated`, `status` (codes into
  `STATUS_NAMES`), `small_samples`, `difficulty` (nan where none); summaries `accuracy`,
  `mean_cost`, `escalation_rate`, `per_seed_accuracy()`; `answers(arrays)` rebuilds the
  answer strings.

Exactness: sample i of seed s is `tts.bank.sample_order(...)[i]`, as replay serves it; long
samples are truncated to `max_tokens` and abstain; the ledger's float arithmetic (reserve
n * max_tokens * price, shrink a wave to what the budget pays, commit actual use) is done in the
same order of float64 operations, so costs agree to the bit. Vote ties go to the class seen
first in draw order, and the answer string is that first-drawn member, as in `count_votes`.
Errors agree too: a draw beyond a record or from a missing mode (e.g. Chain on a bank without
"chain" samples) raises the same BankError; a missing large model the same ValidationError.
`tests/test_evaluate.py` checks all of this against `solve_many` with hypothesis.

One assumption is checked, not trusted: within a problem, answer equivalence must partition the
answers (transitive), so classes do not depend on draw order; a bank where it does not is
refused with a BankError naming the problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from tts.answers import Votes, _keys_equivalent, canonical, class_ids, is_correct
from tts.bank import Record, SampleBank, sample_order
from tts.budgets import Budget, CostModel
from tts.errors import BankError, ValidationError
from tts.signals import CLIMB_FEATURES, climb_logit, climbs
from tts.strategies import (Adaptive, Cascade, Chain, Escalate, Ladder, Strategy, Vote,
                            leader_confidence)
from tts.strategies.adaptive import logit
from tts.types import Problem, Role, ladder_roles

__all__ = ["BankArrays", "ModeArrays", "Prefix", "Evaluation", "evaluate", "tile_bank",
           "STATUS_NAMES", "ANSWERED", "ABSTAINED", "INSUFFICIENT"]

STATUS_NAMES = ("answered", "abstained", "insufficient_budget")
ANSWERED, ABSTAINED, INSUFFICIENT = 0, 1, 2


# ---- precomputed bank arrays -------------------------------------------------------------
@dataclass(frozen=True)
class ModeArrays:
    """All stored samples of one (model, mode), padded to the longest record."""

    model: str
    mode: str
    size: np.ndarray
    """(P,) samples stored per problem; 0 where the problem has no record."""
    cls: np.ndarray
    """(P, S) answer-class id of each stored sample, -1 for no answer or padding."""
    tokens: np.ndarray
    """(P, S) generated tokens of each stored sample."""
    correct: np.ndarray
    """(P, S) whether each stored sample's answer matches the gold answer."""
    prompt_tokens: np.ndarray
    """(P,) prompt tokens of the record (0 where there is none)."""
    answers: tuple[tuple[str | None, ...], ...]
    n_classes: int

    @property
    def width(self) -> int:
        return self.cls.shape[1]

    def rows(self, idx: np.ndarray) -> ModeArrays:
        return ModeArrays(self.model, self.mode, self.size[idx], self.cls[idx], self.tokens[idx],
                          self.correct[idx], self.prompt_tokens[idx],
                          tuple(self.answers[i] for i in idx), self.n_classes)


@dataclass(frozen=True)
class Prefix:
    """Vote statistics after the first k draws (k = 0..S) of one seeded stream.

    Every array is (P, S + 1) and indexed [problem, k]; `order` is (P, S).
    """

    order: np.ndarray
    """Stored sample index at each draw position (-1 past the record)."""
    cum_tokens: np.ndarray
    """Generated tokens of the first k draws (truncated at max_tokens)."""
    top: np.ndarray
    runner_up: np.ndarray
    total: np.ndarray
    distinct: np.ndarray
    agreement: np.ndarray
    entropy: np.ndarray
    confidence: np.ndarray
    """leader_confidence(top, runner_up)."""
    leader: np.ndarray
    """Stored index of the leader's first-drawn member (-1 when nobody answered)."""
    leader_correct: np.ndarray

    def rows(self, idx: np.ndarray) -> Prefix:
        return Prefix(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


class BankArrays:
    """Numpy view of a SampleBank for `evaluate`; build once with `from_bank`."""

    def __init__(self, bank: SampleBank, problem_ids: Sequence[str], modes: dict,
                 models: dict[Role, str], _root: BankArrays | None = None,
                 _rows: np.ndarray | None = None):
        self.bank = bank
        self.problem_ids = list(problem_ids)
        self.questions = [bank.problems[p].question for p in self.problem_ids]
        self.gold = [bank.problems[p].gold for p in self.problem_ids]
        self.modes: dict[tuple[str, str], ModeArrays] = modes
        self.models = models
        self.cost: CostModel = bank.meta.cost
        self._root = _root
        self._rows = _rows
        self._prefix: dict[tuple, Prefix] = {}
        self.cache: dict[Any, Any] = {}
        """Free-form per-arrays cache (e.g. prompt features keyed by estimator)."""

    def __len__(self) -> int:
        return len(self.problem_ids)

    def __repr__(self) -> str:
        return (f"BankArrays({self.bank.meta.name!r}, {len(self)} problems, "
                f"modes={sorted(self.modes)})")

    @classmethod
    def from_bank(cls, bank: SampleBank, problem_ids: Iterable[str] | None = None, *,
                  ladder: Sequence[str] | None = None) -> BankArrays:
        """Arrays of `bank`; `ladder` (model names, cheapest first) sets the roles, by
        default the bank's small and large models."""
        pids = list(bank.problem_ids if problem_ids is None else problem_ids)
        if not pids:
            raise BankError(f"bank {bank.meta.name!r} has no problems to evaluate.")
        for pid in pids:
            if pid not in bank.problems:
                raise BankError(f"problem {pid!r} is not in bank {bank.meta.name!r}.")
        keys = sorted({(m, md) for (_, m, md) in bank.records})
        classes = _problem_classes(bank, pids, keys)
        modes = {key: _mode_arrays(bank, pids, *key, classes) for key in keys}
        models: dict[Role, str] = {"small": bank.role_model("small")}
        large = bank.meta.roles.get("large")
        if large is not None and large in bank.models:
            models["large"] = large
        arrays = cls(bank, pids, modes, models)
        return arrays if ladder is None else arrays.with_ladder(ladder)

    def with_ladder(self, ladder: Sequence[str]) -> BankArrays:
        """The same arrays with roles from `ladder` (model names, cheapest first); a model
        the bank lacks, a duplicate or prices out of order are clear errors."""
        from tts.engine import check_ladder

        ladder = list(ladder)
        missing = [m for m in ladder if m not in self.bank.models]
        if missing:
            raise BankError(f"bank {self.bank.meta.name!r} has no samples of model "
                            f"{missing[0]!r} that the ladder {ladder} needs; it has "
                            f"{self.bank.models}.")
        check_ladder(ladder, self.cost)
        out = BankArrays(self.bank, self.problem_ids, self.modes, dict(zip(
            ladder_roles(len(ladder)), ladder)), _root=self._root, _rows=self._rows)
        out._prefix, out.cache = self._prefix, self.cache
        return out

    @property
    def root(self) -> BankArrays:
        return self if self._root is None else self._root

    def subset(self, indices: Sequence[int] | np.ndarray) -> BankArrays:
        """The arrays of problems `indices` (positions in `problem_ids`); shares caches."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or not len(idx):
            raise ValidationError("a subset needs at least one problem index.",
                                  parameter="indices")
        if idx.min() < 0 or idx.max() >= len(self):
            raise ValidationError(f"subset indices must be in [0, {len(self)}), got "
                                  f"{idx.min()}..{idx.max()}.", parameter="indices")
        root_rows = idx if self._rows is None else self._rows[idx]
        modes = {k: m.rows(idx) for k, m in self.modes.items()}
        return BankArrays(self.bank, [self.problem_ids[i] for i in idx], modes, self.models,
                          _root=self.root, _rows=root_rows)

    def mode(self, model: str, mode: str) -> ModeArrays:
        """Arrays of (model, mode); an empty record set when the bank has none."""
        m = self.modes.get((model, mode))
        if m is None:
            p = len(self)
            m = ModeArrays(model, mode, np.zeros(p, np.int64), np.full((p, 1), -1, np.int32),
                           np.zeros((p, 1), np.int64), np.zeros((p, 1), bool),
                           np.zeros(p, np.int64), tuple(() for _ in range(p)), 0)
            self.modes[(model, mode)] = m
        return m

    def prefix(self, model: str, mode: str, seed: int | None, max_tokens: int) -> Prefix:
        """Vote statistics of the seeded stream of (model, mode), truncated at max_tokens."""
        m = self.mode(model, mode)
        cap = int(min(max_tokens, int(m.tokens.max(initial=0))))
        key = (model, mode, seed, cap)
        got = self._prefix.get(key)
        if got is None:
            if self._root is not None:
                got = self._root.prefix(model, mode, seed, max_tokens).rows(self._rows)
            else:
                got = _build_prefix(m, self.problem_ids, seed, cap)
            self._prefix[key] = got
        return got

    def record_error(self, row: int, model: str, mode: str) -> BankError:
        """The BankError replay raises for a problem without (model, mode) samples."""
        try:
            self.bank.record(self.problem_ids[row], model, mode)
        except BankError as exc:
            return exc
        return BankError(f"no {mode!r} samples of {model} for problem "
                         f"{self.problem_ids[row]!r}.")


def _problem_classes(bank: SampleBank, pids: list[str],
                     keys: Sequence[tuple[str, str]]) -> list[dict[str, int]]:
    """Per problem, answer -> class id over every record of every model and mode, so votes of
    different tiers and representations can be compared by class id."""
    out = []
    for pid in pids:
        answers: list[str] = []
        for model, mode in keys:
            rec = bank.records.get((pid, model, mode))
            if rec is not None:
                answers.extend(s.answer for s in rec.samples if s.answer is not None)
        distinct = list(dict.fromkeys(answers))
        ids = class_ids(distinct)
        _check_partition(bank, pid, "all models", "all modes", distinct, ids)
        out.append(dict(zip(distinct, ids)))
    return out


def _mode_arrays(bank: SampleBank, pids: list[str], model: str, mode: str,
                 classes: list[dict[str, int]]) -> ModeArrays:
    recs: list[Record | None] = [bank.records.get((pid, model, mode)) for pid in pids]
    width = max((len(r.samples) for r in recs if r is not None), default=1)
    p = len(pids)
    size = np.zeros(p, np.int64)
    cls = np.full((p, width), -1, np.int32)
    tokens = np.zeros((p, width), np.int64)
    correct = np.zeros((p, width), bool)
    prompt = np.zeros(p, np.int64)
    answers: list[tuple[str | None, ...]] = []
    n_classes = 0
    for i, (pid, rec) in enumerate(zip(pids, recs)):
        if rec is None:
            answers.append(())
            continue
        ans = tuple(s.answer for s in rec.samples)
        ids = [-1 if a is None else classes[i][a] for a in ans]
        n = len(ans)
        size[i] = n
        cls[i, :n] = ids
        tokens[i, :n] = [s.tokens for s in rec.samples]
        gold = bank.problems[pid].gold
        verdict: dict[str, bool] = {}
        for j, a in enumerate(ans):
            if a is not None:
                if a not in verdict:
                    verdict[a] = is_correct(a, gold)
                correct[i, j] = verdict[a]
        prompt[i] = rec.prompt_tokens
        answers.append(ans)
        n_classes = max(n_classes, max(ids, default=-1) + 1)
    return ModeArrays(model, mode, size, cls, tokens, correct, prompt, tuple(answers), n_classes)


def _check_partition(bank: SampleBank, pid: str, model: str, mode: str,
                     answers: Sequence[str | None], ids: Sequence[int]) -> None:
    """Refuse answer sets whose equivalence is not transitive (classes would depend on order)."""
    keys: dict[str, int] = {}
    for a, c in zip(answers, ids):
        if a is not None:
            keys.setdefault(canonical(a), c)
    if len(keys) < 2:
        return
    items = list(keys.items())
    for i, (ka, ca) in enumerate(items):
        for kb, cb in items[i + 1:]:
            if _keys_equivalent(ka, kb) != (ca == cb):
                raise BankError(
                    f"answers {ka!r} and {kb!r} of {model} ({mode}) on problem {pid!r} are "
                    f"{'equivalent' if ca != cb else 'not equivalent'} but fall in "
                    f"{'different' if ca != cb else 'one'} class(es): answer equivalence is not "
                    f"transitive here, so vote classes depend on draw order and the vectorised "
                    f"evaluation cannot be exact. Evaluate this bank with Engine.solve_many.")


_ENTROPY_CACHE: dict[tuple[int, ...], float] = {}


def _entropy(counts: tuple[int, ...]) -> float:
    """Votes.entropy of a tally (computed by Votes itself, so the floats are identical)."""
    e = _ENTROPY_CACHE.get(counts)
    if e is None:
        e = Votes(counts=tuple((str(i), c) for i, c in enumerate(counts) if c)).entropy
        _ENTROPY_CACHE[counts] = e
    return e


def _conf_table(n: int) -> np.ndarray:
    return np.array([[leader_confidence(t, r) for r in range(n + 1)] for t in range(n + 1)])


def _build_prefix(m: ModeArrays, pids: Sequence[str], seed: int | None,
                  max_tokens: int) -> Prefix:
    p, s = m.cls.shape
    order = np.full((p, s), -1, np.int64)
    for i, pid in enumerate(pids):
        n = int(m.size[i])
        if n:
            order[i, :n] = sample_order(pid, m.model, m.mode, seed, n)
    valid = order >= 0
    oc = np.where(valid, order, 0)
    cls = np.take_along_axis(m.cls, oc, 1)
    tok = np.take_along_axis(m.tokens, oc, 1)
    cls = np.where(valid & (tok <= max_tokens), cls, -1)
    tok = np.where(valid, np.minimum(tok, max_tokens), 0)
    cum = np.zeros((p, s + 1), np.int64)
    cum[:, 1:] = np.cumsum(tok, 1)
    k_cls = max(m.n_classes, 1)
    onehot = cls[:, :, None] == np.arange(k_cls)[None, None, :]
    counts = np.zeros((p, s + 1, k_cls), np.int32)
    counts[:, 1:] = np.cumsum(onehot, 1, dtype=np.int32)
    first = np.where(onehot, np.arange(s)[None, :, None], s).min(1)  # (P, K) first draw
    top = counts.max(2)
    cand = (counts == top[:, :, None]) & (top[:, :, None] > 0)
    lead_cls = np.argmin(np.where(cand, first[:, None, :], s + 1), axis=2)
    lead_pos = np.take_along_axis(first, lead_cls, 1)
    has = top > 0
    lead_idx = np.where(has, np.take_along_axis(order, np.minimum(lead_pos, s - 1), 1), -1)
    lead_ok = has & np.take_along_axis(m.correct, np.maximum(lead_idx, 0), 1)
    srt = np.sort(counts, 2)
    runner = srt[:, :, -2] if k_cls >= 2 else np.zeros_like(top)
    total = counts.sum(2)
    distinct = (counts > 0).sum(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(total > 0, top / np.maximum(total, 1), 0.0)
    desc = np.ascontiguousarray(srt[:, :, ::-1].reshape(-1, k_cls))
    uniq, inverse = np.unique(desc, axis=0, return_inverse=True)
    ent_u = np.array([_entropy(tuple(int(c) for c in row)) for row in uniq])
    entropy = ent_u[inverse.reshape(-1)].reshape(p, s + 1)
    conf = _conf_table(s)[top, runner]
    return Prefix(order, cum, top, runner, total, distinct, agreement, entropy, conf, lead_idx,
                  lead_ok)


def tile_bank(bank: SampleBank, n_problems: int) -> SampleBank:
    """A bank of `n_problems` problems that repeats `bank`'s under new ids ("<id>#<copy>").

    For speed benchmarks: each copy gets its own sample orders, like fresh questions would.
    """
    if n_problems < 1:
        raise ValidationError(f"`n_problems` must be >= 1, got {n_problems}.",
                              parameter="n_problems", value=n_problems)
    out = SampleBank(bank.meta, path=bank.path)
    pids = bank.problem_ids
    by_pid: dict[str, list[Record]] = {}
    for (pid, _, _), rec in bank.records.items():
        by_pid.setdefault(pid, []).append(rec)
    for i in range(n_problems):
        src = pids[i % len(pids)]
        new = src if i < len(pids) else f"{src}#{i // len(pids)}"
        prob = bank.problems[src]
        out.problems[new] = Problem(prob.question, id=new, gold=prob.gold)
        for rec in by_pid.get(src, []):
            out.add_record(Record(new, rec.model, rec.mode, rec.prompt_tokens, rec.samples))
    return out


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
                    m = arrays.modes[self.answer_keys[k]]
                    row.append(m.answers[p][int(self.answer_index[s, p])])
            out.append(row)
        return out


# ---- the simulated ledger ----------------------------------------------------------------
class _Run:
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


@dataclass
class _SmallOut:
    k: np.ndarray
    insufficient: np.ndarray
    escalate_now: np.ndarray
    z: np.ndarray
    pre: Prefix
    key: tuple[str, str]

    def answered(self) -> np.ndarray:
        return ~self.insufficient & (self.pre.total[np.arange(len(self.k)), self.k] > 0)


def _vote_phase(run: _Run, rows: np.ndarray, *, model: str, max_samples: int, probe: int,
                wave: int, max_tokens: int, temperature: float, confidence: float,
                weights: tuple[float, ...] | None = None, prior: np.ndarray | float = 0.0,
                early: float = math.inf, mode: str | None = None) -> _SmallOut:
    """Draw waves of samples until max_samples, the budget, the stop test or early escalation."""
    greedy = temperature == 0
    mode = mode if mode is not None else "greedy" if greedy else "sample"
    m = run.a.mode(model, mode)
    pre = run.a.prefix(model, mode, None if greedy else run.seed, max_tokens)
    p = len(rows)
    idx = np.arange(p)
    k = np.zeros(p, np.int64)
    insufficient = np.zeros(p, bool)
    escalate_now = np.zeros(p, bool)
    z = np.full(p, np.nan)
    active = rows.copy()
    while active.any():
        want = np.minimum(np.where(k == 0, probe, wave), max_samples - k)
        if greedy and (active & (want > 1)).any():
            w = int(want[active & (want > 1)][0])
            raise ValidationError(f"`n` must be 1 for greedy sampling (temperature 0), got {w}.",
                                  parameter="n", value=w)
        if run.count_prompt:
            run.require_records(active, m)
        due = run.due(model, m)
        n = np.where(active, run.affordable(model, max_tokens, due, want), 0)
        stopped = active & (n == 0)
        insufficient |= stopped & (k == 0)
        active = active & ~stopped
        if not active.any():
            break
        run.require_samples(active, m, k, n)
        units = (n * max_tokens) * run.a.cost.of(model).output + due * run.a.cost.of(model).prompt
        generated = pre.cum_tokens[idx, np.minimum(k + n, m.width)] - pre.cum_tokens[idx, k]
        run.commit(active, model, units, generated, due, mode)
        k = np.where(active, k + n, k)
        kk = np.minimum(k, m.width)
        if weights is not None:
            ks = np.maximum(k, 1)
            zz = np.full(p, weights[0])
            feats = (pre.agreement[idx, kk], pre.entropy[idx, kk], (k - pre.total[idx, kk]) / ks,
                     pre.distinct[idx, kk] / ks, 1 / ks, np.broadcast_to(prior, (p,)))
            for w, f in zip(weights[1:], feats):
                zz = zz + w * f
            z = np.where(active, zz, z)
            now = active & (zz >= early)
            escalate_now |= now
            active = active & ~now
        if confidence < 1.0:
            safe = (pre.total[idx, kk] > 0) & (pre.confidence[idx, kk] >= confidence)
            active = active & ~safe
        active = active & (k < max_samples)
    return _SmallOut(np.minimum(k, m.width), insufficient, escalate_now, z, pre, (model, mode))


def _apply_small(run: _Run, rows: np.ndarray, out: _SmallOut, keys: list) -> None:
    answered = out.answered()
    run.status = np.where(rows, np.where(out.insufficient, INSUFFICIENT,
                                         np.where(answered, ANSWERED, ABSTAINED)), run.status)
    run.set_answer(rows & ~out.insufficient, out.key, out.pre, out.k, keys)
    run.correct = np.where(rows & out.insufficient, False, run.correct)
    run.answer_mode = np.where(rows & out.insufficient, -1, run.answer_mode)
    run.small_samples = np.where(rows, out.k, run.small_samples)


def _large_request(samples: int, temperature: float) -> tuple[str, bool]:
    greedy = samples == 1
    if not greedy and temperature == 0:
        raise ValidationError(f"`n` must be 1 for greedy sampling (temperature 0), got "
                              f"{samples}.", parameter="n", value=samples)
    return ("greedy" if greedy else "sample"), greedy


def _large_price(run: _Run, rows: np.ndarray, samples: int, max_tokens: int,
                 temperature: float):
    """The large call's (model, mode, greedy, mode arrays, prompt due, fits, units) per row."""
    model = run.a.models["large"]
    mode, greedy = _large_request(samples, temperature)
    m = run.a.mode(model, mode)
    if run.count_prompt:
        run.require_records(rows, m)
    due = run.due(model, m)
    fits, units = run.fits(model, samples, max_tokens, due)
    return model, mode, greedy, m, due, fits, units


def _large_phase(run: _Run, rows: np.ndarray, *, samples: int, max_tokens: int,
                 temperature: float, keys: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One large-model call per row (escalate_steps); returns (insufficient, answered, rows)."""
    model, mode, greedy, m, due, fits, units = _large_price(run, rows, samples, max_tokens,
                                                          temperature)
    go = rows & fits
    run.require_samples(go, m, np.zeros(len(rows), np.int64), np.full(len(rows), samples))
    if not go.any():
        return rows & ~fits, np.zeros(len(rows), bool), go
    pre = run.a.prefix(model, mode, None if greedy else run.seed, max_tokens)
    k = np.full(len(rows), min(samples, m.width))
    run.commit(go, model, units, pre.cum_tokens[:, k[0]], due, mode)
    answered = go & (pre.total[:, k[0]] > 0)
    run.status = np.where(go, np.where(answered, ANSWERED, ABSTAINED), run.status)
    run.set_answer(go, (model, mode), pre, k, keys)
    run.escalated = run.escalated | go
    return rows & ~fits, answered, go


def _hold_large(run: _Run, rows: np.ndarray, samples: int, max_tokens: int,
                temperature: float) -> None:
    """Cascade's keep_for_large: reserve the large call's price before voting."""
    *_, fits, units = _large_price(run, rows, samples, max_tokens, temperature)
    run.held = np.where(rows & fits, units, 0.0)


def _cascade_like(run: _Run, rows: np.ndarray, keys: list, *, vote: dict, keep_small,
                  large: dict | None, keep_for_large: bool) -> None:
    if large is not None and keep_for_large:
        _hold_large(run, rows, large["samples"], large["max_tokens"], large["temperature"])
    out = _vote_phase(run, rows, model=run.a.models["small"], **vote)
    run.held = np.zeros(len(rows))
    _apply_small(run, rows, out, keys)
    if out.z is not None:
        run.difficulty = np.where(rows & ~np.isnan(out.z), _sigmoid(out.z), run.difficulty)
    if large is None:
        return
    small_answered = rows & out.answered()
    esc = rows & ~(small_answered & keep_small(out))
    if not esc.any():
        return
    # Snapshot the small outcome; the large call overwrites the rows it answers.
    saved = (run.status.copy(), run.correct.copy(), run.answer_mode.copy(),
             run.answer_index.copy())
    insufficient, answered, went = _large_phase(run, esc, keys=keys, **large)
    # Large model unaffordable: keep the small outcome (not escalated).
    # Large model abstained but the small vote answered: small answer, escalated.
    fallback = went & ~answered & small_answered
    restore = fallback | insufficient
    run.status = np.where(restore, saved[0], run.status)
    run.correct = np.where(restore, saved[1], run.correct)
    run.answer_mode = np.where(restore, saved[2], run.answer_mode)
    run.answer_index = np.where(restore, saved[3], run.answer_index)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _run_strategy(run: _Run, rows: np.ndarray, strategy: Strategy, keys: list,
                  prior: np.ndarray | None = None) -> None:
    if isinstance(strategy, Vote):
        out = _vote_phase(run, rows, model=run.a.models[strategy.role],
                          max_samples=strategy.max_samples, probe=strategy.wave,
                          wave=strategy.wave, max_tokens=strategy.max_tokens,
                          temperature=strategy.temperature, confidence=strategy.confidence,
                          mode=strategy.mode)
        _apply_small(run, rows, out, keys)
    elif isinstance(strategy, Ladder):
        _ladder(run, rows, strategy, keys, prior)
    elif isinstance(strategy, Escalate):
        _large_phase(run, rows, samples=strategy.samples, max_tokens=strategy.max_tokens,
                     temperature=strategy.temperature, keys=keys)
    elif isinstance(strategy, Cascade):
        vote = dict(max_samples=strategy.max_samples, probe=strategy.wave, wave=strategy.wave,
                    max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                    confidence=strategy.confidence)
        below = strategy.escalate_below
        _cascade_like(run, rows, keys, vote=vote,
                      keep_small=lambda out: out.pre.agreement[np.arange(len(out.k)), out.k]
                      >= below,
                      large=dict(samples=strategy.large_samples,
                                 max_tokens=strategy.large_max_tokens,
                                 temperature=strategy.temperature),
                      keep_for_large=strategy.keep_for_large)
    elif isinstance(strategy, Adaptive):
        vote = dict(max_samples=strategy.max_samples, probe=strategy.probe, wave=strategy.wave,
                    max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                    confidence=strategy.confidence, weights=strategy.weights,
                    prior=strategy.prior if prior is None else prior,
                    early=logit(strategy.escalate_early_above) if strategy.large else math.inf)
        final = logit(strategy.escalate_above)
        large = None
        if strategy.large:
            large = dict(samples=strategy.large_samples, max_tokens=strategy.large_max_tokens,
                         temperature=strategy.temperature)
        _cascade_like(run, rows, keys, vote=vote,
                      keep_small=lambda out: ~out.escalate_now & (out.z < final),
                      large=large, keep_for_large=strategy.keep_for_large)
    elif isinstance(strategy, Chain):
        _chain(run, rows, strategy, keys)
    else:
        raise ValidationError(f"evaluate cannot vectorise strategy {type(strategy).__name__}; "
                              f"it supports Vote, Escalate, Cascade, Chain and Adaptive.",
                              parameter="plan")


def _ladder(run: _Run, rows: np.ndarray, strategy: Ladder, keys: list,
            prior: np.ndarray | None) -> None:
    """`Ladder.steps` for all rows: vote, check, score and climb, rung by rung."""
    p = len(rows)
    idx = np.arange(p)
    prior_arr = np.broadcast_to(strategy.prior if prior is None else prior, (p,))
    active = rows.copy()
    have = np.zeros(p, bool)
    lower_cls = np.full(p, -1, np.int64)
    last = len(strategy.rungs) - 1
    for i, rung in enumerate(strategy.rungs):
        if not active.any():
            break
        model = run.a.models[rung.role]
        out = _vote_phase(run, active, model=model, max_samples=rung.max_samples,
                          probe=rung.wave, wave=rung.wave, max_tokens=rung.max_tokens,
                          temperature=rung.temperature, confidence=rung.confidence,
                          mode=rung.mode)
        k = out.k
        answered = out.answered()
        if i == 0:
            run.small_samples = np.where(active, k, run.small_samples)
        first_none = active & out.insufficient & ~have
        run.status = np.where(first_none, INSUFFICIENT, run.status)
        run.correct = np.where(first_none, False, run.correct)
        run.answer_mode = np.where(first_none, -1, run.answer_mode)
        run.escalated = run.escalated | (active & ~out.insufficient & have & ~answered)
        ok = active & ~out.insufficient & ~(have & ~answered)
        run.status = np.where(ok, np.where(answered, ANSWERED, ABSTAINED), run.status)
        run.set_answer(ok, out.key, out.pre, k, keys)
        run.escalated = np.where(ok, i > 0, run.escalated)
        m = run.a.mode(model, out.key[1])
        lead = out.pre.leader[idx, k]
        lead_cls = np.where(lead >= 0, m.cls[idx, np.maximum(lead, 0)], -1)
        same = have & (lead_cls >= 0) & (lead_cls == lower_cls)
        have = have | ok
        lower_cls = np.where(ok, lead_cls, lower_cls)
        if i == last:
            break
        agree = np.zeros(p, np.int64)
        drawn = np.zeros(p, np.int64)
        if rung.check_samples:
            agree, drawn = _check(run, ok & answered, model, rung, lead_cls)
        ks = np.maximum(k, 1)
        kk = np.minimum(k, m.width)
        pre = out.pre
        with np.errstate(invalid="ignore", divide="ignore"):
            check_share = np.where(drawn > 0, agree / np.maximum(drawn, 1), 0.0)
        feats = (pre.agreement[idx, kk], pre.entropy[idx, kk], (k - pre.total[idx, kk]) / ks,
                 pre.distinct[idx, kk] / ks, 1 / ks, check_share, np.where(same, 1.0, 0.0),
                 prior_arr)
        assert len(feats) == len(CLIMB_FEATURES)
        z = climb_logit(rung.weights, feats)
        run.rung_features.append((i, ok.copy(), np.stack(feats, 1),
                                  out.pre.leader_correct[idx, kk] & answered))
        active = ok & climbs(answered, pre.agreement[idx, kk], z, rung.climb_below,
                             rung.climb_above)


def _check(run: _Run, rows: np.ndarray, model: str, rung: Any,
           lead_cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A rung's check call (all or nothing): (answers equal to the leader, samples drawn)."""
    p = len(rows)
    n = rung.check_samples
    cm = run.a.mode(model, rung.check_mode)
    if run.count_prompt:
        run.require_records(rows, cm)
    due = run.due(model, cm)
    fits, units = run.fits(model, n, rung.max_tokens, due)
    go = rows & fits
    run.require_samples(go, cm, np.zeros(p, np.int64), np.full(p, n))
    if not go.any():
        return np.zeros(p, np.int64), np.zeros(p, np.int64)
    pre = run.a.prefix(model, rung.check_mode, run.seed, rung.max_tokens)
    kc = min(n, cm.width)
    run.commit(go, model, units, pre.cum_tokens[:, kc], due, rung.check_mode)
    order = pre.order[:, :kc]
    valid = order >= 0
    oc = np.where(valid, order, 0)
    cls = np.take_along_axis(cm.cls, oc, 1)
    tok = np.take_along_axis(cm.tokens, oc, 1)
    cls = np.where(valid & (tok <= rung.max_tokens), cls, -1)
    agree = ((cls == lead_cls[:, None]) & (lead_cls[:, None] >= 0)).sum(1)
    return np.where(go, agree, 0), np.where(go, n, 0)


def _chain(run: _Run, rows: np.ndarray, strategy: Chain, keys: list) -> None:
    model = run.a.models[strategy.role]
    m = run.a.mode(model, strategy.mode)
    c = run.a.cost.of(model)
    if run.count_prompt:
        run.require_records(rows, m)
        prompt_units = m.prompt_tokens * c.prompt
    else:
        prompt_units = np.zeros(len(rows))
    if (strategy.answer_tokens or strategy.max_waits) and _has_texts(run.a, model, strategy.mode):
        raise ValidationError("evaluate cannot vectorise Chain budget forcing (answer_tokens, "
                              "max_waits) on a bank that stores chain texts: forcing depends on "
                              "the text; use Engine.solve_many.", parameter="plan")
    remaining = np.maximum(0.0, (run.limit - run.spent) - run.held)
    held = strategy.answer_tokens * c.output  # kept back for a forced final answer
    with np.errstate(invalid="ignore"):
        length = np.minimum(strategy.max_tokens, np.floor_divide(
            (remaining - prompt_units) - held, c.output)).astype(np.int64)
    ok = rows & (length >= strategy.min_tokens)
    due = run.due(model, m)
    units = length * c.output + due * c.prompt
    fits = (run.spent + run.held) + units <= run.limit
    go = ok & fits
    run.require_samples(go, m, np.zeros(len(rows), np.int64), np.ones(len(rows), np.int64))
    if not go.any():
        return
    idx = np.arange(len(rows))
    seed = run.seed
    # Each row has its own length cap: read its first chain sample directly.
    order0 = np.zeros(len(rows), np.int64)
    for i in np.flatnonzero(go):
        order0[i] = sample_order(run.a.problem_ids[i], model, strategy.mode, seed, int(m.size[i]))[0]
    tok = m.tokens[idx, order0]
    cls = m.cls[idx, order0]
    truncated = tok > length
    generated = np.minimum(tok, length)
    run.commit(go, model, units, generated, due, strategy.mode)
    answered = go & ~truncated & (cls >= 0)
    run.status = np.where(go, np.where(answered, ANSWERED, ABSTAINED), run.status)
    key = (model, strategy.mode)
    if key not in keys:
        keys.append(key)
    run.answer_mode = np.where(answered, keys.index(key), run.answer_mode)
    run.answer_index = np.where(answered, order0, run.answer_index)
    run.correct = np.where(go, answered & m.correct[idx, order0], run.correct)


def _has_texts(arrays: BankArrays, model: str, mode: str) -> bool:
    key = ("has-texts", model, mode)
    got = arrays.cache.get(key)
    if got is None:
        wanted = set(arrays.problem_ids)
        got = arrays.cache[key] = any(
            s.text is not None for (pid, m, md), rec in arrays.bank.records.items()
            if m == model and md == mode and pid in wanted for s in rec.samples)
    return got


# ---- entry point -------------------------------------------------------------------------
def evaluate(arrays: BankArrays, plan: Any, budget: Budget | float,
             seeds: Iterable[int | None] = (0,), *, count_prompt: bool = False) -> Evaluation:
    """Outcomes of `plan` (a Strategy or a Policy) on every problem of `arrays`, per seed.

    Equals `Engine(small, large, cost=bank cost, seed=s, count_prompt=...).solve_many(
    problems, budget, strategy=plan)` (or `policy=plan`) for each seed s, problem by problem.
    """
    if not isinstance(arrays, BankArrays):
        raise ValidationError(f"`arrays` must be a BankArrays (BankArrays.from_bank(bank)), got "
                              f"{type(arrays).__name__}.", parameter="arrays")
    if isinstance(budget, Budget):
        limit, count_prompt = budget.tokens, budget.count_prompt or count_prompt
    else:
        limit = Budget(tokens=budget).tokens
    budget_obj = Budget(tokens=limit, count_prompt=count_prompt)
    seeds = tuple(seeds)
    if not seeds:
        raise ValidationError("`seeds` must hold at least one seed.", parameter="seeds")
    for s in seeds:
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer))):
            raise ValidationError(f"seeds must be integers or None, got {s!r}.",
                                  parameter="seeds", value=s)
    groups = _groups(arrays, plan, budget_obj)
    p = len(arrays)
    keys: list[tuple[str, str]] = []
    fields_: dict[str, list] = {f: [] for f in ("correct", "cost", "escalated", "status",
                                                "small_samples", "difficulty", "answer_mode",
                                                "answer_index")}
    tokens: dict[str, list] = {m: [] for m in arrays.cost.models}
    for seed in seeds:
        run = _Run(arrays, None if seed is None else int(seed), limit, count_prompt)
        for rows, strategy, prior, difficulty in groups:
            _run_strategy(run, rows, strategy, keys, prior)
            if difficulty is not None:
                run.difficulty = np.where(rows & np.isnan(run.difficulty), difficulty,
                                          run.difficulty)
        for f in fields_:
            fields_[f].append(run.spent if f == "cost" else getattr(run, f))
        for mname in tokens:
            tokens[mname].append(run.tokens.get(mname, np.zeros(p, np.int64)))
    return Evaluation(seeds=seeds, problem_ids=list(arrays.problem_ids), budget=limit,
                      tokens={m: np.stack(v) for m, v in tokens.items()},
                      answer_keys=keys, **{f: np.stack(v) for f, v in fields_.items()})


def ladder_features(arrays: BankArrays, ladder: Ladder, budget: float, seed: int | None,
                    *, count_prompt: bool = False, prior: np.ndarray | None = None
                    ) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """The climb features each rung of `ladder` saw, per problem: a list of (rung index,
    rows that reached it, features (P, len(CLIMB_FEATURES)), whether its leader was right).
    For fitting climb scores on training questions."""
    run = _Run(arrays, seed, Budget(tokens=budget).tokens, count_prompt)
    _ladder(run, np.ones(len(arrays), bool), ladder, [], prior)
    return run.rung_features


def _groups(arrays: BankArrays, plan: Any, budget: Budget) -> list[tuple]:
    """(rows mask, strategy, per-row prior or None, per-row difficulty or None) per group."""
    p = len(arrays)
    everything = np.ones(p, bool)
    if isinstance(plan, Strategy):
        _check_roles(arrays, plan)
        return [(everything, plan, None, None)]
    vector = getattr(plan, "vector_groups", None)
    if vector is not None:
        groups = vector(arrays, budget)
        for g in groups:
            _check_roles(arrays, g[1])
        return groups
    if not hasattr(plan, "decide"):
        raise ValidationError(f"`plan` must be a Strategy or a Policy (with .decide), got "
                              f"{type(plan).__name__}.", parameter="plan")
    by_strategy: dict[Any, list[int]] = {}
    diffs = np.full(p, np.nan)
    chosen: dict[Any, Strategy] = {}
    for i, pid in enumerate(arrays.problem_ids):
        strategy, difficulty = plan.decide(arrays.bank.problems[pid], budget, arrays.models)
        key = repr(strategy)
        chosen[key] = strategy
        by_strategy.setdefault(key, []).append(i)
        if difficulty is not None:
            diffs[i] = difficulty
    out = []
    for key, idx in by_strategy.items():
        rows = np.zeros(p, bool)
        rows[idx] = True
        _check_roles(arrays, chosen[key])
        out.append((rows, chosen[key], None, diffs))
    return out


def _check_roles(arrays: BankArrays, strategy: Strategy) -> None:
    missing = [r for r in strategy.roles if r not in arrays.models]
    if missing:
        raise ValidationError(f"strategy {strategy.name!r} needs a {missing[0]} model, but the "
                              f"engine has only {sorted(arrays.models)}.", parameter="strategy",
                              value=strategy.name)

