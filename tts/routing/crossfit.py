"""Cross-fitted router predictions: every prompt is scored by a router that never saw it, and
the model family (kNN or logistic, and its parameter) is chosen on inner folds of the fitting
part only (nested), so the held-out numbers carry no selection bias. The choice follows the
one-standard-error rule (`choose_candidate`): the simplest candidate within noise of the best.

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

__all__ = ["CrossFit", "cross_fit", "choose_candidate", "fold_indices", "brier_skill",
           "one_se_rule", "paired_se"]

SE_DRAWS = 200
"""Bootstrap draws for the standard error of the one-standard-error rule."""

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
    """The candidate chosen on `folds`-fold cross-fitting of the given (fitting) prompts by
    the one-standard-error rule (Breiman et al. 1984), and every candidate's `select` score;
    by default among `default_candidates(len(texts))`.

    The rule: among the candidates whose score is within one standard error of the best
    one's, take the simplest (`Candidate.complexity`: features only, then single parts, then
    blends). The standard error is that of the score difference to the best candidate,
    paired (the same prompts, `paired_se`). Why: on banks of a few hundred prompts, inner-fold
    scores differ by noise, and a 384-weight embedding model that wins by noise is no evidence
    that it beats the prompt-feature model held-out (it more often overfits); on large banks
    the standard error shrinks and the rule keeps the best. Decided on inner folds only."""
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
    preds = {c.name: sum(single[p] for p in c.parts) / len(c.parts) for c in candidates}
    return one_se_rule(candidates, preds, labels, select, groups=groups, seed=seed)


def one_se_rule(candidates: Sequence[Candidate], preds: dict[str, np.ndarray],
                labels: np.ndarray, select: Select = brier_skill, *,
                groups: Sequence[str] | None = None,
                seed: int = 0) -> tuple[Candidate, dict[str, float]]:
    """The simplest of `candidates` whose `select` score on their out-of-fold predictions
    `preds` (by name) is within one paired standard error of the best score, and every
    candidate's score (`choose_candidate` says why)."""
    scores = {c.name: select(preds[c.name], labels) for c in candidates}
    best = max(candidates, key=lambda c: scores[c.name])
    se = paired_se(preds, best.name, labels, select, groups=groups, seed=seed)
    near = [c for c in candidates if scores[best.name] - scores[c.name] <= se[c.name]]
    return min(near, key=lambda c: c.complexity), scores


def paired_se(preds: dict[str, np.ndarray], best: str, labels: np.ndarray, select: Select, *,
              groups: Sequence[str] | None = None, seed: int = 0,
              draws: int = SE_DRAWS) -> dict[str, float]:
    """Per candidate, the standard error of `select(best) - select(candidate)` over the same
    prompts: the spread of that difference over `draws` bootstrap resamples of the prompts
    (of whole groups when grouped, since prompts of one group err together). A bootstrap
    rather than a formula so that any score works, APGR included; for a mean per-prompt loss
    such as Brier it agrees with the paired standard error of the mean. A resample on which
    `select` is undefined (e.g. APGR with equal accuracies) is skipped."""
    rng = np.random.default_rng(seed)
    members = None if groups is None else [np.flatnonzero(np.asarray(groups) == g)
                                           for g in np.unique(np.asarray(groups))]
    diffs: dict[str, list[float]] = {name: [] for name in preds}
    for _ in range(draws):
        if members is None:
            rows = rng.integers(0, len(labels), len(labels))
        else:
            rows = np.concatenate([members[j] for j in rng.integers(0, len(members),
                                                                    len(members))])
        try:
            top = select(preds[best][rows], labels[rows])
            row = {name: top - select(p[rows], labels[rows]) for name, p in preds.items()}
        except ValueError:
            continue
        for name, d in row.items():
            diffs[name].append(d)
    return {name: float(np.std(d, ddof=1)) if len(d) > 1 else 0.0
            for name, d in diffs.items()}


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
