"""The prompt prior a tuning run fits on its training questions: hand-made prompt features
(`PromptDifficulty`, "prompt") or a router on real sentence embeddings (`RouterPrior`,
"router"). Either predicts "the cheapest tier is wrong" (its full vote; its greedy answer
where it has one answer per question, `cheapest_wrong`); its logit is the rungs'
`prior` climb feature and, with a router, what a lower rung's `skip_above` reads (the search
then also tries skipping). The training questions' own logits for fitting climb scores are
out-of-fold: no question is scored by a fit that saw it."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tts.bank import is_greedy_mode
from tts.difficulty import PromptDifficulty, cross_fit_prior, vote_wrong
from tts.errors import ValidationError
from tts.evaluate import BankArrays

PRIORS = ("prompt", "router")
INNER_FOLDS = 3
"""Folds a router's candidate is chosen on."""
OOF_FOLDS = 5
"""Folds the training questions' own router logits are cross-fitted on."""


def check_prior(kind: str) -> str:
    if kind not in PRIORS:
        raise ValidationError(f"`prior` must be one of {list(PRIORS)}, got {kind!r}.",
                              parameter="prior", value=kind)
    return kind


def fit_prior(arrays: BankArrays, kind: str = "prompt", embed_model: str = "embed", *,
              groups: Sequence[str] | None = None) -> tuple[Any, np.ndarray]:
    """(prior model or None, out-of-fold logits of `arrays`' questions). `groups` (one per
    question, e.g. DATE scenarios): a router's candidate is chosen, and its logits cross-fitted,
    on folds of whole groups, as the tuning that uses it is held out; by question where the
    groups are too few for the folds."""
    check_prior(kind)
    labels = cheapest_wrong(arrays)
    if len(arrays) < 8 or labels.min() == labels.max():
        return None, np.zeros(len(arrays))
    if kind == "prompt":
        prompt = PromptDifficulty.fit(arrays.questions, labels)
        return prompt, cross_fit_prior(arrays, np.arange(len(arrays)), labels=labels)
    return _fit_router(arrays, ~labels, embed_model, groups)


def cheapest_wrong(arrays: BankArrays) -> np.ndarray:
    """Per question, whether the cheapest tier is wrong: its vote over every stored sample,
    or, where it has no samples on every question but a greedy answer (one answer per model,
    RouteLLM's logs), that answer."""
    small = arrays.models["small"]
    if (arrays.mode(small, "sample").size > 0).all():
        return vote_wrong(arrays)
    for (model, mode), m in sorted(arrays.modes.items()):
        if model == small and is_greedy_mode(mode) and (m.size > 0).all():
            return ~m.correct[:, 0]
    return vote_wrong(arrays)


def _fit_router(arrays: BankArrays, right: np.ndarray, embed_model: str,
                groups: Sequence[str] | None) -> tuple[Any, np.ndarray]:
    """A router for the cheapest tier (its candidate chosen on inner folds) and its
    cross-fitted difficulty logits of the same questions."""
    from tts.routing import Router, choose_candidate, cross_fit
    from tts.routing.embeddings import embed_prompts, shared_encoder
    from tts.routing.prior import RouterPrior, difficulty_logits

    enc = shared_encoder(embed_model)
    texts = list(arrays.questions)
    emb = embed_prompts(texts, enc)
    tier = (arrays.models["small"],)
    y = right[:, None]
    n_groups = 0 if groups is None else len(set(groups))
    cand, _ = choose_candidate(texts, y, emb, tiers=tier, embed_model=enc.model_id,
                               groups=groups if n_groups >= INNER_FOLDS else None,
                               folds=INNER_FOLDS)
    router = Router.fit(texts, y, embeddings=emb, tiers=tier, embed_model=enc.model_id,
                        candidate=cand)
    prior = RouterPrior.of(router, tier[0], enc, embed_model)
    oof = cross_fit(texts, y, emb, tiers=tier, embed_model=enc.model_id, folds=OOF_FOLDS,
                    inner_folds=INNER_FOLDS, groups=groups if n_groups >= OOF_FOLDS else None
                    ).predictions[:, 0]
    return prior, difficulty_logits(oof)
