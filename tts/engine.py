"""The engine: plans each prompt, runs the strategies, batches generation across prompts."""

from __future__ import annotations

import numbers
import os
import threading
import time
from dataclasses import dataclass
from typing import Generator, Iterable, Sequence

from tts.audit import Auditor, background_auditor, check_rate
from tts.backends import Backend
from tts.backends.contract import generate_checked, ledger_pay
from tts.budgets import Budget, CostModel, Ledger
from tts.budgets.budget import check_flag
from tts.errors import BackendError, UnknownNameError, ValidationError
from tts.guard import DriftGuard, deployment_guard
from tts.policy import DefaultPolicy, Policy
from tts.strategies import RunContext, Strategy, make_strategy
from tts.strategies.base import Call, Outcome
from tts.types import Completion, GenRequest, Plan, Problem, Result, Role, ladder_roles

__all__ = ["Engine", "Job", "as_budget", "as_problems", "check_ladder", "forced_strategy"]


@dataclass
class Job:
    """One prompt on its way through an Engine: what `Engine.plan` decided for it.

    A driver other than `solve_many` (the server's scheduler) runs it as the Engine does:
    send each step of `steps()` to the backends, `commit` what came back, and turn the
    strategy's Outcome into a Result with `Engine.result`.
    """

    problem: Problem
    strategy: Strategy
    ctx: RunContext
    """Its ledger (`ctx.ledger`: the budget, spent so far), models, seed and trace."""
    difficulty: float | None = None
    """The policy's difficulty estimate, when the policy chose the strategy."""
    seconds: float | None = None
    """Wall time until the outcome; set by the driver."""

    def steps(self) -> Generator[list[Call], list[list[Completion]] | None, Outcome]:
        """The strategy's generator: yields lists of reserved Calls, receives their
        completions (one list per call, in order), returns the Outcome."""
        return self.strategy.steps(self.problem, self.ctx)

    def commit(self, call: Call, completions: Sequence[Completion]) -> None:
        """Charge what a call really generated (the backend's counts, already checked with
        `tts.backends.contract`) and release the rest of its reservation; fewer samples than
        reserved (a partly failed call) charge only those."""
        completions = list(completions)
        self.ctx.ledger.commit(call.reservation, [c.tokens for c in completions],
                               completions[0].prompt_tokens if completions else None)


def as_problems(prompts: Iterable[str | Problem]) -> list[Problem]:
    """The prompts of a `solve_many` call as Problems: a list (not one string) of prompts,
    each a Problem or a string `Problem` accepts; a ValidationError names the first bad one.
    Callers check prompts with it before loading any engine."""
    return [p if isinstance(p, Problem) else Problem(p) for p in _as_list(prompts)]


def as_budget(budget: Budget | float, count_prompt: bool = False) -> Budget:
    """`budget` as a Budget (a number of units, checked by `Budget`), charging prompt tokens
    too when `count_prompt`."""
    if isinstance(budget, Budget):
        if count_prompt and not budget.count_prompt:
            return Budget(tokens=budget.tokens, count_prompt=True)
        return budget
    return Budget(tokens=budget, count_prompt=count_prompt)


def forced_strategy(strategy: Strategy | str | None, options: dict) -> Strategy | None:
    """The Strategy a caller forces (an instance, or a name with its options as keywords),
    None to let the policy decide; ValidationError for options without a strategy, and
    UnknownNameError for an unknown name."""
    if strategy is None:
        if options:
            raise ValidationError(f"strategy options {sorted(options)} need a `strategy`.",
                                  parameter=sorted(options)[0])
        return None
    if isinstance(strategy, Strategy):
        if options:
            raise ValidationError("pass options either in the Strategy instance or as "
                                  "keywords with a strategy name, not both.")
        return strategy
    return make_strategy(strategy, **options)


class Engine:
    """Answers prompts under hard budgets with a small and (optionally) a large backend.

    Args:
        small: backend of the small model (samples, votes, chains).
        large: backend of the large model, or None when escalation is not possible. It is
            only called when a plan escalates, so a lazy backend never loads otherwise.
        policy: decides the plan per prompt when no strategy is forced; defaults to
            `DefaultPolicy`.
        cost: token prices: a CostModel, or a preset name from `tts.budgets.PRESETS`
            ("mot-usd", "qwen-params"); by default the backends' own (`cost` attribute, e.g.
            a bank's).
        count_prompt: also charge prompt tokens, once per prompt per model (True or False).
        seed: seed of every sample stream (an integer >= 0, or None); the same seed gives the
            same Results.
        audit_rate: share of the answers given below the top model that the top model is
            also asked about, in a background thread and outside their budgets, to measure
            how often they disagree (`engine.audits`, a `tts.audit.Auditor`); 0 (default): no
            audits (with `audit_guard`, a policy with a novelty summary is still guarded on
            novelty: its Auditor audits nothing and reports every answer to the guard).
        audit_bank: folder the audits are appended to as a bank (see `tts.audit`), or None;
            needs audit_rate > 0.
        audit_guard: move to the next safer plan of the policy's frontier when the audits
            show more disagreement than the policy expects, or to its safest when the
            prompts turn novel, and back later (`tts.guard`; `engine.guard`). Needs a policy
            `tts tune` wrote a frontier into, and audits (audit_rate > 0) or a novelty summary
            whose embedding model is pulled. Without it, audits (audit_rate > 0) of such a
            policy still raise the alarms.
    """

    def __init__(self, small: Backend | Sequence[Backend], large: Backend | None = None, *,
                 policy: Policy | None = None, cost: CostModel | None = None,
                 count_prompt: bool = False, seed: int | None = 0, audit_rate: float = 0.0,
                 audit_bank: str | os.PathLike[str] | None = None, audit_guard: bool = False):
        if isinstance(small, (list, tuple)):
            if large is not None:
                raise ValidationError("give a ladder (a list of backends) or small and large, "
                                      "not both.", parameter="large")
            ladder = list(small)
            if not ladder:
                raise ValidationError("a ladder needs at least one backend, got an empty "
                                      "list.", parameter="small", value=small)
        else:
            ladder = [small] if large is None else [small, large]
        for i, backend in enumerate(ladder):
            if not isinstance(backend, Backend):
                what = ("small" if i == 0 else "large") if len(ladder) <= 2 and not \
                    isinstance(small, (list, tuple)) else f"ladder[{i}]"
                raise ValidationError(f"`{what}` must be a Backend (with .model, .generate and "
                                      f".prompt_tokens), got {type(backend).__name__}.",
                                      parameter=what)
        cost = _cost_model(cost)
        self.cost = cost or _backend_cost(ladder)
        if isinstance(small, (list, tuple)):
            check_ladder([b.model for b in ladder], self.cost)
        for backend in ladder:
            self.cost.of(backend.model)  # unknown model -> clear error now, not mid-run
        self.backends: dict[Role, Backend] = dict(zip(ladder_roles(len(ladder)), ladder))
        if policy is not None and not callable(getattr(policy, "decide", None)):
            raise ValidationError(f"`policy` must be a Policy (an object with .decide(), e.g. "
                                  f"tts.policy.load_policy(path)), got {type(policy).__name__} "
                                  f"{str(policy)[:40]!r}.", parameter="policy")
        self.policy = policy or DefaultPolicy()
        self.count_prompt = check_flag("count_prompt", count_prompt)
        self.seed = None if seed is None else _check_seed(seed)
        self._lock = threading.Lock()  # audits generate from a thread of their own
        rate = check_rate(audit_rate)
        if audit_bank is not None and rate == 0:
            raise ValidationError("`audit_bank` needs audit_rate > 0 (no audits to write).",
                                  parameter="audit_bank", value=str(audit_bank))
        self.guard: DriftGuard | None = deployment_guard(
            self.policy, rate, act=check_flag("audit_guard", audit_guard), apply=self.use_policy)
        self.audits: Auditor | None = None if rate == 0 and self.guard is None else \
            background_auditor(self, rate, audit_bank)
        if self.audits is not None:
            self.audits.guard = self.guard

    def use_policy(self, policy: Policy) -> None:
        """Plan the next requests with `policy` (the drift guard's move)."""
        self.policy = policy

    @property
    def models(self) -> dict[Role, str]:
        return {role: b.model for role, b in self.backends.items()}

    def solve(self, prompt: str | Problem, budget: Budget | float, *,
              strategy: Strategy | str | None = None, seed: int | None = None,
              **options) -> Result:
        """Answer one prompt without spending more than `budget` (`seed`: this call's seed
        of the sample streams instead of the engine's)."""
        return self.solve_many([prompt], budget, strategy=strategy, seed=seed, **options)[0]

    def solve_many(self, prompts: Iterable[str | Problem], budget: Budget | float, *,
                   strategy: Strategy | str | None = None, seed: int | None = None,
                   **options) -> list[Result]:
        """Answer many prompts, each under its own `budget`; step k of every prompt goes to
        each backend in one batched call."""
        start = time.perf_counter()
        seed = self.seed if seed is None else _check_seed(seed)
        budget = self._budget(budget)
        problems = [self._problem(p) for p in _as_list(prompts)]
        forced = forced_strategy(strategy, options)
        jobs = [self._job(problem, budget, forced, seed) for problem in problems]
        with self._lock:
            outcomes = self._run(jobs, start)
        results = [self.result(job, out) for job, out in zip(jobs, outcomes)]
        if self.audits is not None:
            for problem, result in zip(problems, results):
                self.audits.offer(problem, result, planned=forced is None)
        return results

    def plan(self, prompt: str | Problem, budget: Budget | float, *,
             strategy: Strategy | str | None = None, seed: int | None = None,
             **options) -> Job:
        """Validate one prompt and decide its strategy, as `solve` does, without generating.

        Raises the same errors as `solve` for bad input (prompt, budget, strategy, a question
        a replay bank lacks, a strategy needing a model the engine does not have). `seed`
        overrides the engine's seed for this prompt. Run the Job with its `steps()` and
        `commit()`, then `result()`.
        """
        seed = self.seed if seed is None else _check_seed(seed)
        budget = self._budget(budget)
        problem = self._problem(prompt)
        forced = forced_strategy(strategy, options)
        return self._job(problem, budget, forced, seed)

    def result(self, job: Job, outcome: Outcome) -> Result:
        """The Result of a Job whose strategy returned `outcome`."""
        ledger = job.ctx.ledger
        out = outcome
        difficulty = out.difficulty if out.difficulty is not None else job.difficulty
        return Result(answer=out.answer, status=out.status, strategy=job.strategy.name,
                      plan=Plan(job.strategy.name, job.strategy.options()),
                      tokens=dict(ledger.tokens), cost=ledger.spent, budget=ledger.limit,
                      votes=out.votes.as_dict(), votes_by_model=_votes_by_model(job, out),
                      difficulty=difficulty, escalated=out.escalated,
                      trace=tuple(job.ctx.trace), problem_id=job.problem.id,
                      seconds=job.seconds)

    def _job(self, problem: Problem, budget: Budget, forced: Strategy | None,
             seed: int | None) -> Job:
        ctx = RunContext(Ledger(budget, self.cost), self.models, self._prompt_tokens, seed=seed)
        if forced is not None:
            plan_strategy, difficulty = forced, None
        else:
            plan_strategy, difficulty = self.policy.decide(problem, budget, self.models)
        self._check_roles(plan_strategy)
        return Job(problem, plan_strategy, ctx, difficulty)

    # ---- driving -------------------------------------------------------------------------
    def _run(self, jobs: Sequence[Job], start: float) -> list[Outcome]:
        gens = [job.steps() for job in jobs]
        outcomes: list[Outcome | None] = [None] * len(jobs)
        pending: dict[int, list[Call]] = {}
        for i, gen in enumerate(gens):
            self._advance(i, gen, None, pending, outcomes)
            if outcomes[i] is not None:
                jobs[i].seconds = time.perf_counter() - start
        lock = threading.Lock()  # backends pay lost attempts from their own threads
        while pending:
            ready = self._ready(pending)
            replies: dict[int, list] = {i: [None] * len(pending[i]) for i in ready}
            for role, backend in self.backends.items():
                batch = [(i, j, call) for i in ready for j, call in enumerate(pending[i])
                         if call.role == role]
                if not batch:
                    continue
                requests = [call.request for _, _, call in batch]
                pay = ledger_pay(backend.model, lambda k, b=batch: jobs[b[k][0]].ctx, lock)
                results = generate_checked(backend, requests, pay)
                for (i, j, call), completions in zip(batch, results):
                    jobs[i].commit(call, completions)
                    replies[i][j] = completions
            for i in ready:
                del pending[i]
            for i in ready:
                self._advance(i, gens[i], replies[i], pending, outcomes)
                if outcomes[i] is not None:
                    jobs[i].seconds = time.perf_counter() - start
        return outcomes  # type: ignore[return-value]

    def _ready(self, pending: dict[int, list[Call]]) -> list[int]:
        """Prompts whose pending step goes out this round.

        Steps wait while a step of a cheaper tier is pending, so the escalations of all
        prompts reach each larger engine in one batch instead of one per round; outcomes do
        not change (each prompt's steps stay in order), only how generation is batched.
        """
        rank = {role: k for k, role in enumerate(ladder_roles(len(self.backends)))}
        top = {i: max(rank.get(c.role, len(rank)) for c in calls) for i, calls in pending.items()}
        lowest = min(top.values())
        return [i for i in pending if top[i] == lowest]

    @staticmethod
    def _advance(i, gen, reply, pending, outcomes) -> None:
        try:
            calls = gen.send(reply)
        except StopIteration as stop:
            outcomes[i] = stop.value
            return
        if not calls:
            raise BackendError("a strategy yielded an empty step.")
        pending[i] = calls

    # ---- helpers -------------------------------------------------------------------------
    def _prompt_tokens(self, role: Role, request: GenRequest) -> int:
        return self.backends[role].prompt_tokens(request)

    def _budget(self, budget: Budget | float) -> Budget:
        return as_budget(budget, self.count_prompt)

    def _problem(self, prompt: str | Problem) -> Problem:
        if isinstance(prompt, Problem):
            if prompt.id is not None:
                return prompt
            prompt = prompt.question
        problem = Problem(prompt)  # validates type and emptiness
        lookup = getattr(self.backends["small"], "lookup", None)
        return lookup(problem.question) if lookup is not None else problem

    def _check_roles(self, strategy: Strategy) -> None:
        missing = [r for r in strategy.roles if r not in self.backends]
        if missing:
            raise ValidationError(f"strategy {strategy.name!r} needs a {missing[0]} model, but "
                                  f"the engine has only {sorted(self.backends)}.",
                                  parameter="strategy", value=strategy.name)


def _votes_by_model(job: Job, out: Outcome) -> dict[str, dict[str, int]]:
    """Outcome.tier_votes by model name ("role:k" keys become "model:k")."""
    models = job.ctx.models
    named = {}
    for key, votes in out.tier_votes.items():
        role, sep, rest = key.partition(":")
        named[models.get(role, role) + sep + rest] = votes.as_dict()
    return named


def _check_seed(seed: object) -> int:
    """A seed of the sample streams: an integer in [0, 2**64), else a ValidationError."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise ValidationError(f"`seed` must be an integer in [0, 2**64) or None, got "
                              f"{type(seed).__name__} {str(seed)[:40]!r}.", parameter="seed",
                              value=seed)
    return int(seed)


def _as_list(prompts: Iterable[str | Problem]) -> list[str | Problem]:
    if isinstance(prompts, (str, Problem)):
        raise ValidationError("solve_many takes a list of prompts; use solve for one.",
                              parameter="prompts")
    try:
        items = list(prompts)
    except TypeError:
        raise ValidationError(f"solve_many takes a list of prompts, got "
                              f"{type(prompts).__name__}.", parameter="prompts") from None
    if not items:
        raise ValidationError("solve_many needs at least one prompt, got an empty list.",
                              parameter="prompts")
    return items


def _cost_model(cost: object) -> CostModel | None:
    """A CostModel (or None) as given, or the preset of that name (tts.budgets.PRESETS)."""
    from tts.budgets import PRESETS

    if cost is None or isinstance(cost, CostModel):
        return cost
    if isinstance(cost, str):
        if cost in PRESETS:
            return PRESETS[cost]
        raise UnknownNameError(f"unknown cost preset {cost!r}; presets: {sorted(PRESETS)} (or "
                               f"pass a tts.CostModel).")
    raise ValidationError(f"`cost` must be a CostModel or a preset name {sorted(PRESETS)}, got "
                          f"{type(cost).__name__}.", parameter="cost")


def check_ladder(models: Sequence[str], cost: CostModel) -> None:
    """Refuse a ladder with duplicate or unpriced models, or prices out of order.

    A ladder climbs from the cheapest model to the dearest; "dearer" is the price of a
    generated token (prompt tokens break ties).
    """
    if not models:
        raise ValidationError("a ladder needs at least one model.", parameter="ladder")
    seen = [m for i, m in enumerate(models) if m in models[:i]]
    if seen:
        raise ValidationError(f"model {seen[0]!r} appears twice in the ladder {list(models)}.",
                              parameter="ladder", value=seen[0])
    prices = [cost.of(m) for m in models]  # unknown model -> clear error now, not mid-run
    for (a, pa), (b, pb) in zip(zip(models, prices), zip(models[1:], prices[1:])):
        if (pb.output, pb.prompt) < (pa.output, pa.prompt):
            raise ValidationError(
                f"ladder models must be ordered cheapest first: {b!r} ({pb.output:g} units per "
                f"generated token) comes after {a!r} ({pa.output:g}); order them by price.",
                parameter="ladder", value=list(models))


def _backend_cost(ladder: Sequence[Backend]) -> CostModel:
    cost = getattr(ladder[0], "cost", None)
    if isinstance(cost, CostModel):
        return cost
    from tts.budgets import default_cost

    return default_cost([b.model for b in ladder])  # rules and error: tts.budgets.cost
