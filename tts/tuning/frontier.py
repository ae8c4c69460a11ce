"""A frontier of safer plans for a deployed policy (`frontier`): per cost cap of
`tts.tuning.nested.CAPS`, the plan that agrees most with the top model's greedy answer within
it on every question (a study per cap scored by agreement, its selection as the deployed
plan's; one full set of levels, one per budget), with its cross-fitted numbers; kept from cheapest to safest (each
expected to disagree less with the top model than the deployed plan and every cheaper kept
plan), the top model alone last. The server's drift guard moves along it
(`tts.policy.policy_frontier` reads it back from the policy's notes)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import optuna

from tts.evaluate import BankArrays
from tts.policy import LadderLevel
from tts.strategies.ladder import Rung
from tts.tuning.data import LadderData
from tts.tuning.heldout import Scores, crossfit_scores, summary
from tts.tuning.nested import CAPS
from tts.tuning.render import json_safe
from tts.tuning.search import Candidate, TuneRun, search, select_candidate
from tts.tuning.space import baselines, suggest_rungs

__all__ = ["frontier", "expected_of", "rebuilt"]


def rebuilt(chosen: Candidate, data: LadderData) -> tuple[Rung, ...]:
    """The chosen candidate's plan on other training questions: the same trial parameters
    or the same fixed plan, with that data's fitted scores."""
    if chosen.params is not None:
        return suggest_rungs(optuna.trial.FixedTrial(chosen.params), data)
    return baselines(data)[chosen.name]


def plan_scores(chosen: Candidate, runs: Sequence[TuneRun], parts: Sequence[np.ndarray],
                gold: BankArrays | None, agree: BankArrays, seeds: Sequence[int]) -> Scores:
    """Cross-fitted scores of a plan chosen on every question: rebuilt on each outer
    training split (`runs[f].data`), scored on its held-out questions."""
    return crossfit_scores(gold, agree, parts, [(r.data, rebuilt(chosen, r.data)) for r in runs],
                           seeds)


def expected_of(per_budget: Sequence[Scores], budgets: Sequence[float],
                reference: str) -> dict[str, Any]:
    """`notes.expected` (`tts.policy.expected`) of a plan's cross-fitted scores per budget:
    the numbers pooled over budgets, and each budget's."""
    out = {**summary(Scores.pooled(per_budget)), "reference": reference,
           "how": "cross-fitted: the plan rebuilt on each outer training split, scored on its "
                  "held-out questions; disagreement: share of questions whose answer is not "
                  "the top model's greedy answer"}
    if len(per_budget) > 1:
        out["by_budget"] = [{"budget": b, **summary(s)} for b, s in zip(budgets, per_budget)]
    return json_safe(out)


def frontier(finals: Sequence[TuneRun], fold_runs: Sequence[Sequence[TuneRun]],
             parts: Sequence[np.ndarray], gold: BankArrays | None, agree: BankArrays,
             budgets: Sequence[float], seeds: Sequence[int], reference: str,
             deployed: dict[str, Any], *, trials: int, sampler_seed: int, storage: Any = None,
             study_name: str | None = None,
             progress: Callable[[str, int], None] | None = None) -> list[dict[str, Any]]:
    """`notes.frontier`: the plans safer than `deployed` (its expected numbers), cheapest
    first, the top model alone last where it is safer (`safer`). `finals[i]`: budget i's run on every question;
    `fold_runs[i]`: budget i's outer fold runs. A frontier plan is the most agreeing
    candidate within its cap (margin 0: its numbers are cross-fitted, so the winner's curse
    shows in them rather than in the choice)."""
    plans: list[tuple[str, float, list[Candidate]]] = []
    views = [agreeing(final.data, agree) for final in finals]
    for cap in CAPS:
        chosen = []
        for i, (final, data) in enumerate(zip(finals, views)):
            cb = None if progress is None else (lambda n, c=cap: progress(f"frontier {c:g}", n))
            run = search(data, trials=trials, max_cost_share=cap,
                         sampler_seed=sampler_seed + 31 * (i + 1), storage=storage,
                         study_name=None if study_name is None else
                         f"{study_name}-frontier-b{i}-cap{cap:g}", progress=cb)
            chosen.append(select_candidate(run, 0.0)[0])
        plans.append((f"cap {cap:g}", cap, chosen))
    plans.append(("top-model", 1.0, [Candidate("top-model", baselines(f.data)["top-model"],
                                               None, None) for f in finals]))  # type: ignore
    entries = []
    for name, cap, chosen in plans:
        scores = [plan_scores(c, runs, parts, gold, agree, seeds)
                  for c, runs in zip(chosen, fold_runs)]
        levels = [LadderLevel(0.0 if i == 0 else b, c.rungs).to_dict()
                  for i, (b, c) in enumerate(zip(budgets, chosen))]
        entries.append({"name": name, "max_cost_share": cap, "levels": levels,
                        "expected": expected_of(scores, budgets, reference)})
    return safer(entries, deployed)


def agreeing(data: LadderData, agree: BankArrays) -> LadderData:
    """`data` (fitted on every question) scoring plans by agreement with the top model
    (`agree`: the same questions' agreement view): a frontier plan is the most agreeing
    within its cap. Its fitted parts (prompt model, climb scores) stay the deployed policy's,
    so a frontier plan shares its prompt model and rebuilds on each fold's data as it does;
    its own fingerprint keeps its studies apart from the accuracy studies."""
    fingerprint = hashlib.sha1(f"{data.fingerprint}|agreement".encode()).hexdigest()[:16]
    return replace(data, arrays=agree, fingerprint=fingerprint)


def safer(entries: list[dict[str, Any]], deployed: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries expected to disagree less than `deployed` and than every cheaper entry
    kept, cheapest first; `entries[-1]` is the top model alone, kept over an equally
    costly and safe plan. It ends the frontier unless it is not safer: at a budget that
    cannot pay for its answer it disagrees there (then the frontier may be empty)."""
    top = entries[-1]

    def key(e: dict[str, Any]) -> tuple:
        c = e["expected"]["cost_share"]
        return (math.inf if c is None else c, e["expected"]["disagreement"], e is not top)

    kept, best = [], deployed["disagreement"]
    for e in sorted(entries, key=key):
        if e["expected"]["disagreement"] < best - 1e-12:
            kept.append(e)
            best = e["expected"]["disagreement"]
    return kept
