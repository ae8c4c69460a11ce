"""What a (flat) policy study searches and scores: the data it is fitted on (`TuneData`:
difficulty models and reference costs fitted on the train questions only), the search space
(`suggest_level`: one `Level` per trial), the objectives and the policy a level makes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from tts.errors import BankError, ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.policy import Level, ParamPolicy
from tts.strategies import Escalate, Vote

if TYPE_CHECKING:
    import optuna

__all__ = ["TuneData", "prepare", "suggest_level", "large_price", "objective_values",
           "policy_of_levels", "OBJECTIVES", "AGREEMENT_WEIGHTS", "MAX_TOKENS_CHOICES",
           "LARGE_MAX_TOKENS_CHOICES", "TIE_BREAK"]

OBJECTIVES = ("accuracy", "cost", "pareto")
AGREEMENT_WEIGHTS = (6.0, -12.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""Untrained probe score: difficulty 0.5 at agreement 0.5, spanning ~0.0025..0.9975."""
MAX_TOKENS_CHOICES = (128, 192, 256, 384, 512)
LARGE_MAX_TOKENS_CHOICES = (256, 320, 384, 512)
TIE_BREAK = 1e-4
"""Weight of the cost share in the "accuracy" objective: only breaks accuracy ties."""


@dataclass
class TuneData:
    """Everything a study needs, fitted on train questions only."""

    arrays: BankArrays
    seeds: tuple[int, ...]
    count_prompt: bool
    prompt: Any
    """PromptDifficulty fitted on the train labels (None when they are all one class)."""
    weights: dict[str, tuple[float, ...]]
    """Probe difficulty models to choose from: "agreement" and "learned"."""
    ref_cost: float
    """Mean cost of the large model alone (or of the biggest vote without one) on train."""
    large_accuracy: float | None
    max_samples: int
    fingerprint: str = ""

    @property
    def has_large(self) -> bool:
        return "large" in self.arrays.models


def prepare(arrays: BankArrays, *, seeds: Sequence[int] = (0, 1, 2),
            count_prompt: bool = False) -> TuneData:
    """Fit the difficulty models on `arrays` (the train split) and measure references."""
    from tts.difficulty import (PromptDifficulty, ProbeDifficulty, cross_fit_prior,
                                probe_matrix, vote_wrong)

    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValidationError("need at least one training seed.", parameter="seeds")
    small = arrays.models["small"]
    m = arrays.mode(small, "sample")
    if (m.size == 0).any():
        raise BankError(f"every question needs 'sample' records of the small model {small!r} "
                        f"to tune a policy; {int((m.size == 0).sum())} have none.")
    max_samples = int(m.size.min())
    labels = vote_wrong(arrays)
    prompt = None
    weights = {"agreement": AGREEMENT_WEIGHTS}
    if labels.min() != labels.max() and len(arrays) >= 4:
        prompt = PromptDifficulty.fit(arrays.questions, labels)
        prior = cross_fit_prior(arrays, np.arange(len(arrays)), labels=labels)
        x, y, _ = probe_matrix(arrays, range(1, max_samples + 1), seeds, prior)
        if y.min() != y.max():
            weights["learned"] = ProbeDifficulty.fit(x, y).weights
    if "large" in arrays.models:
        ref = evaluate(arrays, Escalate(), 1e12, seeds[:1], count_prompt=count_prompt)
        ref_cost, large_acc = ref.mean_cost, ref.accuracy
    else:
        ref = evaluate(arrays, Vote(max_samples=max_samples, wave=max_samples, confidence=1.0),
                       1e12, seeds[:1], count_prompt=count_prompt)
        ref_cost, large_acc = ref.mean_cost, None
    data = TuneData(arrays, seeds, count_prompt, prompt, weights, max(ref_cost, 1e-9),
                    large_acc, max_samples)
    digest = hashlib.sha1(json.dumps({
        "ids": arrays.problem_ids, "seeds": seeds, "count_prompt": count_prompt,
        "weights": {k: list(v) for k, v in weights.items()},
        "prompt": None if prompt is None else prompt.to_dict(), "ref": ref_cost,
    }, sort_keys=True).encode()).hexdigest()
    data.fingerprint = digest[:16]
    return data


def large_price(data: TuneData, large_max_tokens: int) -> float:
    """Units one large-model call of `large_max_tokens` reserves (its prompt too if charged)."""
    cost = data.arrays.cost.of(data.arrays.models["large"])
    units = large_max_tokens * cost.output
    if data.count_prompt:
        m = data.arrays.mode(data.arrays.models["large"], "greedy")
        units += float(m.prompt_tokens.max(initial=0)) * cost.prompt
    return units


def suggest_level(trial: optuna.trial.BaseTrial, data: TuneData, budget: float,
                  from_budget: float = 0.0) -> Level:
    """The search space: one `Level` from an Optuna trial (every choice is recorded)."""
    p: dict[str, Any] = {}
    p["max_tokens"] = trial.suggest_categorical("max_tokens", list(MAX_TOKENS_CHOICES))
    p["probe"] = trial.suggest_int("probe", 1, min(8, data.max_samples))
    p["wave"] = trial.suggest_int("wave", 1, min(8, data.max_samples))
    p["max_samples"] = trial.suggest_int("max_samples", 1, data.max_samples)
    # Categorical switches make the fixed plans exactly representable (never stop early,
    # never escalate, escalate everything), so tuning can fall back on them where they win.
    if trial.suggest_categorical("stop_early", [True, False]):
        p["confidence"] = trial.suggest_float("confidence", 0.5, 1.0)
    else:
        p["confidence"] = 1.0
    score = trial.suggest_categorical("score", sorted(data.weights))
    affordable = [t for t in LARGE_MAX_TOKENS_CHOICES if large_price(data, t) <= budget]
    use_large = data.has_large and bool(affordable) and \
        trial.suggest_categorical("use_large", [True, False])
    if use_large:
        p["large_max_tokens"] = trial.suggest_categorical("large_max_tokens", affordable)
        if trial.suggest_categorical("escalate_all", [False, True]):
            p["direct_above"] = 0.0
        else:
            p["escalate_above"] = trial.suggest_float("escalate_above", 0.0, 1.0)
            p["escalate_early_above"] = trial.suggest_float("escalate_early_above", 0.0, 1.0)
            if data.prompt is not None:
                p["direct_above"] = trial.suggest_float("direct_above", 0.0, 1.0)
            p["keep_for_large"] = trial.suggest_categorical("keep_for_large", [False, True])
    return Level(from_budget=from_budget, use_large=use_large, probe_weights=data.weights[score],
                 **p)


def objective_values(objective: str, acc: float, cost: float, data: TuneData,
                     target: float | None) -> float | tuple[float, float]:
    """A trial's objective value(s) from its accuracy and mean cost (module `tts.tune`)."""
    share = cost / data.ref_cost
    if objective == "accuracy":
        return acc - TIE_BREAK * share
    if objective == "cost":
        shortfall = max(0.0, float(target) - acc)  # type: ignore[arg-type]
        # Any infeasible trial ranks below every feasible one (shares stay well under 5).
        return share + (5.0 + 100.0 * shortfall if shortfall > 0 else 0.0)
    return acc, share


def policy_of_levels(data: TuneData, levels: Sequence[Level],
                     notes: Mapping | None = None) -> ParamPolicy:
    """The ParamPolicy of `levels` with the difficulty models fitted in `data`."""
    return ParamPolicy(tuple(levels), data.weights.get("learned", AGREEMENT_WEIGHTS),
                       data.prompt, dict(notes or {}))
