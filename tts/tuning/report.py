"""The one tuner's entry point (`run_tune`): per budget, the k-fold held-out report of the
tuning procedure (`tune_ladder` on each outer training split, scored on its held-out
questions), the deployable policy tuned the same way on every question, and what that
deployed plan itself is expected to score (cross-fitted: rebuilt on each outer training split
and scored on its held-out questions), so the report describes the policy it ships.

Every held-out number comes with the disagreement with the top model's greedy answer (what
audits measure in deployment) and the worst group (`tts.tuning.heldout.worst_group`) beside
the mean. The policy's notes carry the deployed plan's expected numbers and a frontier of
safer plans (`tts.tuning.frontier`, `tts.policy.expected`) and, when the embedding model is
pulled, a summary of the training questions for the novelty alarm (`tts.novelty`). With
`reference="top"` the tuner scores every plan by its agreement with the top model instead of
gold (`tts.tuning.reference`); accuracies stay against gold where the bank has it."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from tts.errors import ValidationError
from tts.evaluate import BankArrays
from tts.novelty import novelty_notes
from tts.policy import CrossFitPolicy, LadderLevel, LadderPolicy
from tts.types import ladder_roles
from tts.tuning.folds import GroupBy, group_folds, group_labels, group_name
from tts.tuning.frontier import expected_of, frontier, plan_scores
from tts.tuning.heldout import Scores, crossfit_scores, share, summary, top_eval, worst_group
from tts.tuning.nested import tune_ladder
from tts.tuning.reference import agreement_arrays, check_reference, has_gold
from tts.tuning.data import parse_ladder
from tts.tuning.search import FORMAT, TuneRun, score_plan

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


class _Views:
    """The bank's questions as tuned (`tuned`: gold or agreement labels), on gold (None
    without gold) and on agreement with the top model, with their report groups."""

    def __init__(self, arrays: BankArrays, reference: str, group_by: GroupBy) -> None:
        top = arrays.models["large"]
        check_reference(arrays, reference, top)
        self.agree = agreement_arrays(arrays, top)
        self.gold = arrays if has_gold(arrays) else None
        self.tuned = self.agree if reference == "top" else arrays
        self.reference = reference
        # Folds by question hold no group out whole: the report's groups are then scenarios.
        self.whole = group_by != "question"
        self.group_by = group_name(group_by) if self.whole else "scenario"
        self.labels = group_labels(arrays, group_by if self.whole else "scenario")

    def worst(self, s: Scores) -> dict[str, Any]:
        return worst_group(s, self.labels, held_out_whole=self.whole, group_by=self.group_by)


def run_tune(arrays: BankArrays, ladder: Sequence[str] | None = None, *,
             objective: str = "cost", budgets: Sequence[float] = (DEFAULT_BUDGET,),
             target: float | None = None, trials: int = 300, folds: int = 5,
             group_by: GroupBy = "question", reference: str = "gold",
             seeds: Sequence[int] = (0, 1, 2),
             heldout_seeds: Sequence[int] = (100, 101, 102), count_prompt: bool = True,
             max_cost_share: float | None = None, margin: float | None = None,
             split_seed: int = 0, sampler_seed: int = 0, storage: Any = None,
             study_name: str | None = None,
             progress: Callable[[str, int], None] | None = None,
             prior: str = "prompt") -> dict[str, Any]:
    """Tune one level per budget of `budgets` (increasing); returns {"report": held-out report,
    "policy": the deployable LadderPolicy (its notes: `expected`, `frontier`), "crossfit":
    the outer folds' policies in one}. `group_by`: "question", "scenario" or a mapping
    question id -> group (folds hold groups out whole; the report names the worst one).
    `reference`: "gold", or "top" to tune for agreement with the top model's greedy answer.
    `prior`: the prompt prior, "prompt" features or a "router" on sentence embeddings (which
    the search may also use to skip rungs; `tts.tuning.priors`)."""
    t0 = time.perf_counter()
    budgets = [float(b) for b in budgets]
    if not budgets or any(b <= a for a, b in zip(budgets, budgets[1:])):
        raise ValidationError(f"budgets must be increasing, got {budgets}.",
                              parameter="budgets")
    entries = tuple(str(e).strip() for e in (ladder or default_ladder(arrays)))
    models, slots = parse_ladder(entries)
    arrays, dropped = _questions(arrays.with_ladder(models), models, slots)
    views = _Views(arrays, reference, group_by)
    if reference == "top" and objective == "cost" and target is None:
        raise ValidationError(
            "the cost objective matches the top model's score, and against the top model's "
            "own answers that is 100% agreement, which only the top model alone reaches; with "
            "--reference top give the agreement to reach (--target-accuracy, e.g. 0.95) or "
            "use --objective accuracy with --max-cost-share.", parameter="target")
    parts = group_folds(arrays, folds, group_by, split_seed)
    per_budget, finals, fold_runs, deployed = [], [], [], []
    for b in budgets:
        what = "" if len(budgets) == 1 else f"budget {b:g}, "
        report, final, runs, scores = _tune_budget(
            views, entries, parts, b, objective=objective, target=target, trials=trials,
            group_by=group_by, seeds=seeds, heldout_seeds=heldout_seeds,
            count_prompt=count_prompt, max_cost_share=max_cost_share, margin=margin,
            split_seed=split_seed, sampler_seed=sampler_seed, storage=storage,
            study_name=None if study_name is None or len(budgets) == 1
            else f"{study_name}-b{b:g}", progress=progress, what=what, prior=prior)
        per_budget.append(report)
        finals.append(final)
        fold_runs.append(runs)
        deployed.append(scores)
    expected = expected_of(deployed, budgets, reference)
    safer = frontier(finals, fold_runs, parts, views.gold, views.agree, budgets, heldout_seeds,
                     reference, expected, trials=trials, sampler_seed=sampler_seed,
                     storage=storage, study_name=study_name, progress=progress)
    novelty, novelty_how = novelty_notes(arrays.questions)
    notes = {"objective": objective, "reference": reference, "prior": prior,
             "ladder": list(entries),
             "budgets": budgets, "count_prompt": count_prompt, "trained_on": len(arrays),
             "train_ids": list(arrays.problem_ids)}
    policy = _stack(models, finals, budgets,
                    {**notes, "expected": expected, **({"frontier": safer} if safer else {}),
                     **({"novelty": novelty} if novelty else {})})
    crossfit = CrossFitPolicy(
        [_stack(models, [runs[f] for runs in fold_runs], budgets,
                {**notes, "trained_on": len(arrays) - len(held), "train_ids": [
                    arrays.problem_ids[i] for i in np.setdiff1d(np.arange(len(arrays)), held)]})
         for f, held in enumerate(parts)],
        [[arrays.problem_ids[i] for i in held] for held in parts])
    report = {"format": FORMAT, "objective": objective, "reference": reference,
              "ladder": list(entries), "budget": budgets[0], "budgets": budgets,
              "folds": folds, "group_by": group_name(group_by), "trials": trials,
              "train_seeds": list(seeds), "heldout_seeds": list(heldout_seeds),
              "count_prompt": count_prompt, "max_cost_share": max_cost_share,
              "questions": len(arrays),
              **({"questions_without_every_rung": dropped} if slots is not None else {}),
              **per_budget[0]}
    if len(budgets) > 1:
        report["by_budget"] = per_budget
    report["frontier"] = [{"name": e["name"], **{k: e["expected"].get(k) for k in (
        "accuracy", "cost_share", "disagreement", "disagreement_ci95")}} for e in safer]
    report["novelty"] = novelty_how
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


def _tune_budget(views: _Views, entries: tuple[str, ...], parts: list[np.ndarray],
                 budget: float, *, objective: str, target: float | None, trials: int,
                 group_by: GroupBy, seeds: Sequence[int], heldout_seeds: Sequence[int],
                 count_prompt: bool, max_cost_share: float | None, margin: float | None,
                 split_seed: int, sampler_seed: int, storage: Any, study_name: str | None,
                 progress: Callable[[str, int], None] | None, what: str, prior: str = "prompt"
                 ) -> tuple[dict[str, Any], TuneRun, list[TuneRun], Scores]:
    """One budget: the outer folds' held-out numbers, the deployed run on every question, and
    the deployed plan's cross-fitted scores."""
    arrays = views.tuned
    folds = len(parts)
    runs = []
    common = dict(objective=objective, budget=budget, target=target, trials=trials,
                  seeds=seeds, count_prompt=count_prompt, max_cost_share=max_cost_share,
                  group_by=group_by, margin=margin, storage=storage, prior=prior)
    for f, held in enumerate(parts):
        train = np.setdiff1d(np.arange(len(arrays)), held)
        cb = None if progress is None else (
            lambda n, f=f: progress(f"{what}fold {f + 1}/{folds}", n))
        runs.append(tune_ladder(arrays.subset(train), entries,
                                sampler_seed=sampler_seed + 1000 * f, split_seed=split_seed + f,
                                progress=cb, study_name=None if study_name is None
                                else f"{study_name}-fold{f}of{folds}", **common))
    proc = crossfit_scores(views.gold, views.agree, parts,
                           [(r.data, r.chosen.rungs) for r in runs],  # type: ignore[union-attr]
                           heldout_seeds)
    fold_reports = []
    for f, (run, held) in enumerate(zip(runs, parts)):
        fold_reports.append({
            "fold": f, "heldout": len(held), "chosen": run.chosen.name,  # type: ignore
            "margin": run.margin, "rule": run.rule, "selection": run.selection,
            "policy": [LadderLevel(0.0, run.chosen.rungs).to_dict()],  # type: ignore
            "heldout_accuracy": None if proc.correct is None
            else float(proc.correct[held].mean()),
            "heldout_disagreement": float(1.0 - proc.agree[held].mean()),
            "heldout_cost_share": share(proc.cost[held].mean(), proc.top_cost[held].mean())})
    final = tune_ladder(arrays, entries, sampler_seed=sampler_seed, split_seed=split_seed,
                        study_name=None if study_name is None else f"{study_name}-all",
                        **common)
    top = None if views.gold is None else top_eval(final.data, views.gold, heldout_seeds)
    mine = summary(proc)
    report = {"heldout": {"accuracy": mine["accuracy"], "mean_cost": float(proc.cost.mean()),
                          "large_greedy_accuracy": None if top is None else top.accuracy,
                          "large_only_cost": float(proc.top_cost.mean()),
                          "cost_share_of_large_only": mine["cost_share"],
                          "accuracy_ci95": mine["accuracy_ci95"],
                          "disagreement": mine["disagreement"],
                          "disagreement_ci95": mine["disagreement_ci95"],
                          "worst_group": views.worst(proc),
                          "per_tier_share_of_questions": {
                              m: float(v.mean()) for m, v in (proc.tiers or {}).items()}},
              "folds_detail": fold_reports,
              "studies": [{"name": r.study_name, "trials": r.trials} for r in (*runs, final)
                          if r.study_name]}
    report["budget"] = budget
    scores = plan_scores(final.chosen, runs, parts, views.gold, views.agree,  # type: ignore
                         heldout_seeds)
    report["deployed"] = {"chosen": final.chosen.name, "margin": final.margin,  # type: ignore
                          "rule": final.rule, "selection": final.selection,
                          **_deployed_numbers(views, final, scores, heldout_seeds)}
    return report, final, runs, scores


def _deployed_numbers(views: _Views, final: TuneRun, scores: Scores,
                      seeds: Sequence[int]) -> dict[str, Any]:
    """What the deployed plan scores: cross-fitted (`scores`: its plan rebuilt on each outer
    training split, so its fitted parts, the prompt model and learned climb scores, never
    saw the question, and scored on that split's held-out questions) and, for comparison,
    in-sample (the deployed policy itself on every question, which it was tuned on)."""
    rungs = final.chosen.rungs  # type: ignore[union-attr]
    mine = summary(scores)
    inside = score_plan(final.data, rungs, seeds, views.agree)
    gold = None if views.gold is None else score_plan(final.data, rungs, seeds, views.gold)
    top = top_eval(final.data, views.agree, seeds)
    return {"expected_heldout": {"accuracy": mine["accuracy"],
                                 "accuracy_ci95": mine["accuracy_ci95"],
                                 "cost_share_of_large_only": mine["cost_share"],
                                 "disagreement": mine["disagreement"],
                                 "disagreement_ci95": mine["disagreement_ci95"],
                                 "worst_group": views.worst(scores),
                                 "how": "the deployed plan rebuilt on each outer training "
                                        "split, scored on its held-out questions"},
            "in_sample": {"accuracy": None if gold is None else gold.accuracy,
                          "disagreement": 1.0 - inside.accuracy,
                          "cost_share_of_large_only": share(inside.mean_cost, top.mean_cost)}}
