"""Per-model token prices in budget units (small-model output tokens).

Budgets are counted in one currency so that a small-model sample and a large-model call can be
compared: a token of model m costs `output` units when generated and `prompt` units when read.
The presets below say where their numbers come from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

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
        return cls({m: ModelCost(output=o / unit, prompt=p / unit)
                    for m, (p, o) in prices.items()}, source=source)

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


# --------------------------------------------------------------------------- unknown models

KNOWN_PARAMS: dict[str, float] = {"qwen2.5-coder-0.5b": 0.49, "qwen2.5-coder-1.5b": 1.54,
                                  "smollm2-135m": 0.135}
"""Active parameters (billions) of the models tts pulls, by model name."""

_PARAMS_IN_NAME = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)


def params_from_name(model: str) -> float | None:
    """Active parameters (billions) written in a model name: "llama-3-8b-instruct" -> 8,
    "qwen2.5-0.5B" -> 0.5, "smollm2-135m" -> 0.135; None when the name says none (or two
    different sizes, as in a mixture-of-experts "8x7b")."""
    if re.search(r"\d+x\d", model, re.IGNORECASE):
        return None
    sizes = {float(n) * (1e-3 if unit.lower() == "m" else 1.0)
             for n, unit in _PARAMS_IN_NAME.findall(model)}
    return sizes.pop() if len(sizes) == 1 else None


def by_params(params: Mapping[str, float], *, unit_model: str | None = None) -> CostModel:
    """Prices proportional to active parameters (any unit, e.g. billions): the documented way
    to price models tts cannot size, `Engine(small, large, cost=by_params({"my-small": 0.5,
    "my-large": 7}))`. One unit = one generated token of `unit_model` (default: the first)."""
    if not params:
        raise ValidationError("by_params needs at least one model.", parameter="params")
    for m, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v <= 0:
            raise ValidationError(f"parameter count of {m!r} must be a number > 0, got {v!r}.",
                                  parameter="params", value=v)
    unit = unit_model if unit_model is not None else next(iter(params))
    return CostModel.from_active_params(
        dict(params), unit_model=unit,
        source="active parameters: " + ", ".join(f"{m} {v:g}" for m, v in params.items()))


def default_cost(models: Sequence[str]) -> CostModel:
    """Prices for an engine whose backends bring none. A budget counts generated tokens of
    the first (cheapest) model, as everywhere in tts:

    - One model: it is the unit, price 1 (a one-model engine needs no price), whichever
      model it is (the tiny model alone too: 1 unit per token, not its `QWEN_PARAMS` share).
    - Several: proportional to active parameters, known for pulled models (`KNOWN_PARAMS`;
      for the pulled small and large pair the prices of `QWEN_PARAMS`) and read from names
      that state them ("...-7b-...", "...-0.5B", "...-135m"); one unit = one generated
      token of the first model.

    Raises:
        UnknownNameError: several models and some size unknown; the message names them and
            says to pass `cost=tts.budgets.by_params({...})`.
    """
    models = list(dict.fromkeys(models))
    if len(models) == 1:
        return CostModel({models[0]: ModelCost(1.0, 1.0)},
                         source=f"one model ({models[0]}): 1 unit per token")
    params = {m: KNOWN_PARAMS.get(m) or params_from_name(m) for m in models}
    unknown = [m for m, v in params.items() if v is None]
    if unknown:
        example = ", ".join(f"{m!r}: {params[m] or '<billions>'}" for m in models)
        raise UnknownNameError(
            f"no price for model(s) {unknown}: an engine with several models needs each one's "
            f"price, and tts knows parameter counts only for {sorted(KNOWN_PARAMS)} and names "
            f"that state a size (e.g. 'qwen2.5-7b'). Pass them: "
            f"Engine(..., cost=tts.budgets.by_params({{{example}}})) with active parameters in "
            f"billions, or cost=CostModel({{name: ModelCost(output, prompt)}}).")
    return by_params({m: float(v) for m, v in params.items()}, unit_model=models[0])
