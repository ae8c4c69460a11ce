"""The numpy view of a replay bank the evaluator reads: answer classes, tokens and correctness
of every stored sample, and per-seed vote prefixes (the tally after each draw).

`BankArrays.from_bank(bank)` builds it once per bank; `.subset(rows)` is a cheap view for
train / held-out splits that shares the caches. `Prefix` holds, for one seeded sample stream
of one (model, mode), the vote statistics after k draws, so a vote of k samples is a lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from tts.answers import Votes, _keys_equivalent, canonical, class_ids, is_correct, kept_count
from tts.bank import Record, SampleBank, sample_order
from tts.budgets import CostModel
from tts.errors import BankError, ValidationError
from tts.evaluate.mixed import MIX, mixed_arrays, mixed_order
from tts.signals import leader_conf
from tts.strategies import leader_confidence
from tts.types import Problem, Role, ladder_roles

__all__ = ["BankArrays", "ModeArrays", "Prefix", "WeightedPrefix", "tile_bank"]


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
    parts: tuple[ModeArrays, ...] = ()
    """A mixed stream's two records (`mixed_arrays`); () for one record."""

    @property
    def width(self) -> int:
        return self.cls.shape[1]

    def rows(self, idx: np.ndarray) -> ModeArrays:
        return ModeArrays(self.model, self.mode, self.size[idx], self.cls[idx], self.tokens[idx],
                          self.correct[idx], self.prompt_tokens[idx],
                          tuple(self.answers[i] for i in idx), self.n_classes,
                          tuple(x.rows(idx) for x in self.parts))


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

    def answering(self) -> np.ndarray:
        """(P, S + 1) answering draws among the first k (all of them vote here)."""
        return self.total


@dataclass(frozen=True)
class WeightedPrefix(Prefix):
    """A `Prefix` of a confidence-weighted and/or filtered vote (`Vote.weight`, `Vote.keep`):
    after k draws, the vote of the kept answering samples, as `count_weighted_votes` tallies
    it. `top` / `runner_up` are the sample counts of the first two classes in weight order,
    `total` the counted samples, `confidence` the stop test on the weights rescaled to counts
    (`WeightedVotes.effective_counts`); draws and tokens are the plain stream's."""

    missing: np.ndarray = None  # type: ignore[assignment]
    """(P, S + 1) answering draws among the first k without the confidence the vote needs."""
    leader_conf: np.ndarray = None  # type: ignore[assignment]
    """(P, S + 1) `tts.signals.leader_conf`: mean min_conf of the counted leader samples."""
    conf_missing: np.ndarray = None  # type: ignore[assignment]
    """(P, S + 1) answering draws among the first k without a min_conf (which `leader_conf`
    needs)."""
    answered: np.ndarray = None  # type: ignore[assignment]
    """(P, S + 1) answering draws among the first k, counted or dropped by `keep`."""

    def rows(self, idx: np.ndarray) -> WeightedPrefix:
        return WeightedPrefix(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def answering(self) -> np.ndarray:
        return self.answered


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
        """Arrays of (model, mode); an empty record set when the bank has none. A mixed mode
        "<mode>|<mix_mode>" (`mixed_key`) is both records side by side (`mixed_arrays`)."""
        if MIX in mode:
            key = ("mixed", model, mode)
            got = self.cache.get(key)
            if got is None:
                first, second = mode.split(MIX)
                got = self.cache[key] = mixed_arrays(self.mode(model, first),
                                                     self.mode(model, second))
            return got
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

    def confidences(self, model: str, mode: str, measure: str) -> np.ndarray:
        """(P, S) confidence of each stored sample of (model, mode), nan where the bank holds
        none: "min_conf", or "logprob" (exp of the mean logprob, by `math.exp` as `Vote`
        computes it, so the floats agree)."""
        key = ("confidences", model, mode, measure)
        got = self.cache.get(key)
        if got is None:
            m = self.mode(model, mode)
            got = np.full(m.cls.shape, np.nan)
            for i, pid in enumerate(self.problem_ids):
                rec = self.bank.records.get((pid, model, mode))
                for j, smp in enumerate(rec.samples if rec is not None else ()):
                    v = smp.logprob if measure == "logprob" else smp.min_conf
                    if v is not None:
                        got[i, j] = math.exp(v) if measure == "logprob" else v
            self.cache[key] = got
        return got

    def weighted_prefix(self, model: str, mode: str, seed: int | None, max_tokens: int,
                        weight: str, keep: float) -> WeightedPrefix:
        """`prefix` of a vote weighted by `weight` ("none", "min_conf", "logprob") over the
        `keep` share of most confident answering samples (`Vote.weight`, `Vote.keep`), with
        the leader's `leader_conf` (`Vote.report_confidence`)."""
        m = self.mode(model, mode)
        cap = int(min(max_tokens, int(m.tokens.max(initial=0))))
        key = (model, mode, seed, cap, weight, keep)
        got = self._prefix.get(key)
        if got is None:
            if self._root is not None:
                got = self._root.weighted_prefix(model, mode, seed, max_tokens, weight,
                                                 keep).rows(self._rows)
            else:
                measure = "logprob" if weight == "logprob" else "min_conf"
                got = _build_weighted_prefix(m, self.prefix(model, mode, seed, max_tokens),
                                             self.confidences(model, mode, measure),
                                             self.confidences(model, mode, "min_conf"), cap,
                                             weighted=weight != "none", keep=keep)
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


def _stream_order(m: ModeArrays, pids: Sequence[str], seed: int | None) -> np.ndarray:
    """(P, S) stored index served at each draw position (-1 past the record)."""
    if m.parts:
        return mixed_order(m, pids, seed)
    order = np.full(m.cls.shape, -1, np.int64)
    for i, pid in enumerate(pids):
        n = int(m.size[i])
        if n:
            order[i, :n] = sample_order(pid, m.model, m.mode, seed, n)
    return order


def _build_prefix(m: ModeArrays, pids: Sequence[str], seed: int | None,
                  max_tokens: int) -> Prefix:
    p, s = m.cls.shape
    order = _stream_order(m, pids, seed)
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


def _build_weighted_prefix(m: ModeArrays, plain: Prefix, conf: np.ndarray,
                           min_conf: np.ndarray, max_tokens: int, *, weighted: bool,
                           keep: float) -> WeightedPrefix:
    """`count_weighted_votes` after every k draws of the plain stream, for all problems.

    Weights are added one draw at a time in draw order (a skipped draw adds an exact 0.0), as
    `count_weighted_votes` adds them, so every tally, and hence every decision, is the same
    float; the stop confidence comes from `leader_confidence` itself. Each class's min_confs
    are summed the same way, for the leader's `leader_conf` (`Vote.report_confidence`).
    """
    p, s = m.cls.shape
    order = plain.order
    valid = order >= 0
    oc = np.where(valid, order, 0)
    cls = np.take_along_axis(m.cls, oc, 1)
    tok = np.take_along_axis(m.tokens, oc, 1)
    cls = np.where(valid & (tok <= max_tokens), cls, -1)   # (P, S) class per draw, -1 abstains
    c = np.where(valid, np.take_along_axis(conf, oc, 1), np.nan)
    answering = cls >= 0
    has_conf = ~np.isnan(c)
    missing = np.zeros((p, s + 1), np.int64)
    missing[:, 1:] = np.cumsum(answering & ~has_conf, 1)
    n_answering = np.zeros((p, s + 1), np.int64)
    n_answering[:, 1:] = np.cumsum(answering, 1)
    w = np.where(answering & has_conf, c, 0.0)
    mc = np.where(valid, np.take_along_axis(min_conf, oc, 1), np.nan)
    conf_missing = np.zeros((p, s + 1), np.int64)
    conf_missing[:, 1:] = np.cumsum(answering & np.isnan(mc), 1)
    mc = np.where(answering & ~np.isnan(mc), mc, 0.0)
    ks = np.arange(s + 1)
    drawn = ks[None, :, None] > np.arange(s)[None, None, :]              # (1, S+1, S): j < k
    kept = drawn & answering[:, None, :]                                 # (P, S+1, S)
    if keep < 1.0:
        # rank of draw j among the answering draws before k: more confident, or as confident
        # and drawn earlier (ties by sample order)
        cj = np.where(has_conf, c, -np.inf)
        before = np.arange(s)[None, :, None] > np.arange(s)[None, None, :]   # (1, j, i): i < j
        better = answering[:, None, :] & ((cj[:, None, :] > cj[:, :, None]) |
                                          ((cj[:, None, :] == cj[:, :, None]) & before))
        rank = np.zeros((p, s + 1, s), np.int64)
        rank[:, 1:, :] = np.cumsum(np.transpose(better, (0, 2, 1)), 1)    # over i < k
        need = np.array([kept_count(keep, n) for n in range(s + 1)])[n_answering]
        kept = kept & (rank < need[:, :, None])
    k_cls = max(m.n_classes, 1)
    classes = np.arange(k_cls)
    tally = np.zeros((p, s + 1, k_cls))
    conf_tally = np.zeros((p, s + 1, k_cls))  # summed min_conf per class
    counts = np.zeros((p, s + 1, k_cls), np.int64)
    total_w = np.zeros((p, s + 1))
    first = np.full((p, s + 1, k_cls), s, np.int64)
    for j in range(s):  # draw order, one addition per draw, as count_weighted_votes does
        member = kept[:, :, j, None] & (cls[:, None, j, None] == classes)  # (P, S+1, K)
        wj = w[:, None, j, None] if weighted else 1.0
        tally = tally + np.where(member, wj, 0.0)
        conf_tally = conf_tally + np.where(member, mc[:, None, j, None], 0.0)
        counts += member
        total_w = total_w + np.where(kept[:, :, j], w[:, None, j] if weighted else 1.0, 0.0)
        first = np.where(member & (first == s), j, first)
    present = counts > 0
    # classes in vote order: weight descending, ties by first counted draw; empty ones last
    rank_cls = np.lexsort((first, np.where(present, -tally, np.inf)), axis=-1)
    lead_c, run_c = rank_cls[..., 0], rank_cls[..., min(1, k_cls - 1)]
    distinct = present.sum(2)
    total = counts.sum(2)
    has = total > 0
    two = distinct >= 2

    def pick(a: np.ndarray, c_: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, c_[..., None], 2)[..., 0]

    top = np.where(has, pick(counts, lead_c), 0)
    runner = np.where(two, pick(counts, run_c), 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(has, top / np.maximum(total, 1), 0.0)
    if weighted:
        top_w = np.where(has, pick(tally, lead_c), 0.0)
        run_w = np.where(two, pick(tally, run_c), 0.0)
        ok = total_w > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(ok, top_w * total / np.where(ok, total_w, 1.0), 0.0)
            b = np.where(ok, run_w * total / np.where(ok, total_w, 1.0), 0.0)
        pairs = np.stack([a, b], -1).reshape(-1, 2)
        uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
        conf_u = np.array([leader_confidence(float(x), float(y)) for x, y in uniq])
        confidence = conf_u[inverse.reshape(-1)].reshape(p, s + 1)
    else:
        confidence = _conf_table(s)[top, runner]
    in_order = np.take_along_axis(counts, rank_cls, 2).reshape(-1, k_cls)
    uniq, inverse = np.unique(in_order, axis=0, return_inverse=True)
    ent_u = np.array([_entropy(tuple(int(x) for x in row)) for row in uniq])
    entropy = ent_u[inverse.reshape(-1)].reshape(p, s + 1)
    lead_pos = pick(first, lead_c)
    lead_idx = np.where(has, np.take_along_axis(order, np.minimum(lead_pos, s - 1), 1), -1)
    lead_ok = has & np.take_along_axis(m.correct, np.maximum(lead_idx, 0), 1)
    conf_sum = np.where(has, pick(conf_tally, lead_c), 0.0)
    return WeightedPrefix(order, plain.cum_tokens, top, runner, total, distinct, agreement,
                          entropy, confidence, lead_idx, lead_ok, missing,
                          leader_conf(conf_sum, top), conf_missing, n_answering)


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
