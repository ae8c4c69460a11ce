"""Tune a policy with Optuna on a train split and report it on questions it never saw.

    tts tune --objective accuracy --budgets 512,2048,131072 --trials 300 --folds 5 --out DIR
    tts tune --objective cost --budget 262144 --storage sqlite:///tune.db --out DIR

Protocol (never report on tuned-on questions):

* Questions are split by id: `--heldout-fraction F` (one train / held-out split) or
  `--folds K` (K-fold: every question is held out exactly once, by a policy tuned on the
  others; the report is the out-of-fold estimate).
* On the train questions only: the prompt difficulty model and the probe difficulty model are
  fitted (`tts.difficulty`), then an Optuna study searches the `Level` parameters
  (`suggest_level`: wave sizes, sample caps, token caps, stop rule, escalation thresholds),
  scoring each trial with the vectorised evaluator over `seeds` sample orders.
* The best trials are re-scored on the train questions with twice the seeds, and the best of
  those must then pass a model-selection guard (`select`, the one-standard-error rule of
  Breiman et al. 1984 / Hastie, Tibshirani & Friedman, ESL 7.10): the tuned winner is paired,
  question by question, with the best fixed plan (`baseline_levels`: the sweep's fixed
  strategies reproduced exactly, plus the study's enqueued baselines) on the same questions and
  seeds, and kept only when its mean per-question gain exceeds `se_margin` standard errors;
  otherwise the baseline is the level. Among many near-equal trials the best on ~hundreds of
  questions is partly luck (the winner's curse); the guard keeps that luck from costing
  held-out accuracy against the plans the sweep compares with.
* The chosen level becomes the policy; it is evaluated on the held-out questions with other
  seeds (`heldout_seeds`).

Objectives: "accuracy" (max accuracy at the budget; ties -> cheaper), "cost" (min mean cost
subject to accuracy >= target; default target: the large model's own accuracy on the train
questions, i.e. "match GPT-4 for less"), "pareto" (NSGA-II over accuracy and cost; the report
evaluates every front member held-out). With several `--budgets`, one level is tuned per
budget ("accuracy" objective) and stacked into one policy.

Studies persist in any Optuna RDB storage (`--storage sqlite:///tune.db`); a study records a
fingerprint of its data and settings, resumes where it stopped (only the missing trials run)
and can be shared by several workers running the same command.

This module runs the studies and the protocol above. The data and search space are
`tts.tune_space`, the selection guard `tts.tune_select`, study storage `tts.studies`, the
command `tts.tune_cli`, and ladder policies `tts.tune_ladder`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tts.budgets import check_budget
from tts.errors import ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.policy import CrossFitPolicy, Level, ParamPolicy
from tts.strategies import Escalate
from tts.studies import check_storage, claim_study, open_storage  # noqa: F401 (tts.tune API)
from tts.tune_select import (SE_MARGIN, Scored, baseline_levels, baseline_params, check_margin,
                             extended_seeds, select)
from tts.tune_space import (OBJECTIVES, TuneData, objective_values, policy_of_levels, prepare,
                            suggest_level)

__all__ = ["LevelResult", "tune_level", "tune_policy", "selection_summary", "split",
           "heldout_numbers", "crossfit", "run_tune", "FORMAT",
           "check_storage", "open_storage"]  # the last two live in tts.studies

FORMAT = "tts-tune/1"


@dataclass
class LevelResult:
    level: Level
    """The chosen level (the tuned winner, or the baseline the guard fell back on)."""
    value: Any
    trials: int
    study_name: str
    front: list[Level] = field(default_factory=list)
    """Pareto objective: every level on the front (best accuracy first)."""
    chosen: str = "tuned"
    """"tuned" or "baseline:<name>" (see `selection` for why)."""
    tuned_level: Level | None = None
    """The re-ranked study winner, whether or not the guard kept it."""
    selection: dict[str, Any] = field(default_factory=dict)
    """The guard's record on the training questions: chosen, baseline, mean_diff, se,
    se_margin, accuracies and costs of both, questions, seeds, reason (`select`)."""


def tune_level(data: TuneData, budget: float, *, objective: str = "accuracy",
               target: float | None = None, trials: int = 200, sampler_seed: int = 0,
               storage: Any = None, study_name: str | None = None, from_budget: float = 0.0,
               progress: Callable[[int], None] | None = None, rerank: int = 10,
               se_margin: float | None = SE_MARGIN) -> LevelResult:
    """Run (or resume) one study; the best level for `budget` under `objective`.

    The study starts from `baseline_params` (fixed plans); the `rerank` best trials are then
    re-scored on the training questions with twice the seeds and the best of those is the
    tuned winner. Unless `se_margin` is None, the winner must then beat the best of
    `baseline_levels` by more than `se_margin` standard errors of the paired per-question
    difference (accuracy objective; `select` has the cost objective's rule), else that
    baseline is returned. The Pareto objective has no guard.
    """
    import optuna

    if objective not in OBJECTIVES:
        raise ValidationError(f"`objective` must be one of {list(OBJECTIVES)}, got "
                              f"{objective!r}.", parameter="objective", value=objective)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValidationError(f"`trials` must be an integer >= 1, got {trials!r}.",
                              parameter="trials", value=trials)
    check_margin(se_margin)
    if objective == "cost":
        target = data.large_accuracy if target is None else target
        if target is None or not 0.0 < target <= 1.0:
            raise ValidationError(f"the cost objective needs a target accuracy in (0, 1], got "
                                  f"{target!r} (no large model to default to).",
                                  parameter="target_accuracy", value=target)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or f"tts-{objective}-{budget:g}-{data.fingerprint}"
    if objective == "pareto":
        sampler = optuna.samplers.NSGAIISampler(seed=sampler_seed)
        directions = ["maximize", "minimize"]
    else:
        sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=min(20, trials))
        directions = ["maximize" if objective == "accuracy" else "minimize"]
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                directions=directions, load_if_exists=True)
    claim_study(study, name, {"fingerprint": data.fingerprint, "objective": objective,
                              "budget": budget, "target": target, "from_budget": from_budget})

    def run(trial: optuna.trial.Trial):
        level = suggest_level(trial, data, budget, from_budget)
        ev = evaluate(data.arrays, policy_of_levels(data, [replace(level, from_budget=0.0)]),
                      budget, data.seeds, count_prompt=data.count_prompt)
        trial.set_user_attr("accuracy", ev.accuracy)
        trial.set_user_attr("cost", ev.mean_cost)
        return objective_values(objective, ev.accuracy, ev.mean_cost, data, target)

    def done() -> int:
        return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(
            deepcopy=False))

    callbacks = [optuna.study.MaxTrialsCallback(trials,
                                                states=(optuna.trial.TrialState.COMPLETE,))]
    if progress is not None:
        progress(done())
        callbacks.append(lambda s, t: progress(done()))
    if not study.get_trials(deepcopy=False):
        for params in baseline_params(data, budget)[:trials]:
            study.enqueue_trial(params)
    remaining = trials - done()
    if remaining > 0:
        study.optimize(run, n_trials=remaining, callbacks=callbacks)

    def level_of(t) -> Level:
        return suggest_level(optuna.trial.FixedTrial(t.params), data, budget, from_budget)

    if objective == "pareto":
        front = sorted(study.best_trials, key=lambda t: (-t.values[0], t.values[1]))
        levels = [level_of(t) for t in front]
        return LevelResult(levels[0], [t.values for t in front], done(), name, levels)
    # Winner's curse: the best of many near-equal trials is partly luck of the training
    # sample orders. Re-score the top trials on the training questions with more seeds.
    complete = [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE]
    sign = -1.0 if objective == "accuracy" else 1.0
    top = sorted(complete, key=lambda t: (sign * t.value, t.number))[:rerank]
    seeds = extended_seeds(data)

    def score(level: Level) -> Scored:
        ev = evaluate(data.arrays, policy_of_levels(data, [replace(level, from_budget=0.0)]),
                      budget, seeds, count_prompt=data.count_prompt)
        return Scored(level, ev, objective_values(objective, ev.accuracy, ev.mean_cost, data,
                                                  target))  # type: ignore[arg-type]

    best: Scored | None = None
    for t in top:
        got = score(level_of(t))
        if best is None or sign * got.value < sign * best.value:
            best = got
    assert best is not None
    if se_margin is None:
        return LevelResult(best.level, best.value, done(), name, tuned_level=best.level,
                           selection={"chosen": "tuned", "reason": "guard off (se_margin None)"})
    baselines = {nm: score(replace(lv, from_budget=from_budget))
                 for nm, lv in baseline_levels(data, budget)}
    chosen, record = select(objective, best, baselines, se_margin, target)
    record["seeds"] = list(seeds)
    pick = best if chosen == "tuned" else baselines[chosen.split(":", 1)[1]]
    return LevelResult(pick.level, pick.value, done(), name, chosen=chosen,
                       tuned_level=best.level, selection=record)


def tune_policy(data: TuneData, budgets: Sequence[float], *, objective: str = "accuracy",
                target: float | None = None, trials: int = 200, sampler_seed: int = 0,
                storage: Any = None, study_prefix: str | None = None,
                progress: Callable[[str, int], None] | None = None,
                notes: Mapping | None = None, se_margin: float | None = SE_MARGIN
                ) -> tuple[ParamPolicy, list[LevelResult]]:
    """One study per budget; level i serves budgets from budgets[i] (the first from 0).

    The policy's notes record the selection guard's choice per level ("selection")."""
    check_margin(se_margin)
    results = []
    for i, b in enumerate(budgets):
        start = 0.0 if i == 0 else float(b)
        name = None if study_prefix is None else f"{study_prefix}-b{b:g}"
        cb = None if progress is None else (lambda n, b=b: progress(f"budget {b:g}", n))
        results.append(tune_level(data, float(b), objective=objective, target=target,
                                  trials=trials, sampler_seed=sampler_seed + i, storage=storage,
                                  study_name=name, from_budget=start, progress=cb,
                                  se_margin=se_margin))
    notes = dict(notes or {})
    notes["selection"] = [{"budget": float(b), **selection_summary(r)}
                          for b, r in zip(budgets, results)]
    policy = policy_of_levels(data, [r.level for r in results], notes)
    return policy, results


def selection_summary(r: LevelResult) -> dict[str, Any]:
    """JSON-ready guard record of one tuned level (chosen, baseline, mean_diff, se, ...)."""
    keys = ("chosen", "baseline", "mean_diff", "se", "se_margin", "tuned_accuracy",
            "baseline_accuracy", "tuned_cost", "baseline_cost", "target", "questions",
            "tuned_is_baseline", "reason")
    sel = r.selection or {"chosen": r.chosen}
    return {k: sel[k] for k in keys if k in sel}


# ---- splits and held-out reports -----------------------------------------------------------
def split(n: int, heldout_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) index arrays of a seeded shuffle; both must hold >= 2 questions."""
    if isinstance(heldout_fraction, bool) or not isinstance(heldout_fraction, (int, float)) \
            or not 0.0 < heldout_fraction < 1.0:
        raise ValidationError(f"`heldout_fraction` must be in (0, 1), got {heldout_fraction!r}.",
                              parameter="heldout_fraction", value=heldout_fraction)
    k = int(round(n * heldout_fraction))
    if k < 2 or n - k < 2:
        raise ValidationError(f"a bank of {n} questions is too small to split with held-out "
                              f"fraction {heldout_fraction}: both parts need >= 2 questions "
                              f"(would be {n - k} train, {k} held-out).",
                              parameter="heldout_fraction", value=heldout_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def heldout_numbers(arrays: BankArrays, policy: Any, budget: float, seeds: Sequence[int],
                    count_prompt: bool) -> dict[str, Any]:
    ev = evaluate(arrays, policy, budget, seeds, count_prompt=count_prompt)
    out = {"budget": budget, "questions": len(arrays), "seeds": list(seeds),
           "accuracy": ev.accuracy, "mean_cost": ev.mean_cost,
           "escalation_rate": ev.escalation_rate,
           "mean_small_samples": float(ev.small_samples.mean())}
    if "large" in arrays.models:
        ref = evaluate(arrays, Escalate(), budget, seeds, count_prompt=count_prompt)
        out["large_only_accuracy"] = ref.accuracy
        out["large_only_cost"] = ref.mean_cost
        out["cost_share_of_large_only"] = (ev.mean_cost / ref.mean_cost if ref.mean_cost
                                           else math.nan)
    return out


def crossfit(arrays: BankArrays, budgets: Sequence[float], *, folds: int = 5,
             objective: str = "accuracy", target: float | None = None, trials: int = 200,
             seeds: Sequence[int] = (0, 1, 2), split_seed: int = 0, sampler_seed: int = 0,
             count_prompt: bool = False, storage: Any = None, study_prefix: str | None = None,
             progress: Callable[[str, int], None] | None = None,
             se_margin: float | None = SE_MARGIN
             ) -> tuple[CrossFitPolicy, list[list[LevelResult]]]:
    """K-fold tuning: fold f's policy is tuned on the other folds' questions only."""
    from tts.difficulty import kfold

    parts = kfold(len(arrays), folds, split_seed)
    policies, results = [], []
    for f, held in enumerate(parts):
        train = np.setdiff1d(np.arange(len(arrays)), held)
        data = prepare(arrays.subset(train), seeds=seeds, count_prompt=count_prompt)
        prefix = None if study_prefix is None else f"{study_prefix}-fold{f}of{folds}"
        cb = None if progress is None else (lambda what, n, f=f: progress(
            f"fold {f + 1}/{folds} {what}", n))
        notes = {"train_ids": [arrays.problem_ids[i] for i in train], "fold": f}
        pol, res = tune_policy(data, budgets, objective=objective, target=target, trials=trials,
                               sampler_seed=sampler_seed + 1000 * f, storage=storage,
                               study_prefix=prefix, progress=cb, notes=notes,
                               se_margin=se_margin)
        policies.append(pol)
        results.append(res)
    heldout_ids = [[arrays.problem_ids[i] for i in held] for held in parts]
    return CrossFitPolicy(policies, heldout_ids), results


def run_tune(arrays: BankArrays, *, objective: str = "accuracy",
             budgets: Sequence[float] = (262144.0,), target: float | None = None,
             trials: int = 200, folds: int | None = None, heldout_fraction: float = 0.3,
             seeds: Sequence[int] = (0, 1, 2), heldout_seeds: Sequence[int] = (100, 101, 102),
             split_seed: int = 0, sampler_seed: int = 0, count_prompt: bool = False,
             storage: str | None = None, study_name: str | None = None,
             progress: Callable[[str, int], None] | None = None,
             se_margin: float | None = SE_MARGIN) -> dict[str, Any]:
    """Tune and report held-out; returns {"policy": ParamPolicy, "report": dict, ...}.

    `report["selection"]` holds, per budget (and per fold with `folds`), the guard's choice
    on the training questions ("tuned" or "baseline:<name>", mean diff, SE); each held-out
    entry repeats the choice(s) under "chosen"."""
    check_margin(se_margin)
    budgets = [check_budget(b, "budgets") for b in budgets]
    if not budgets or any(not b > 0 for b in budgets) or sorted(set(budgets)) != budgets:
        raise ValidationError(f"budgets must be positive and strictly increasing, got "
                              f"{budgets}.", parameter="budgets", value=budgets)
    if objective != "accuracy" and len(budgets) != 1:
        raise ValidationError(f"the {objective!r} objective tunes one budget; got {len(budgets)}"
                              f" (several budgets stack levels for the 'accuracy' objective).",
                              parameter="budgets", value=budgets)
    store = open_storage(storage)
    prefix = study_name or (None if store is None else f"tts-{objective}")
    report: dict[str, Any] = {"format": FORMAT, "objective": objective, "budgets": budgets,
                              "bank": arrays.bank.meta.name, "train_seeds": list(seeds),
                              "heldout_seeds": list(heldout_seeds),
                              "count_prompt": count_prompt, "trials_per_study": trials,
                              "se_margin": se_margin}
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    if folds is not None:
        cf, results = crossfit(arrays, budgets, folds=folds, objective=objective, target=target,
                               trials=trials, seeds=seeds, split_seed=split_seed,
                               sampler_seed=sampler_seed, count_prompt=count_prompt,
                               storage=store, study_prefix=prefix, progress=progress,
                               se_margin=se_margin)
        report["split"] = {"kind": "k-fold", "folds": folds, "split_seed": split_seed,
                           "note": "every question is scored by the fold policy not tuned on "
                                   "it (out-of-fold estimate)"}
        report["heldout"] = [heldout_numbers(arrays, cf, b, heldout_seeds, count_prompt)
                             for b in budgets]
        out["crossfit"] = cf
        # The policy to deploy: the same procedure on every question (its numbers are the
        # k-fold estimate above; it has no held-out questions of its own).
        data = prepare(arrays, seeds=seeds, count_prompt=count_prompt)
        final, _ = tune_policy(data, budgets, objective=objective, target=target, trials=trials,
                               sampler_seed=sampler_seed, storage=store,
                               study_prefix=None if prefix is None else f"{prefix}-all",
                               progress=None if progress is None else
                               (lambda what, n: progress(f"all questions {what}", n)),
                               notes={"train_ids": list(arrays.problem_ids)},
                               se_margin=se_margin)
        out["policy"] = final
    else:
        train, held = split(len(arrays), heldout_fraction, split_seed)
        data = prepare(arrays.subset(train), seeds=seeds, count_prompt=count_prompt)
        notes = {"train_ids": [arrays.problem_ids[i] for i in train]}
        policy, results_ = tune_policy(data, budgets, objective=objective, target=target,
                                       trials=trials, sampler_seed=sampler_seed, storage=store,
                                       study_prefix=prefix, progress=progress, notes=notes,
                                       se_margin=se_margin)
        results = [results_]
        held_arrays = arrays.subset(held)
        report["split"] = {"kind": "train/held-out", "heldout_fraction": heldout_fraction,
                           "train": len(train), "heldout": len(held), "split_seed": split_seed,
                           "heldout_ids": [arrays.problem_ids[i] for i in held]}
        report["heldout"] = [heldout_numbers(held_arrays, policy, b, heldout_seeds, count_prompt)
                             for b in budgets]
        if objective == "pareto":
            front = []
            for lv in results_[0].front:
                pol = policy_of_levels(data, [replace(lv, from_budget=0.0)])
                front.append({"level": lv.to_dict(), **heldout_numbers(
                    held_arrays, pol, budgets[0], heldout_seeds, count_prompt)})
            report["pareto_front_heldout"] = front
        out["policy"] = policy
    report["studies"] = [[{"name": r.study_name, "trials": r.trials} for r in rs]
                         for rs in results]
    # The guard's choices (made on training questions only), per budget and fold.
    report["selection"] = [{"budget": b, "folds" if folds is not None else "split":
                            [selection_summary(rs[i]) for rs in results]}
                           for i, b in enumerate(budgets)]
    for i, entry in enumerate(report["heldout"]):
        entry["chosen"] = [rs[i].chosen for rs in results]
    report["elapsed_s"] = round(time.perf_counter() - t0, 2)
    out["report"] = report
    return out
