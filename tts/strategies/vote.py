"""Majority vote over small-model samples drawn in waves, stopping early once the leader is safe."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from scipy.special import betainc

from tts.answers import Votes, count_votes
from tts.prompts import format_question
from tts.strategies._checks import (check_fraction, check_mode, check_positive_int, check_role,
                                   check_temperature)
from tts.strategies.base import Outcome, RunContext, Steps, Strategy, insufficient
from tts.types import GenRequest, Problem, Role


@lru_cache(maxsize=4096)
def leader_confidence(top: int, runner_up: int) -> float:
    """P(leader's true share > runner-up's) under a uniform Beta prior on the two counts.

    The stopping test of Adaptive-Consistency (Aggarwal et al. 2023, Beta criterion):
    with p ~ Beta(top + 1, runner_up + 1), the probability that p > 1/2.
    """
    return float(betainc(runner_up + 1, top + 1, 0.5))


@dataclass(frozen=True, slots=True)
class Vote(Strategy):
    """Draw up to `max_samples` samples in waves of `wave`; answer with the majority.

    After each wave, stop when `leader_confidence(top, runner_up) >= confidence`
    (confidence 1.0 never stops early). Samples with no answer abstain.
    """

    name = "vote"
    max_samples: int = 16
    wave: int = 4
    max_tokens: int = 512
    temperature: float = 0.7
    confidence: float = 0.95
    role: Role = "small"
    mode: str | None = None
    """Bank mode / representation to sample (e.g. "pot"); None: "sample" ("greedy" at
    temperature 0)."""

    def __post_init__(self) -> None:
        check_positive_int("max_samples", self.max_samples)
        check_positive_int("wave", self.wave)
        check_positive_int("max_tokens", self.max_tokens)
        check_fraction("confidence", self.confidence, low=0.5)
        check_temperature("temperature", self.temperature)
        check_role("role", self.role)
        check_mode("mode", self.mode)

    @property
    def roles(self) -> tuple[Role, ...]:  # type: ignore[override]
        return (self.role,)

    def steps(self, problem: Problem, ctx: RunContext) -> Steps:
        answers: list[str | None] = []
        votes = count_votes(answers)
        while len(answers) < self.max_samples:
            want = min(self.wave, self.max_samples - len(answers))
            request = self._request(problem, ctx, want, len(answers))
            n = ctx.affordable(self.role, request, want)
            if n == 0:
                if not answers:
                    return insufficient(ctx, f"one {self.max_tokens}-token sample of "
                                             f"{ctx.model(self.role)}")
                ctx.note(f"vote: budget stops sampling at {len(answers)}")
                break
            if n < want:
                request = self._request(problem, ctx, n, len(answers))
            (completions,) = yield [ctx.call(self.role, request)]
            answers.extend(c.answer for c in completions)
            votes = count_votes(answers)
            if self.confidence < 1.0 and votes.total and \
                    leader_confidence(votes.top, votes.runner_up) >= self.confidence:
                if len(answers) < self.max_samples:
                    ctx.note(f"vote: leader safe after {len(answers)} samples "
                             f"({votes.top} vs {votes.runner_up})")
                break
        return self._outcome(votes, ctx)

    def _request(self, problem: Problem, ctx: RunContext, n: int, offset: int) -> GenRequest:
        return GenRequest(prompt=format_question(problem.question), n=n,
                          max_tokens=self.max_tokens, temperature=self.temperature,
                          seed=ctx.seed, offset=offset, problem_id=problem.id, mode=self.mode)

    def _outcome(self, votes: Votes, ctx: RunContext) -> Outcome:
        ctx.note(f"vote: {votes.total} answers, {votes.abstained} abstained, leader "
                 f"{votes.leader!r} with agreement {votes.agreement:.2f}")
        status = "answered" if votes.leader is not None else "abstained"
        return Outcome(answer=votes.leader, status=status, votes=votes,
                       tier_votes={self.role: votes})
