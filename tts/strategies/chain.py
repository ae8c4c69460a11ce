"""One long sequential chain from the small model, sized to the budget."""

from __future__ import annotations

from dataclasses import dataclass

from tts.answers import count_votes
from tts.prompts import format_question
from tts.strategies._checks import check_positive_int, check_role
from tts.strategies.base import Outcome, RunContext, Steps, Strategy, insufficient
from tts.types import GenRequest, Problem, Role


@dataclass(frozen=True, slots=True)
class Chain(Strategy):
    """Generate one chain of up to `max_tokens` (fewer if the budget is smaller).

    Replay needs "chain" samples in the bank; a bank without them is reported as such.
    """

    name = "chain"
    max_tokens: int = 4096
    min_tokens: int = 64
    temperature: float = 0.7
    role: Role = "small"

    def __post_init__(self) -> None:
        check_positive_int("max_tokens", self.max_tokens)
        check_positive_int("min_tokens", self.min_tokens)
        check_role("role", self.role)

    @property
    def roles(self) -> tuple[Role, ...]:  # type: ignore[override]
        return (self.role,)

    def steps(self, problem: Problem, ctx: RunContext) -> Steps:
        model = ctx.model(self.role)
        prompt = format_question(problem.question)
        probe = GenRequest(prompt=prompt, max_tokens=1, mode="chain", problem_id=problem.id)
        prompt_units = 0.0
        if ctx.ledger.budget.count_prompt:
            prompt_units = ctx.prompt_tokens(self.role, probe) * ctx.ledger.cost.of(model).prompt
        per_token = ctx.ledger.cost.of(model).output
        length = min(self.max_tokens, int((ctx.ledger.remaining - prompt_units) // per_token))
        if length < self.min_tokens:
            return insufficient(ctx, f"a {self.min_tokens}-token chain of {model}")
        request = GenRequest(prompt=prompt, max_tokens=length, temperature=self.temperature,
                             seed=ctx.seed, mode="chain", problem_id=problem.id)
        call = ctx.try_call(self.role, request)
        if call is None:
            return insufficient(ctx, f"a {length}-token chain of {model}")
        (completions,) = yield [call]
        votes = count_votes([c.answer for c in completions])
        ctx.note(f"chain: {completions[0].tokens} tokens, answer {votes.leader!r}")
        status = "answered" if votes.leader is not None else "abstained"
        return Outcome(answer=votes.leader, status=status, votes=votes)
