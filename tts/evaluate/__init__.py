"""Vectorised evaluation of strategies and policies over a whole bank, exact to the replay engine.

Running `Engine.solve_many` on a replay bank costs about a millisecond per problem; a sweep or an
Optuna study needs thousands of such runs. This module computes the same Results with numpy:

    arrays = BankArrays.from_bank(bank)                  # once per bank (answer classes, tokens)
    ev = evaluate(arrays, Vote(max_samples=8), 2_000, seeds=range(5))
    ev.accuracy, ev.mean_cost, ev.correct[seed_index, problem_index]

API (stable; `tts.sweep` and `tts.tune` rely on it):

* `BankArrays.from_bank(bank, problem_ids=None)`: per (model, mode), answer-class ids of every
  stored sample (-1 = abstain), per-sample correctness vs gold, tokens, prompt tokens.
  `.subset(indices)` is a cheap view for train / held-out splits (it shares the caches);
  `.problem_ids`, `.models` (roles -> model names), `.cost`.
* `evaluate(arrays, plan, budget, seeds=(0,), *, count_prompt=False) -> Evaluation`.
  `plan` is a Strategy (Vote, Escalate, Cascade, Chain, Adaptive: every option) or a Policy
  (`tts.policy.ParamPolicy` is vectorised; any other Policy is asked `decide` per problem and
  its strategies are evaluated group by group). `budget` is a number or a `Budget`; as in the
  Engine, `count_prompt` or `Budget.count_prompt` charges prompt tokens.
* `Evaluation`: arrays of shape (len(seeds), n_problems): `correct`, `cost` (budget units),
  `tokens[model]` (generated + charged prompt tokens), `escalated`, `status` (codes into
  `STATUS_NAMES`), `small_samples`, `difficulty` (nan where none); summaries `accuracy`,
  `mean_cost`, `escalation_rate`, `per_seed_accuracy()`; `answers(arrays)` rebuilds the
  answer strings.

Exactness: sample i of seed s is `tts.bank.sample_order(...)[i]`, as replay serves it; long
samples are truncated to `max_tokens` and abstain; the ledger's float arithmetic (reserve
n * max_tokens * price, shrink a wave to what the budget pays, commit actual use) is done in the
same order of float64 operations, so costs agree to the bit. Vote ties go to the class seen
first in draw order, and the answer string is that first-drawn member, as in `count_votes`.
Errors agree too: a draw beyond a record or from a missing mode (e.g. Chain on a bank without
"chain" samples) raises the same BankError; a missing large model the same ValidationError.
`tests/test_evaluate.py` checks all of this against `solve_many` with hypothesis.

Where things are: `arrays` (the bank as arrays, vote prefixes per seed), `mixed` (a
mixed-representation vote's two records as one alternating stream), `ledger` (the
simulated ledger and `Evaluation`), `vote` (the vote phase: waves, stop tests, probe score),
`plans` (each strategy over all problems), and here the entry point. Every decision (stop,
climb / escalate, scores) is a function of `tts.signals`, shared with the live strategies.

One assumption is checked, not trusted: within a problem, answer equivalence must partition the
answers (transitive), so classes do not depend on draw order; a bank where it does not is
refused with a BankError naming the problem.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from tts.budgets import Budget
from tts.errors import ValidationError
from tts.evaluate.arrays import BankArrays, ModeArrays, Prefix, tile_bank
from tts.evaluate.ledger import (ABSTAINED, ANSWERED, INSUFFICIENT, STATUS_NAMES, Evaluation,
                                 Run)
from tts.evaluate.plans import run_ladder, run_strategy
from tts.strategies import Ladder, Strategy

__all__ = ["BankArrays", "ModeArrays", "Prefix", "Evaluation", "evaluate", "tile_bank",
           "ladder_features", "STATUS_NAMES", "ANSWERED", "ABSTAINED", "INSUFFICIENT"]


def evaluate(arrays: BankArrays, plan: Any, budget: Budget | float,
             seeds: Iterable[int | None] = (0,), *, count_prompt: bool = False) -> Evaluation:
    """Outcomes of `plan` (a Strategy or a Policy) on every problem of `arrays`, per seed.

    Equals `Engine(small, large, cost=bank cost, seed=s, count_prompt=...).solve_many(
    problems, budget, strategy=plan)` (or `policy=plan`) for each seed s, problem by problem.
    """
    if not isinstance(arrays, BankArrays):
        raise ValidationError(f"`arrays` must be a BankArrays (BankArrays.from_bank(bank)), got "
                              f"{type(arrays).__name__}.", parameter="arrays")
    if isinstance(budget, Budget):
        limit, count_prompt = budget.tokens, budget.count_prompt or count_prompt
    else:
        limit = Budget(tokens=budget).tokens
    budget_obj = Budget(tokens=limit, count_prompt=count_prompt)
    seeds = tuple(seeds)
    if not seeds:
        raise ValidationError("`seeds` must hold at least one seed.", parameter="seeds")
    for s in seeds:
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer))):
            raise ValidationError(f"seeds must be integers or None, got {s!r}.",
                                  parameter="seeds", value=s)
    groups = _groups(arrays, plan, budget_obj)
    p = len(arrays)
    keys: list[tuple[str, str]] = []
    fields_: dict[str, list] = {f: [] for f in ("correct", "cost", "escalated", "status",
                                                "small_samples", "difficulty", "answer_mode",
                                                "answer_index")}
    tokens: dict[str, list] = {m: [] for m in arrays.cost.models}
    for seed in seeds:
        run = Run(arrays, None if seed is None else int(seed), limit, count_prompt)
        for rows, strategy, prior, difficulty in groups:
            run_strategy(run, rows, strategy, keys, prior)
            if difficulty is not None:
                run.difficulty = np.where(rows & np.isnan(run.difficulty), difficulty,
                                          run.difficulty)
        for f in fields_:
            fields_[f].append(run.spent if f == "cost" else getattr(run, f))
        for mname in tokens:
            tokens[mname].append(run.tokens.get(mname, np.zeros(p, np.int64)))
    return Evaluation(seeds=seeds, problem_ids=list(arrays.problem_ids), budget=limit,
                      tokens={m: np.stack(v) for m, v in tokens.items()},
                      answer_keys=keys, **{f: np.stack(v) for f, v in fields_.items()})


def ladder_features(arrays: BankArrays, ladder: Ladder, budget: float, seed: int | None,
                    *, count_prompt: bool = False, prior: np.ndarray | None = None
                    ) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """The climb features each rung of `ladder` saw, per problem: a list of (rung index,
    rows that reached it, features (P, len(CLIMB_FEATURES)), whether its leader was right).
    For fitting climb scores on training questions."""
    run = Run(arrays, seed, Budget(tokens=budget).tokens, count_prompt)
    run_ladder(run, np.ones(len(arrays), bool), ladder, [], prior)
    return run.rung_features


def _groups(arrays: BankArrays, plan: Any, budget: Budget) -> list[tuple]:
    """(rows mask, strategy, per-row prior or None, per-row difficulty or None) per group."""
    p = len(arrays)
    everything = np.ones(p, bool)
    if isinstance(plan, Strategy):
        _check_roles(arrays, plan)
        return [(everything, plan, None, None)]
    vector = getattr(plan, "vector_groups", None)
    if vector is not None:
        groups = vector(arrays, budget)
        for g in groups:
            _check_roles(arrays, g[1])
        return groups
    if not hasattr(plan, "decide"):
        raise ValidationError(f"`plan` must be a Strategy or a Policy (with .decide), got "
                              f"{type(plan).__name__}.", parameter="plan")
    by_strategy: dict[Any, list[int]] = {}
    diffs = np.full(p, np.nan)
    chosen: dict[Any, Strategy] = {}
    for i, pid in enumerate(arrays.problem_ids):
        strategy, difficulty = plan.decide(arrays.bank.problems[pid], budget, arrays.models)
        key = repr(strategy)
        chosen[key] = strategy
        by_strategy.setdefault(key, []).append(i)
        if difficulty is not None:
            diffs[i] = difficulty
    out = []
    for key, idx in by_strategy.items():
        rows = np.zeros(p, bool)
        rows[idx] = True
        _check_roles(arrays, chosen[key])
        out.append((rows, chosen[key], None, diffs))
    return out


def _check_roles(arrays: BankArrays, strategy: Strategy) -> None:
    missing = [r for r in strategy.roles if r not in arrays.models]
    if missing:
        raise ValidationError(f"strategy {strategy.name!r} needs a {missing[0]} model, but the "
                              f"engine has only {sorted(arrays.models)}.", parameter="strategy",
                              value=strategy.name)
