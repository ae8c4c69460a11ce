"""A frontier of safer plans for a deployed policy (`frontier`). Per cost cap of
`tts.tuning.nested.CAPS`, two candidates, each one full set of levels (one per budget) with
its cross-fitted numbers:

* the plan that agrees most with the top model's greedy answer within the cap on every
  question (a study per cap scored by agreement, its selection as the deployed plan's);
* the deployed plan sending the prompts its prompt prior rates hardest straight to the top
  model (`skipping`: every lower rung's `skip_above`), for the largest share of
  `SKIP_SHARES` within the cap. A prompt sent to the top model gets its answer, so the
  share trades cost for agreement directly; it is what a ladder of one answer per model
  (RouteLLM's MMLU logs), whose studies have no vote to climb on, can do.

Kept from cheapest to safest (each measured to disagree with the top model less than the
deployed plan and every cheaper kept plan: its 95% interval below their disagreement), the
top model alone last. The server's drift
guard moves along it (`tts.policy.policy_frontier` reads it back from the policy's notes)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import optuna

from tts.evaluate import BankArrays
from tts.policy import LadderLevel, prompt_priors
from tts.strategies.ladder import Rung
from tts.tuning.data import LadderData
from tts.tuning.heldout import Scores, crossfit_scores, summary
from tts.tuning.nested import CAPS
from tts.tuning.render import json_safe
from tts.tuning.search import Candidate, TuneRun, score_plan, search, select_candidate
from tts.tuning.space import baselines, suggest_rungs

__all__ = ["frontier", "expected_of", "rebuilt", "skipping", "SKIP_SHARES"]

SKIP_SHARES = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Shares of prompts a skipping plan may send straight to the top model."""


@dataclass(frozen=True)
class Skipping:
    """A plan sending the `share` of prompts the prior rates hardest straight to the top
    model, `base`'s rungs for the rest (`rungs`: on the data it was chosen on)."""

    base: Candidate = field(repr=False)
    share: float
    rungs: tuple[Rung, ...]


def skipping(rungs: Sequence[Rung], data: LadderData, share: float) -> tuple[Rung, ...] | None:
    """`rungs` with every lower rung skipped for the `share` of `data`'s training questions
    whose prompt prior (`data.prompt`, the policy's) is highest, so a prompt rated as hard
    goes straight to the top model; None without a prompt model or a lower rung."""
    if data.prompt is None or len(rungs) < 2:
        return None
    z = float(np.quantile(prompt_priors(data.prompt, data.arrays), 1.0 - share))
    above = float(1.0 / (1.0 + math.exp(-z))) if abs(z) < 700 else float(z > 0)
    return tuple(replace(r, skip_above=min(r.skip_above, above)) for r in rungs[:-1]) + \
        (rungs[-1],)


def rebuilt(chosen: Candidate | Skipping, data: LadderData) -> tuple[Rung, ...]:
    """The chosen candidate's plan on other training questions: the same trial parameters
    or the same fixed plan, with that data's fitted scores (a skipping plan: its base so
    rebuilt, skipping the same share of that data's questions)."""
    if isinstance(chosen, Skipping):
        base = rebuilt(chosen.base, data)
        return skipping(base, data, chosen.share) or base
    if chosen.params is not None:
        return suggest_rungs(optuna.trial.FixedTrial(chosen.params), data)
    return baselines(data)[chosen.name]


def skip_plan(final: TuneRun, cap: float) -> Skipping | None:
    """The deployed plan of `final` skipping the largest share of `SKIP_SHARES` whose cost
    share on the training questions is within `cap` (None: no share is)."""
    data, base = final.data, final.chosen
    best = None
    for share in SKIP_SHARES:
        rungs = skipping(base.rungs, data, share)  # type: ignore[union-attr]
        if rungs is None:
            return None
        if score_plan(data, rungs, data.seeds).mean_cost / data.ref_cost > cap:
            break
        best = Skipping(base, share, rungs)  # type: ignore[arg-type]
    return best


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
    first, the top model alone last where it is safer (`safer`). `finals[i]`: budget i's run
    on every question; `fold_runs[i]`: budget i's outer fold runs. A frontier plan is the most agreeing
    candidate within its cap (margin 0: its numbers are cross-fitted, so the winner's curse
    shows in them rather than in the choice); beside it, per cap, the deployed plan skipping
    to the top model (`skip_plan`) where every budget has one."""
    plans: list[tuple[str, float, list[Any]]] = []
    seen: set[str] = set()
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
        skips = [skip_plan(final, cap) for final in finals]
        if cap < 1.0 and all(s is not None for s in skips):
            shares = "/".join(f"{s.share:g}" for s in skips)  # type: ignore[union-attr]
            if shares not in seen:  # a larger cap that skips no more is the same plan
                seen.add(shares)
                plans.append((f"skip {shares} (cap {cap:g})", cap, skips))
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
    """The entries measured to disagree less than `deployed` and every cheaper entry kept
    (the upper end of an entry's 95% interval below the previous plan's expected
    disagreement: the guard moves one plan per alarm, so a move goes to a plan shown to be
    safer, not one that differs by a few of the tuning set's questions), cheapest first;
    `entries[-1]` is the top model alone, kept over an equally costly and safe plan. It ends
    the frontier unless it is not safer: at a budget that cannot pay for its answer it
    disagrees there (then the frontier may be empty)."""
    top = entries[-1]

    def key(e: dict[str, Any]) -> tuple:
        c = e["expected"]["cost_share"]
        return (math.inf if c is None else c, e["expected"]["disagreement"], e is not top)

    kept, best = [], deployed["disagreement"]
    for e in sorted(entries, key=key):
        x = e["expected"]
        if x["disagreement"] < best - 1e-12 and x.get(
                "disagreement_ci95", [0.0, x["disagreement"]])[1] < best - 1e-12:
            kept.append(e)
            best = x["disagreement"]
    return kept
