"""Per-model token prices in budget units (small-model output tokens).

Budgets are counted in one currency so that a small-model sample and a large-model call can be
compared: a token of model m costs `output` units when generated and `prompt` units when read.
The presets below say where their numbers come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from tts.errors import UnknownNameError, ValidationError


@dataclass(frozen=True, slots=True)
class ModelCost:
    """Price of one token of a model, in budget units."""

    output: float
    """Units per generated token."""
    prompt: float
    """Units per prompt (prefill) token."""

    def __post_init__(self) -> None:
        for name in ("output", "prompt"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValidationError(f"cost `{name}` must be a finite number > 0, got {value!r}.",
                                      parameter=name, value=value)


@dataclass(frozen=True, slots=True)
class CostModel:
    """Token prices of every model the engine may call, plus where they come from."""

    models: Mapping[str, ModelCost]
    source: str = ""
    """Human-readable provenance of the prices (shown in reports)."""

    def __post_init__(self) -> None:
        if not self.models:
            raise ValidationError("a cost model needs at least one model.", parameter="models")
        object.__setattr__(self, "models", dict(self.models))

    def of(self, model: str) -> ModelCost:
        try:
            return self.models[model]
        except KeyError:
            raise UnknownNameError(f"no cost is known for model {model!r}; known: "
                                   f"{sorted(self.models)}.") from None

    def to_dict(self) -> dict:
        return {"source": self.source,
                "models": {m: {"output": c.output, "prompt": c.prompt}
                           for m, c in self.models.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> CostModel:
        try:
            models = {m: ModelCost(float(c["output"]), float(c.get("prompt", c["output"])))
                      for m, c in data["models"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValidationError(f"cost model must look like {{'models': {{name: {{'output': x, "
                                  f"'prompt': y}}}}}}, got {data!r} ({exc}).") from None
        return cls(models, source=str(data.get("source", "")))

    @classmethod
    def from_usd_per_million(cls, prices: Mapping[str, tuple[float, float]], *, unit_model: str,
                             source: str) -> CostModel:
        """Build weights from $ prices (prompt, output) per million tokens, with one unit
        = one generated token of `unit_model`."""
        unit = prices[unit_model][1]
        return cls({m: ModelCost(output=o / unit, prompt=p / unit) for m, (p, o) in prices.items()},
                   source=source)

    @classmethod
    def from_active_params(cls, params: Mapping[str, float], *, unit_model: str,
                           source: str) -> CostModel:
        """Weights proportional to active parameters (FLOPs per token ~ 2 * params); prefill
        tokens cost the same per token as generated ones."""
        unit = params[unit_model]
        return cls({m: ModelCost(output=p / unit, prompt=p / unit) for m, p in params.items()},
                   source=source)


MOT_USD = CostModel.from_usd_per_million(
    {
        # Llama-2-13B-chat on Anyscale Endpoints, 2023 list price: $0.25 / M tokens in and out.
        "llama-2-13b": (0.25, 0.25),
        # gpt-3.5-turbo (4k context), OpenAI 2023 list price: $1.5 / M prompt, $2 / M completion.
        "gpt-3.5-turbo": (1.5, 2.0),
        # GPT-4 (8k context), OpenAI 2023 list price: $30 / M prompt, $60 / M completion tokens.
        "gpt-4": (30.0, 60.0),
    },
    unit_model="llama-2-13b",
    source="USD list prices 2023: Llama-2-13B $0.25/M (Anyscale Endpoints); "
           "gpt-3.5-turbo $1.5/M prompt, $2/M completion; "
           "GPT-4 8k $30/M prompt, $60/M completion (OpenAI)",
)
"""Prices for the MoT banks (Llama-2-13B, gpt-3.5-turbo and GPT-4 tiers)."""

QWEN_PARAMS = CostModel.from_active_params(
    # Parameter counts from the Qwen2.5 technical report (0.49B and 1.54B).
    {"qwen2.5-coder-0.5b": 0.49, "qwen2.5-coder-1.5b": 1.54, "smollm2-135m": 0.135},
    unit_model="qwen2.5-coder-0.5b",
    source="active parameters: Qwen2.5-0.5B 0.49B, Qwen2.5-1.5B 1.54B (Qwen2.5 report), "
           "SmolLM2-135M 0.135B",
)
"""Compute-proportional weights for the live Qwen2.5-Coder small/large pair."""

PRESETS: dict[str, CostModel] = {"mot-usd": MOT_USD, "qwen-params": QWEN_PARAMS}
