"""The router's word n-gram part: TF-IDF of a prompt's words and word pairs (scikit-learn's
`TfidfVectorizer`), kept as plain data (a bounded vocabulary and its idf weights) so a router
file stays JSON.

Words carry what an embedding blurs: a subject's technical terms, a question's format
("Statement 1 |", "EXCEPT"). The vocabulary is the `MAX_TERMS` most frequent terms that occur
in at least two fitting prompts (one, on fewer than `MIN_DF_FROM` prompts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import sparse

__all__ = ["MAX_TERMS", "Vocabulary"]

MAX_TERMS = 20_000
"""Largest vocabulary fitted or read (about 0.5 MB of JSON with its weights)."""
MIN_DF_FROM = 50
"""From this many fitting prompts on, a term must occur in two of them."""
_OPTIONS: dict[str, Any] = {"ngram_range": (1, 2), "sublinear_tf": True, "lowercase": True,
                            "dtype": np.float64}


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Terms and their idf weights (float32, as stored): maps prompts to unit TF-IDF rows."""

    terms: tuple[str, ...]
    idf: np.ndarray

    @classmethod
    def fit(cls, texts: Sequence[str]) -> Vocabulary:
        """The vocabulary of the fitting prompts (empty when they share no word)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(min_df=2 if len(texts) >= MIN_DF_FROM else 1,
                              max_features=MAX_TERMS, **_OPTIONS)
        try:
            vec.fit(list(texts))
        except ValueError:  # no word of two letters or more in any prompt
            return cls((), np.zeros(0, np.float32))
        terms = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
        return cls(tuple(terms), np.asarray(vec.idf_, np.float32))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_vectorizer", None)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """(n, len(terms)) unit-length TF-IDF rows."""
        if not self.terms:
            return sparse.csr_matrix((len(texts), 0))
        vec = self._vectorizer  # type: ignore[attr-defined]
        if vec is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            vec = TfidfVectorizer(vocabulary={t: i for i, t in enumerate(self.terms)},
                                  **_OPTIONS)
            vec.idf_ = self.idf.astype(np.float64)
            object.__setattr__(self, "_vectorizer", vec)
        return vec.transform(list(texts))
