"""The router's inputs: a prompt's sentence embedding beside tts's cheap prompt features
(`tts.difficulty.prompt_features`: length, numbers, operation words, ...), standardised with
statistics of the fitting set only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tts.difficulty import PROMPT_FEATURES, prompt_features
from tts.errors import ValidationError

__all__ = ["PROMPT_FEATURES", "prompt_matrix", "standardiser", "design"]


def prompt_matrix(texts: Sequence[str]) -> np.ndarray:
    """(n, len(PROMPT_FEATURES)) raw prompt features."""
    if isinstance(texts, str):
        raise ValidationError("prompts must be a list of strings, got one string.",
                              parameter="prompts")
    if not len(texts):
        return np.zeros((0, len(PROMPT_FEATURES)))
    return np.array([prompt_features(t) for t in texts], float)


def standardiser(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale (std, 1 where a feature is constant) of the fitting set's features."""
    mean = features.mean(0)
    scale = features.std(0)
    scale[scale < 1e-8] = 1.0  # constant up to rounding: a std of 1e-15 would blow it up
    return mean, scale


def design(embeddings: np.ndarray, standardised: np.ndarray) -> np.ndarray:
    """The logistic model's input: embedding columns, then the standardised prompt features
    (`(features - mean) / scale`, with the fitting set's `standardiser`)."""
    return np.hstack([np.asarray(embeddings, float), standardised])
