"""A bank as router training data, and the router's cross-fitted predictions for a bank.

`bank_table(bank)` gives one row per problem: its text, group and whether each tier (model of
the bank's ladder, cheapest first) answers it right, read from one mode per tier (a greedy
mode when the tier has one, else the majority vote of its first mode's samples).
`route_bank(...)` embeds the prompts (through the per-bank cache), cross-fits a router and
reports the AUROC of its P(cheapest tier right) for "the cheapest tier fails".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from tts.answers import count_votes, is_correct
from tts.bank import SampleBank, is_greedy_mode
from tts.errors import BankError
from tts.routing.crossfit import CrossFit, Select, brier_skill, cross_fit
from tts.routing.embeddings import EmbeddingCache, Encoder, default_cache_dir, embed_texts
from tts.routing.metrics import cheapest_fails_auroc
from tts.routing.router import Candidate

__all__ = ["BankTable", "bank_table", "BankRouting", "route_bank", "tier_mode"]


@dataclass(frozen=True)
class BankTable:
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    tiers: tuple[str, ...]
    """Cheapest first."""
    modes: tuple[str, ...]
    """The mode read for each tier."""
    labels: np.ndarray
    """(n, T) whether each tier answers each problem right."""


def tier_mode(bank: SampleBank, model: str) -> str:
    """The mode a tier's correctness is read from: its greedy mode ("greedy" first), else its
    first mode in name order."""
    modes = bank.modes(model)
    if not modes:
        raise BankError(f"bank {bank.meta.name!r} has no samples of tier {model!r}; it has "
                        f"{bank.models}.")
    greedy = sorted(m for m in modes if is_greedy_mode(m))
    return greedy[0] if greedy else modes[0]


def bank_table(bank: SampleBank, *, tiers: Sequence[str] | None = None,
               modes: Sequence[str] | None = None) -> BankTable:
    """Correctness of every tier on every problem that all tiers answered."""
    tiers = tuple(tiers or bank.meta.models_cheapest_first)
    modes = tuple(modes or (tier_mode(bank, t) for t in tiers))
    if len(modes) != len(tiers):
        raise BankError(f"need one mode per tier ({list(tiers)}), got {list(modes)}.")
    ids, texts, rows = [], [], []
    for pid in bank.problem_ids:
        recs = [bank.records.get((pid, t, m)) for t, m in zip(tiers, modes)]
        if any(r is None for r in recs):
            continue
        gold = bank.problems[pid].gold
        rows.append([is_correct(count_votes([s.answer for s in r.samples]).leader, gold)
                     for r in recs])  # type: ignore[union-attr]
        ids.append(pid)
        texts.append(bank.problems[pid].question)
    if not rows:
        raise BankError(f"bank {bank.meta.name!r} has no problem answered by every tier "
                        f"{list(tiers)} in modes {list(modes)}.")
    return BankTable(tuple(ids), tuple(texts), tiers, modes, np.array(rows, bool))


@dataclass(frozen=True)
class BankRouting:
    table: BankTable
    fit: CrossFit
    embed_model: str
    auroc_cheapest_fails: float
    """AUROC of 1 - P(cheapest right) (held-out) for "the cheapest tier answers wrong"."""


def route_bank(bank: SampleBank, encoder: Encoder, *, tiers: Sequence[str] | None = None,
               groups: Callable[[str], str] | None = None, folds: int = 5,
               candidates: Sequence[Candidate] | None = None, seed: int = 0,
               cache: EmbeddingCache | None = None, select: Select = brier_skill,
               progress: Callable[[str, int, int], None] | None = None) -> BankRouting:
    """Cross-fitted router predictions for every problem of `bank` (folds by problem, or by
    `groups(problem_id)`, e.g. a DATE scenario), with the nested choice of candidate, and the
    held-out AUROC for "the cheapest tier fails"."""
    table = bank_table(bank, tiers=tiers)
    if cache is None:
        cache = EmbeddingCache(default_cache_dir(bank.meta.name), encoder.model_id, encoder.dim)
    emb = embed_texts(table.texts, encoder, cache=cache, progress=None if progress is None
                      else (lambda d, n: progress("embed", d, n)))
    fit = cross_fit(table.texts, table.labels, emb, tiers=table.tiers,
                    embed_model=encoder.model_id, candidates=candidates, folds=folds,
                    groups=None if groups is None else [groups(i) for i in table.ids],
                    seed=seed, select=select,
                    progress=None if progress is None else (lambda d, n: progress("fit", d, n)))
    auc = cheapest_fails_auroc(fit.predictions[:, 0], table.labels[:, 0])
    return BankRouting(table, fit, encoder.model_id, auc)
