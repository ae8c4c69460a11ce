"""A router as a ladder policy's prompt prior: the `prior` climb feature and `skip_above`.

A ladder policy reads one number per prompt before generating: a difficulty logit (high: the
cheapest rung is likely wrong). `PromptDifficulty` (tts.difficulty) computes it from hand-made
prompt features; `RouterPrior` from a `Router` on real sentence embeddings: the logit of
1 - P(the cheapest tier answers right). Both have the same interface (`logit`, `logits`,
`to_dict`), so a policy, the evaluator and the tuner use either.

Prompts are embedded with the router's own embedding model (`load_encoder`, loaded once on
first use; `embed_model` names a pulled model such as "embed" or a sentence-transformers
folder) through a cache keyed by text, so a tuning run embeds each question once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from tts.errors import ValidationError
from tts.routing.embeddings import Encoder, embed_prompts, load_encoder
from tts.routing.router import Router

KIND = "router"
CLIP = 1e-6
"""P(right) is clipped to [CLIP, 1 - CLIP] so the logit stays finite."""


@dataclass(eq=False)
class RouterPrior:
    """The difficulty logit of a prompt from `router`'s P(`tier` answers right)."""

    router: Router
    tier: str
    embed_model: str = "embed"
    """What `load_encoder` loads to embed prompts (its model_id must be the router's)."""
    _encoder: Encoder | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.router.tier_index(self.tier)  # refuses a tier it was not fitted for

    @classmethod
    def of(cls, router: Router, tier: str, encoder: Encoder,
           embed_model: str = "embed") -> RouterPrior:
        """A prior using an already loaded `encoder` (checked against the router)."""
        router.check_encoder(encoder)
        return cls(router, tier, embed_model, encoder)

    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.embed_model)
            self.router.check_encoder(self._encoder)
        return self._encoder

    def logits_of(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        """Difficulty logits from given embeddings (of the router's model)."""
        p = self.router.predict(list(texts), embeddings=embeddings)[:, self.router.tier_index(
            self.tier)]
        return difficulty_logits(p)

    def logits(self, questions: Sequence[str]) -> np.ndarray:
        return self.logits_of(questions, embed_prompts(questions, self.encoder()))

    def logit(self, question: str) -> float:
        z = float(self.logits([question])[0])
        return z if math.isfinite(z) else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, "tier": self.tier, "embed_model": self.embed_model,
                "router": self.router.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouterPrior:
        if not isinstance(data, Mapping) or data.get("kind") != KIND \
                or not {"tier", "router"} <= set(data):
            raise ValidationError("a router prior must be an object with `kind`: \"router\", "
                                  "`tier` and `router`.", parameter="prompt")
        embed_model = data.get("embed_model", "embed")
        if not isinstance(embed_model, str) or not isinstance(data["tier"], str):
            raise ValidationError("a router prior's `tier` and `embed_model` must be strings.",
                                  parameter="prompt")
        return cls(Router.from_dict(data["router"]), data["tier"], embed_model)


def difficulty_logits(p_right: np.ndarray) -> np.ndarray:
    """log((1 - p) / p) of P(right), clipped to [CLIP, 1 - CLIP]: high means likely wrong."""
    p = np.clip(np.asarray(p_right, float), CLIP, 1.0 - CLIP)
    return np.log((1.0 - p) / p)
