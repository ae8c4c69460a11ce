"""The selection rule chosen on inner held-out questions (`choose_rule`: the cost cap and the
margin) and one whole tuning run on a training set (`tune_ladder`)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tts.errors import ValidationError
from tts.evaluate import BankArrays, Evaluation, evaluate
from tts.measures import paired_difference
from tts.policy import LadderPolicy, single_level
from tts.strategies.ladder import Ladder
from tts.tuning.data import LadderData, check_top_affordable, prepare_ladder, top_rung
from tts.tuning.folds import GroupBy, group_folds, group_labels, group_name
from tts.tuning.search import Candidate, TuneRun, score_plan, search, select_candidate
from tts.tuning.space import baselines

MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
"""Margins (standard errors) the inner cross-validation chooses from."""
CAPS = (0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 1.0)
"""Cost caps (shares of the top model's cost) the cost objective chooses from."""
INNER_SE = 1.0
"""The cost objective keeps a cap only if its inner held-out accuracy, minus this many
standard errors of its paired difference with the top model, still reaches the target: among
seven caps the cheapest one that merely touches the target is often luck (one-SE rule)."""

def choose_rule(data: LadderData, *, objective: str, target: float | None, trials: int,
                folds: int, group_by: GroupBy, max_cost_share: float | None, sampler_seed: int,
                split_seed: int) -> tuple[float | None, float, dict[str, Any]]:
    """Step 5: (cost cap, margin) chosen on inner held-out questions (module docstring);
    inner folds by `group_by` too, as many as the training questions have groups (by question
    when they hold one group)."""
    groups = len(set(group_labels(data.arrays, group_by)))
    if groups < 2:  # one group left for training: inner folds by question
        group_by, groups = "question", len(data.arrays)
    folds = min(folds, groups)
    parts = group_folds(data.arrays, folds, group_by, split_seed + 17)
    caps = list(CAPS) if objective == "cost" else [max_cost_share]
    margins = list(MARGINS)
    pooled: dict[tuple, dict[str, list]] = {(c, m): {"correct": [], "cost": []}
                                            for c in caps for m in margins}
    top_correct = []
    for f, held in enumerate(parts):
        train = np.setdiff1d(np.arange(len(data.arrays)), held)
        inner = prepare_ladder(data.arrays.subset(train), data.entries, budget=data.budget,
                               prior=data.prior_kind, group_by=data.group_by,
                               seeds=data.seeds, count_prompt=data.count_prompt)
        held_arrays = data.arrays.subset(held)
        top = evaluate(held_arrays, Ladder(rungs=(top_rung(data.greedy["large"]),)),
                       data.budget, data.seeds, count_prompt=data.count_prompt)
        top_correct.append(top.correct.mean(0))
        for c in caps:
            run = search(inner, trials=trials, max_cost_share=c,
                         sampler_seed=sampler_seed + 101 * (f + 1))
            cache: dict[str, Evaluation] = {}
            for m in margins:
                cand, _ = select_candidate(run, m)
                ev = cache.get(cand.name)
                if ev is None:
                    ev = cache[cand.name] = score_plan(inner, cand.rungs, data.seeds, held_arrays)
                pooled[(c, m)]["correct"].append(ev.correct.mean(0))
                pooled[(c, m)]["cost"].append(ev.cost.mean(0) / data.ref_cost)
    top_all = np.concatenate(top_correct)
    top_acc = float(top_all.mean())
    table = {}
    for k, v in pooled.items():
        mean, se = paired_difference(np.concatenate(v["correct"]) - top_all)
        table[k] = {"heldout_accuracy": float(np.concatenate(v["correct"]).mean()),
                    "heldout_cost_share": float(np.concatenate(v["cost"]).mean()),
                    "mean_diff_vs_top": mean, "se": se}
    record: dict[str, Any] = {"inner_folds": folds, "inner_group_by": group_name(group_by),
                              "top_model_heldout_accuracy": top_acc,
                              "by_rule": [{"max_cost_share": c, "margin": m, **v}
                                          for (c, m), v in table.items()]}
    if objective == "cost":
        shift = 0.0 if target is None else float(target) - top_acc

        def holds(k) -> bool:
            t = table[k]
            return t["mean_diff_vs_top"] - INNER_SE * t["se"] >= shift - 1e-12

        ok = [k for k in table if holds(k)]
        goal = top_acc + shift
        if not ok:
            record["top_model_only"] = True
            record["reason"] = (f"no cap reached {goal:.4f} + {INNER_SE:g} SE on inner held-out "
                                f"questions: the top model alone")
            return 1.0, 0.0, record
        cap, margin = min(ok, key=lambda k: (table[k]["heldout_cost_share"], -k[0], -k[1]))
        record["reason"] = (f"cheapest cap whose inner held-out accuracy minus {INNER_SE:g} SE "
                            f"of its paired difference reaches {goal:.4f}")
        return cap, margin, record
    cap, margin = max(table, key=lambda k: (table[k]["heldout_accuracy"], k[1]))
    record["reason"] = "margin with the best inner held-out accuracy"
    return cap, margin, record


def tune_ladder(arrays: BankArrays, ladder: Sequence[str], *, objective: str = "cost",
                budget: float = 262144.0, target: float | None = None, trials: int = 150,
                seeds: Sequence[int] = (0, 1, 2), count_prompt: bool = True,
                max_cost_share: float | None = None, inner_folds: int = 4,
                group_by: GroupBy = "question", margin: float | None = None,
                sampler_seed: int = 0, split_seed: int = 0, storage: Any = None,
                study_name: str | None = None,
                progress: Callable[[int], None] | None = None,
                prior: str = "prompt") -> TuneRun:
    """Steps 1-5 on `arrays` (the training questions). `margin` given: no inner CV (the
    cost objective then needs `max_cost_share`). `prior`: "prompt" features or a "router"
    (`tts.tuning.priors`)."""
    if objective not in ("cost", "accuracy"):
        raise ValidationError(f"ladder tuning has objectives 'cost' and 'accuracy', got "
                              f"{objective!r}.", parameter="objective", value=objective)
    data = prepare_ladder(arrays, ladder, budget=budget, seeds=seeds, count_prompt=count_prompt,
                          prior=prior, group_by=group_by)
    if objective == "cost" or max_cost_share is not None:
        check_top_affordable(data)
    if margin is None:
        cap, margin, rule = choose_rule(
            data, objective=objective, target=target, trials=trials, folds=inner_folds,
            group_by=group_by, max_cost_share=max_cost_share, sampler_seed=sampler_seed,
            split_seed=split_seed)
    else:
        cap, rule = max_cost_share, {"reason": "given"}
    if rule.get("top_model_only"):
        # The cost objective's fallback: nothing cheaper held up, so the top model alone.
        rungs = baselines(data)["top-model"]
        top = Candidate("top-model", rungs, score_plan(data, rungs, data.seeds))
        run = TuneRun(data, [top], 0, "", cap, margin, rule, top,
                      {"chosen": "top-model", "reason": rule["reason"],
                       "train_accuracy": top.ev.accuracy,
                       "train_cost_share": top.share(data), "margin": margin})
        if progress is not None:
            progress(trials)
    else:
        run = search(data, trials=trials, max_cost_share=cap, sampler_seed=sampler_seed,
                     storage=storage, study_name=study_name, progress=progress)
        run.margin, run.rule = margin, rule
        run.chosen, run.selection = select_candidate(run, margin)
    run.selection["max_cost_share"] = cap
    return run


def policy_of(run: TuneRun, notes: Mapping[str, Any] | None = None) -> LadderPolicy:
    assert run.chosen is not None
    return single_level(run.data.ladder, run.chosen.rungs, run.data.prompt, {
        "chosen": run.chosen.name, "margin": run.margin,
        "max_cost_share": run.max_cost_share, **(notes or {})})
