"""Cross-fitted router predictions: every prompt is scored by a router that never saw it, and
the model family (kNN or logistic, and its parameter) is chosen on inner folds of the fitting
part only (nested), so the held-out numbers carry no selection bias.

Folds are by prompt, or by group (e.g. MMLU subject, DATE scenario) so that no group of a
held-out prompt was seen in fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from tts.difficulty import kfold
from tts.errors import ValidationError
from tts.routing.router import Candidate, Router, default_candidates

__all__ = ["CrossFit", "cross_fit", "choose_candidate", "fold_indices", "brier_skill"]

Select = Callable[[np.ndarray, np.ndarray], float]
"""`select(predictions (n, T), labels (n, T)) -> score`, higher is better."""


def brier_skill(pred: np.ndarray, labels: np.ndarray) -> float:
    """Default selection score: minus the mean Brier score over tiers."""
    return -float(np.mean((pred - labels) ** 2))


def fold_indices(n: int, folds: int, *, seed: int = 0,
                 groups: Sequence[str] | None = None) -> list[np.ndarray]:
    """Held-out index sets covering range(n): shuffled prompts, or whole groups (shuffled,
    each added to the fold with the fewest prompts so far)."""
    if groups is None:
        return kfold(n, folds, seed)
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValidationError(f"need one group per prompt ({n}), got {len(groups)}.",
                              parameter="groups")
    names, counts = np.unique(groups, return_counts=True)
    if len(names) < folds:
        raise ValidationError(f"{len(names)} groups cannot make {folds} folds by group.",
                              parameter="folds", value=folds)
    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]  # big groups first, ties shuffled
    load = np.zeros(folds)
    member = {}
    for g in order:
        f = int(np.argmin(load))
        member[names[g]] = f
        load[f] += counts[g]
    which = np.array([member[g] for g in groups])
    return [np.flatnonzero(which == f) for f in range(folds)]


def choose_candidate(texts: Sequence[str], labels: np.ndarray, embeddings: np.ndarray, *,
                     tiers: Sequence[str], embed_model: str,
                     candidates: Sequence[Candidate] | None = None, folds: int = 3,
                     groups: Sequence[str] | None = None, seed: int = 0,
                     select: Select = brier_skill) -> tuple[Candidate, dict[str, float]]:
    """The candidate with the best `select` score on `folds`-fold cross-fitting of the given
    (fitting) prompts, and every candidate's score; by default among
    `default_candidates(len(texts))`."""
    if candidates is None:
        candidates = default_candidates(len(texts))
    if len(candidates) == 1:
        return candidates[0], {}
    labels = np.asarray(labels, bool)
    parts = fold_indices(len(texts), folds, seed=seed, groups=groups)
    single: dict[Candidate, np.ndarray] = {}  # each family fitted once, blends reuse them
    for cand in candidates:
        for part in cand.parts:
            if part not in single:
                single[part] = _oof(texts, labels, embeddings, parts, tiers, embed_model, part)
    scores = {c.name: select(sum(single[p] for p in c.parts) / len(c.parts), labels)
              for c in candidates}
    best = max(candidates, key=lambda c: scores[c.name])
    return best, scores


def _oof(texts: Sequence[str], labels: np.ndarray, embeddings: np.ndarray,
         parts: Sequence[np.ndarray], tiers: Sequence[str], embed_model: str,
         cand: Candidate) -> np.ndarray:
    pred = np.zeros(labels.shape, float)
    for held in parts:
        fit = np.setdiff1d(np.arange(len(texts)), held)
        router = Router.fit([texts[i] for i in fit], labels[fit], embeddings=embeddings[fit],
                            tiers=tiers, embed_model=embed_model, candidate=cand)
        pred[held] = router.predict([texts[i] for i in held], embeddings=embeddings[held])
    return pred


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold predictions and what was chosen where."""

    predictions: np.ndarray
    """(n, T) P(tier right), each row from a router fitted without that prompt."""
    chosen: tuple[str, ...]
    """Candidate chosen (on inner folds) for each outer fold."""
    folds: tuple[np.ndarray, ...]
    inner_scores: tuple[dict[str, float], ...]


def cross_fit(texts: Sequence[str], labels: np.ndarray, embeddings: np.ndarray, *,
              tiers: Sequence[str], embed_model: str,
              candidates: Sequence[Candidate] | None = None, folds: int = 5,
              inner_folds: int = 3, groups: Sequence[str] | None = None, seed: int = 0,
              train_size: int | None = None, select: Select = brier_skill,
              progress: Callable[[int, int], None] | None = None) -> CrossFit:
    """Held-out predictions for every prompt: `folds` outer folds (by prompt, or by `groups`);
    in each, the candidate is chosen by `select` on `inner_folds` folds of the fitting part
    (by group too when grouped), then fitted on the whole fitting part (or on `train_size`
    prompts drawn from it, for learning curves) and applied to the held-out fold."""
    texts = list(texts)
    labels = np.asarray(labels, bool)
    if labels.ndim == 1:
        labels = labels[:, None]
    embeddings = np.asarray(embeddings, np.float32)
    if not (len(texts) == len(labels) == len(embeddings)):
        raise ValidationError(f"need as many labels and embeddings as prompts ({len(texts)}), "
                              f"got {len(labels)} and {len(embeddings)}.", parameter="labels")
    outer = fold_indices(len(texts), folds, seed=seed, groups=groups)
    pred = np.zeros(labels.shape, float)
    chosen, inner = [], []
    rng = np.random.default_rng(seed + 1)
    for i, held in enumerate(outer):
        fit = np.setdiff1d(np.arange(len(texts)), held)
        if train_size is not None:
            if train_size > len(fit):
                raise ValidationError(f"train_size {train_size} exceeds the {len(fit)} "
                                      f"fitting prompts of a fold.", parameter="train_size")
            fit = np.sort(rng.choice(fit, train_size, replace=False))
        fit_texts = [texts[j] for j in fit]
        sub_groups = None if groups is None else [groups[j] for j in fit]
        cand, scores = choose_candidate(
            fit_texts, labels[fit], embeddings[fit], tiers=tiers, embed_model=embed_model,
            candidates=candidates, folds=inner_folds, groups=sub_groups, seed=seed,
            select=select)
        router = Router.fit(fit_texts, labels[fit], embeddings=embeddings[fit], tiers=tiers,
                            embed_model=embed_model, candidate=cand)
        pred[held] = router.predict([texts[j] for j in held], embeddings=embeddings[held])
        chosen.append(cand.name)
        inner.append(scores)
        if progress is not None:
            progress(i + 1, len(outer))
    return CrossFit(pred, tuple(chosen), tuple(outer), tuple(inner))
