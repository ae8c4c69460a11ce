"""The one tuner's entry point (`run_tune`): per budget, the k-fold held-out report of the
tuning procedure (`tune_ladder` on each outer training split, scored on its held-out
questions), the deployable policy tuned the same way on every question, and what that
deployed plan itself is expected to score (cross-fitted: rebuilt on each outer training split
and scored on its held-out questions), so the report describes the policy it ships."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import optuna

from tts.errors import ValidationError
from tts.evaluate import BankArrays, evaluate
from tts.measures import mean_ci95
from tts.policy import CrossFitPolicy, LadderLevel, LadderPolicy
from tts.strategies.ladder import Ladder, Rung
from tts.types import ladder_roles
from tts.tuning.data import LadderData, parse_ladder, top_rung
from tts.tuning.folds import group_folds
from tts.tuning.nested import tune_ladder
from tts.tuning.search import FORMAT, Candidate, TuneRun, score_plan
from tts.tuning.space import baselines, suggest_rungs

DEFAULT_BUDGET = 262144.0


def default_ladder(arrays: BankArrays) -> tuple[str, ...]:
    """The ladder `tts tune` uses when none is named: the bank's small and large models."""
    if "large" not in arrays.models:
        raise ValidationError(
            f"tts tune needs a ladder of at least two models, cheapest first; this bank has "
            f"only {sorted(arrays.bank.models)} (roles {dict(arrays.models)}). Build a bank with "
            f"a large model too (tts bank build --model ... ), or name the models with "
            f"--ladder MODEL,MODEL.", parameter="ladder")
    return (arrays.models["small"], arrays.models["large"])


def run_tune(arrays: BankArrays, ladder: Sequence[str] | None = None, *,
             objective: str = "cost", budgets: Sequence[float] = (DEFAULT_BUDGET,),
             target: float | None = None, trials: int = 300, folds: int = 5,
             group_by: str = "question", seeds: Sequence[int] = (0, 1, 2),
             heldout_seeds: Sequence[int] = (100, 101, 102), count_prompt: bool = True,
             max_cost_share: float | None = None, margin: float | None = None,
             split_seed: int = 0, sampler_seed: int = 0, storage: Any = None,
             study_name: str | None = None,
             progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Tune one level per budget of `budgets` (increasing); returns {"report": held-out report,
    "policy": the deployable LadderPolicy, "crossfit": the outer folds' policies in one}."""
    t0 = time.perf_counter()
    budgets = [float(b) for b in budgets]
    if not budgets or any(b <= a for a, b in zip(budgets, budgets[1:])):
        raise ValidationError(f"budgets must be increasing, got {budgets}.",
                              parameter="budgets")
    entries = tuple(str(e).strip() for e in (ladder or default_ladder(arrays)))
    models, slots = parse_ladder(entries)
    arrays, dropped = _questions(arrays.with_ladder(models), models, slots)
    parts = group_folds(arrays, folds, group_by, split_seed)
    per_budget, finals, fold_runs = [], [], []
    for b in budgets:
        what = "" if len(budgets) == 1 else f"budget {b:g}, "
        report, final, runs = _tune_budget(
            arrays, entries, parts, b, objective=objective, target=target, trials=trials,
            group_by=group_by, seeds=seeds, heldout_seeds=heldout_seeds,
            count_prompt=count_prompt, max_cost_share=max_cost_share, margin=margin,
            split_seed=split_seed, sampler_seed=sampler_seed, storage=storage,
            study_name=None if study_name is None or len(budgets) == 1
            else f"{study_name}-b{b:g}", progress=progress, what=what)
        per_budget.append(report)
        finals.append(final)
        fold_runs.append(runs)
    notes = {"objective": objective, "ladder": list(entries), "budgets": budgets,
             "count_prompt": count_prompt, "trained_on": len(arrays),
             "train_ids": list(arrays.problem_ids)}
    policy = _stack(models, finals, budgets, notes)
    crossfit = CrossFitPolicy(
        [_stack(models, [runs[f] for runs in fold_runs], budgets,
                {**notes, "trained_on": len(arrays) - len(held), "train_ids": [
                    arrays.problem_ids[i] for i in np.setdiff1d(np.arange(len(arrays)), held)]})
         for f, held in enumerate(parts)],
        [[arrays.problem_ids[i] for i in held] for held in parts])
    report = {"format": FORMAT, "objective": objective, "ladder": list(entries),
              "budget": budgets[0], "budgets": budgets, "folds": folds, "group_by": group_by,
              "trials": trials, "train_seeds": list(seeds), "heldout_seeds": list(heldout_seeds),
              "count_prompt": count_prompt, "max_cost_share": max_cost_share,
              "questions": len(arrays),
              **({"questions_without_every_rung": dropped} if slots is not None else {}),
              **per_budget[0]}
    if len(budgets) > 1:
        report["by_budget"] = per_budget
    report["elapsed_s"] = round(time.perf_counter() - t0, 2)
    return {"report": report, "policy": policy, "crossfit": crossfit}


def _questions(arrays: BankArrays, models: tuple[str, ...],
               slots: Any) -> tuple[BankArrays, int]:
    """The questions a ladder of named rungs can be tuned on (those holding every named
    rung's mode), and how many were left out."""
    if slots is None:
        return arrays, 0
    roles = ladder_roles(len(models))
    keep = np.ones(len(arrays), bool)
    for role, mode in slots:
        if mode is not None:
            keep &= arrays.mode(models[roles.index(role)], mode).size > 0
    dropped = int((~keep).sum())
    return (arrays.subset(np.flatnonzero(keep)) if dropped else arrays), dropped


def _stack(models: tuple[str, ...], runs: Sequence[TuneRun], budgets: Sequence[float],
           notes: dict[str, Any]) -> LadderPolicy:
    """One policy of each budget's chosen rungs (the first level from budget 0)."""
    levels = tuple(LadderLevel(0.0 if i == 0 else b, run.chosen.rungs)  # type: ignore[union-attr]
                   for i, (b, run) in enumerate(zip(budgets, runs)))
    first = runs[0]
    chosen = [{"budget": b, "chosen": r.chosen.name, "margin": r.margin,  # type: ignore
               "max_cost_share": r.max_cost_share} for b, r in zip(budgets, runs)]
    return LadderPolicy(models, levels, first.data.prompt, {**notes, "levels": chosen})


def _tune_budget(arrays: BankArrays, entries: tuple[str, ...], parts: list[np.ndarray],
                 budget: float, *, objective: str, target: float | None, trials: int,
                 group_by: str, seeds: Sequence[int], heldout_seeds: Sequence[int],
                 count_prompt: bool, max_cost_share: float | None, margin: float | None,
                 split_seed: int, sampler_seed: int, storage: Any, study_name: str | None,
                 progress: Callable[[str, int], None] | None, what: str
                 ) -> tuple[dict[str, Any], TuneRun, list[TuneRun]]:
    """One budget: the outer folds' held-out numbers, the deployed run on every question, and
    the deployed plan's cross-fitted numbers."""
    folds = len(parts)
    models = arrays.models
    correct, cost, top_c, top_cost = [], [], [], []
    per_tier: dict[str, list] = {m: [] for m in models.values()}
    fold_reports, runs = [], []
    common = dict(objective=objective, budget=budget, target=target, trials=trials,
                  seeds=seeds, count_prompt=count_prompt, max_cost_share=max_cost_share,
                  group_by=group_by, margin=margin, storage=storage)
    for f, held in enumerate(parts):
        train = np.setdiff1d(np.arange(len(arrays)), held)
        cb = None if progress is None else (
            lambda n, f=f: progress(f"{what}fold {f + 1}/{folds}", n))
        run = tune_ladder(arrays.subset(train), entries, sampler_seed=sampler_seed + 1000 * f,
                          split_seed=split_seed + f, progress=cb, study_name=None
                          if study_name is None else f"{study_name}-fold{f}of{folds}", **common)
        runs.append(run)
        held_arrays = arrays.subset(held)
        ev = score_plan(run.data, run.chosen.rungs, heldout_seeds, held_arrays)  # type: ignore
        top = _top(run.data, held_arrays, heldout_seeds)
        correct.append(ev.correct.mean(0))
        cost.append(ev.cost.mean(0))
        top_c.append(top.correct.mean(0))
        top_cost.append(top.cost.mean(0))
        for m in per_tier:
            per_tier[m].append((ev.tokens[m] > 0).mean(0))
        fold_reports.append({"fold": f, "heldout": len(held), "chosen": run.chosen.name,
                             "margin": run.margin, "rule": run.rule,
                             "selection": run.selection,
                             "policy": [LadderLevel(0.0, run.chosen.rungs).to_dict()],
                             "heldout_accuracy": ev.accuracy,
                             "heldout_cost_share": share(ev.mean_cost, top.mean_cost)})
    c, k, tc, tk = (np.concatenate(x) for x in (correct, cost, top_c, top_cost))
    final = tune_ladder(arrays, entries, sampler_seed=sampler_seed, split_seed=split_seed,
                        study_name=None if study_name is None else f"{study_name}-all",
                        **common)
    report = {"heldout": {"accuracy": float(c.mean()), "mean_cost": float(k.mean()),
                          "large_greedy_accuracy": float(tc.mean()),
                          "large_only_cost": float(tk.mean()),
                          "cost_share_of_large_only": share(k.mean(), tk.mean()),
                          "accuracy_ci95": mean_ci95(c),
                          "per_tier_share_of_questions": {
                              m: float(np.concatenate(v).mean()) for m, v in per_tier.items()}},
              "folds_detail": fold_reports,
              "studies": [{"name": r.study_name, "trials": r.trials} for r in (*runs, final)
                          if r.study_name],
              "deployed": {"chosen": final.chosen.name, "margin": final.margin,  # type: ignore
                           "rule": final.rule, "selection": final.selection,
                           **_deployed_numbers(arrays, final, runs, parts, heldout_seeds)}}
    return report, final, runs


def share(cost: float, top_cost: float) -> float:
    """A mean cost as a share of the top model's (nan where the budget affords no top-model
    answer: then there is no share; reports write it as null)."""
    return float(cost / top_cost) if top_cost > 0 else float("nan")


def _top(data: LadderData, arrays: BankArrays, seeds: Sequence[int]):
    return evaluate(arrays, Ladder(rungs=(top_rung(data.greedy["large"]),)), data.budget,
                    seeds, count_prompt=data.count_prompt)


def _deployed_numbers(arrays: BankArrays, final: TuneRun, runs: Sequence[TuneRun],
                      parts: list[np.ndarray], seeds: Sequence[int]) -> dict[str, Any]:
    """What the deployed plan scores: cross-fitted (its plan rebuilt on each outer training
    split, so its fitted parts, the prompt model and learned climb scores, never saw the
    question, and scored on that split's held-out questions) and, for comparison, in-sample
    (the deployed policy itself on every question, which it was tuned on)."""
    chosen: Candidate = final.chosen  # type: ignore[assignment]
    correct, cost, top_cost = [], [], []
    for run, held in zip(runs, parts):
        held_arrays = arrays.subset(held)
        rungs = _rebuilt(chosen, run.data)
        ev = score_plan(run.data, rungs, seeds, held_arrays)
        correct.append(ev.correct.mean(0))
        cost.append(ev.cost.mean(0))
        top_cost.append(_top(run.data, held_arrays, seeds).cost.mean(0))
    c, k, tk = (np.concatenate(x) for x in (correct, cost, top_cost))
    inside = score_plan(final.data, chosen.rungs, seeds)
    top = _top(final.data, arrays, seeds)
    return {"expected_heldout": {"accuracy": float(c.mean()), "accuracy_ci95": mean_ci95(c),
                                 "cost_share_of_large_only": share(k.mean(), tk.mean()),
                                 "how": "the deployed plan rebuilt on each outer training "
                                        "split, scored on its held-out questions"},
            "in_sample": {"accuracy": inside.accuracy,
                          "cost_share_of_large_only": share(inside.mean_cost, top.mean_cost)}}


def _rebuilt(chosen: Candidate, data: LadderData) -> tuple[Rung, ...]:
    """The chosen candidate's plan on other training questions: the same trial parameters
    or the same fixed plan, with that data's fitted scores."""
    if chosen.params is not None:
        return suggest_rungs(optuna.trial.FixedTrial(chosen.params), data)
    return baselines(data)[chosen.name]
