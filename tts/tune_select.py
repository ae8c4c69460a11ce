"""The tuner's model-selection guard: keep the tuned winner only if it beats the best fixed
plan on the training questions by more than `se_margin` standard errors (the one-standard-error
rule), with the fixed plans it compares against (the sweep's fixed strategies, reproduced
exactly as policy levels, and the study's enqueued baselines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from tts.errors import ValidationError
from tts.measures import paired_difference
from tts.policy import Level
from tts.strategies import Escalate, Vote
from tts.tune_space import (AGREEMENT_WEIGHTS, LARGE_MAX_TOKENS_CHOICES, TuneData, large_price,
                            suggest_level)

__all__ = ["Scored", "select", "baseline_params", "baseline_levels", "level_of_strategy",
           "sweep_fixed_plans", "same_plan", "extended_seeds", "check_margin", "SE_MARGIN",
           "CASCADE_EPS"]

SE_MARGIN = 1.0
"""Default `se_margin` of the model-selection guard (the one-standard-error rule)."""


def extended_seeds(data: TuneData) -> tuple[int, ...]:
    """The re-ranking (and guard) seeds: the training seeds and as many again (seed + 7919)."""
    return tuple(data.seeds) + tuple(s + 7919 for s in data.seeds)


def check_margin(se_margin: Any) -> None:
    """Refuse a `se_margin` that is not a finite number >= 0 (None: no guard)."""
    if se_margin is None:
        return
    if isinstance(se_margin, bool) or not isinstance(se_margin, (int, float)) \
            or not math.isfinite(se_margin) or se_margin < 0:
        raise ValidationError(f"`se_margin` must be a finite number >= 0 (or None: no guard), "
                              f"got {se_margin!r}.", parameter="se_margin", value=se_margin)


@dataclass
class Scored:
    """A candidate level for `select`: its Evaluation on the training questions (seeds x
    questions) and its objective value there."""

    level: Level
    ev: Any
    value: float


def select(objective: str, tuned: Scored, baselines: Mapping[str, Scored],
           se_margin: float, target: float | None = None) -> tuple[str, dict[str, Any]]:
    """The model-selection guard: keep the tuned winner or fall back on the best baseline.

    All candidates are scored on the same training questions and seeds. The best baseline is
    the one with the best objective value (first listed on ties). With d_q the paired
    difference of per-question correctness (averaged over seeds), tuned minus that baseline,
    mean(d) and SE = std(d, ddof=1) / sqrt(n):

    * accuracy objective (one-standard-error rule): keep the tuned level only if
      mean(d) > se_margin * SE; otherwise the fixed plan, whose training score is within
      the noise of the winner's, is chosen (a plain plan that is as good, not a lucky one);
    * cost objective (the same rule applied to its constraint): the baseline is chosen when
      its objective is no worse (cheaper, or feasible where the tuned is not); a cheaper tuned
      level is kept only if its training accuracy minus se_margin * SE still reaches `target`
      (with the default target, the large model's accuracy = escalate-all's, that is
      mean(d) >= se_margin * SE against escalate-all), or when no baseline reaches the target.

    Returns ("tuned" | "baseline:<name>", record) with the numbers behind the choice.
    """
    if not baselines:
        return "tuned", {"chosen": "tuned", "reason": "no baseline plan"}
    sign = -1.0 if objective == "accuracy" else 1.0
    name = min(baselines, key=lambda k: sign * baselines[k].value)  # first wins ties
    base = baselines[name]
    d = tuned.ev.correct.mean(0) - base.ev.correct.mean(0)
    n = int(d.size)
    mean, se = paired_difference(d)
    t_acc, b_acc = tuned.ev.accuracy, base.ev.accuracy
    record: dict[str, Any] = {
        "baseline": name, "mean_diff": mean, "se": se, "se_margin": float(se_margin),
        "tuned_accuracy": t_acc, "baseline_accuracy": b_acc,
        "tuned_cost": tuned.ev.mean_cost, "baseline_cost": base.ev.mean_cost,
        "questions": n, "tuned_is_baseline": same_plan(tuned.level, base.level)}
    if objective == "accuracy":
        keep = mean > se_margin * se
        why = (f"tuned beats {name} by {mean:+.4f} > {se_margin:g} x SE {se:.4f}" if keep else
               f"tuned vs {name}: {mean:+.4f} <= {se_margin:g} x SE {se:.4f}: keep the fixed plan")
    else:
        if sign * base.value <= sign * tuned.value:
            keep = False
            why = (f"{name} is no worse on the training objective ({base.value:.4f} vs "
                   f"{tuned.value:.4f})")
        elif b_acc < float(target):  # type: ignore[arg-type]
            keep = True
            why = f"no baseline reaches the target {target:.4f} on train (best: {name})"
        else:
            low = t_acc - se_margin * se
            keep = low >= float(target)  # type: ignore[arg-type]
            why = (f"tuned accuracy {t_acc:.4f} - {se_margin:g} x SE {se:.4f} = {low:.4f} "
                   f"{'>=' if keep else '<'} target {target:.4f} (vs {name})")
        record["target"] = target
    chosen = "tuned" if keep else f"baseline:{name}"
    record["chosen"] = chosen
    record["reason"] = why
    return chosen, record


def baseline_params(data: TuneData, budget: float) -> list[dict[str, Any]]:
    """Trials that reproduce fixed plans, enqueued first so a study starts from them: the
    biggest small-model vote (no early stop), and escalating every prompt when affordable."""
    s = data.max_samples
    vote = {"max_tokens": 512, "probe": min(8, s), "wave": min(8, s), "max_samples": s,
            "stop_early": False, "score": "agreement"}
    out = [dict(vote)]
    affordable = [t for t in LARGE_MAX_TOKENS_CHOICES if large_price(data, t) <= budget]
    if data.has_large and affordable:
        out[0]["use_large"] = False
        out.append({**vote, "use_large": True, "large_max_tokens": affordable[-1],
                    "escalate_all": True})
    return out


CASCADE_EPS = 1e-9
"""A cascade keeps the small answer when agreement >= escalate_below; as a `Level` that is
difficulty logit (escalate_below - CASCADE_EPS) - agreement < 0 (agreements of votes over
<= 1e6 samples that differ from escalate_below differ by far more than this)."""


def level_of_strategy(strategy: Any, **extra: Any) -> Level | None:
    """The `Level` that runs exactly `strategy` (a Vote, Escalate or Cascade), or None.

    Vote(max_samples, wave, ...) is an adaptive vote that never escalates with probe = wave;
    Escalate is a level that sends every prompt to the large model (direct_above 0);
    Cascade(escalate_below=e) escalates when the agreement difficulty model says
    agreement < e (its probe weights are (e - CASCADE_EPS, -1, 0, ...), threshold 0.5).
    `extra` sets other Level fields (e.g. from_budget).
    """
    from tts.strategies import Cascade

    zeros = (0.0,) * (len(AGREEMENT_WEIGHTS) - 2)
    if isinstance(strategy, Vote):
        if strategy.role != "small":
            return None
        return Level(probe=strategy.wave, wave=strategy.wave, max_samples=strategy.max_samples,
                     max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                     confidence=strategy.confidence, use_large=False,
                     probe_weights=AGREEMENT_WEIGHTS, **extra)
    if isinstance(strategy, Escalate):
        return Level(use_large=True, direct_above=0.0, large_samples=strategy.samples,
                     large_max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                     probe_weights=AGREEMENT_WEIGHTS, **extra)
    if isinstance(strategy, Cascade):
        return Level(probe=strategy.wave, wave=strategy.wave, max_samples=strategy.max_samples,
                     max_tokens=strategy.max_tokens, temperature=strategy.temperature,
                     confidence=strategy.confidence, use_large=True, escalate_above=0.5,
                     escalate_early_above=1.0, direct_above=1.0,
                     large_samples=strategy.large_samples,
                     large_max_tokens=strategy.large_max_tokens,
                     keep_for_large=strategy.keep_for_large,
                     probe_weights=(strategy.escalate_below - CASCADE_EPS, -1.0, *zeros),
                     **extra)
    return None


def sweep_fixed_plans(data: TuneData) -> dict[str, Any]:
    """The fixed strategies `tts sweep` compares against by default (its vote@N sizes, `vote`,
    `escalate`, `cascade`, with the sweep's settings), for a bank holding `data.max_samples`
    small samples per question; `chain` is left out (no Level runs it)."""
    from tts.strategies import Cascade
    from tts.sweep_plans import VOTE_SIZES

    fits = data.max_samples
    sizes = [n for n in VOTE_SIZES if n <= fits]
    if fits not in sizes:
        sizes.append(fits)
    cap = min(16, fits)
    plans: dict[str, Any] = {f"vote@{n}": Vote(max_samples=n, wave=n, confidence=1.0)
                             for n in sizes}
    plans["vote"] = Vote(max_samples=cap)
    if data.has_large:
        plans["escalate"] = Escalate()
        plans["cascade"] = Cascade(max_samples=cap)
    return plans


def baseline_levels(data: TuneData, budget: float) -> list[tuple[str, Level]]:
    """Named fixed plans as levels, for the selection guard: the sweep's fixed strategies
    reproduced exactly (`sweep_fixed_plans`), then the study's enqueued `baseline_params`
    ("tuner-vote", "tuner-escalate") where they differ from all of those."""
    out: list[tuple[str, Level]] = []
    for name, strategy in sweep_fixed_plans(data).items():
        lv = level_of_strategy(strategy)
        if lv is not None:
            out.append((name, lv))
    import optuna

    for params in baseline_params(data, budget):
        lv = replace(suggest_level(optuna.trial.FixedTrial(params), data, budget), from_budget=0.0)
        if not any(same_plan(lv, other) for _, other in out):
            out.append(("tuner-escalate" if lv.direct_above == 0.0 else "tuner-vote", lv))
    return out


def same_plan(a: Level, b: Level) -> bool:
    """Whether two levels run the same plan (escalate-all levels differ only in what they
    would do with the small model, which they never use)."""
    if a.use_large and b.use_large and a.direct_above == 0.0 and b.direct_above == 0.0:
        return (a.large_samples, a.large_max_tokens, a.temperature) == \
            (b.large_samples, b.large_max_tokens, b.temperature)
    return replace(a, from_budget=0.0) == replace(b, from_budget=0.0)
