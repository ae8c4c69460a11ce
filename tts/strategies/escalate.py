"""Ask the large model directly: one greedy answer, or a vote over a few of its samples."""

from __future__ import annotations

from dataclasses import dataclass

from tts.answers import count_votes
from tts.prompts import format_question
from tts.strategies._checks import check_positive_int, check_temperature
from tts.strategies.base import Outcome, RunContext, Steps, Strategy, insufficient
from tts.types import GenRequest, Problem, Role


@dataclass(frozen=True, slots=True)
class Escalate(Strategy):
    """Answer with the large model: greedy when `samples` is 1, else a vote of its samples."""

    name = "escalate"
    roles = ("large",)
    samples: int = 1
    max_tokens: int = 512
    temperature: float = 0.7
    """Used only when samples > 1."""

    def __post_init__(self) -> None:
        check_positive_int("samples", self.samples)
        check_positive_int("max_tokens", self.max_tokens)
        check_temperature("temperature", self.temperature)

    def steps(self, problem: Problem, ctx: RunContext) -> Steps:
        return (yield from escalate_steps(self, problem, ctx, role="large"))


def large_request(cfg: Escalate, problem: Problem, ctx: RunContext) -> GenRequest:
    """The one request an escalation makes."""
    greedy = cfg.samples == 1
    return GenRequest(prompt=format_question(problem.question), n=cfg.samples,
                      max_tokens=cfg.max_tokens, temperature=0.0 if greedy else cfg.temperature,
                      seed=ctx.seed, problem_id=problem.id)


def escalate_steps(cfg: Escalate, problem: Problem, ctx: RunContext, role: Role) -> Steps:
    """Steps of one large-model call (shared with the cascade)."""
    greedy = cfg.samples == 1
    call = ctx.try_call(role, large_request(cfg, problem, ctx))
    if call is None:
        return insufficient(ctx, f"{cfg.samples} x {cfg.max_tokens} tokens of {ctx.model(role)}")
    (completions,) = yield [call]
    votes = count_votes([c.answer for c in completions])
    ctx.note(f"escalate: {ctx.model(role)} answered {votes.leader!r}"
             + ("" if greedy else f" ({votes.top}/{cfg.samples} agree)"))
    status = "answered" if votes.leader is not None else "abstained"
    return Outcome(answer=votes.leader, status=status, votes=votes, escalated=True,
                   tier_votes={role: votes})
