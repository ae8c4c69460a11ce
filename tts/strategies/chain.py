"""One long sequential chain from the small model, sized to the budget, with budget forcing.

Budget forcing (s1, Muennighoff et al. 2025) controls how long a live chain thinks:

- when the chain reaches its token share without an answer, thinking is cut and the model is
  asked for the final answer: the chain so far plus `FINAL_ANSWER_CUE` goes back as the
  assistant's own text, and up to `answer_tokens` more tokens are generated greedily;
- when the chain stops early with budget left, "Wait" (`CONTINUE_CUE`) is appended and the
  chain goes on, up to `max_waits` times, within the same token share.

Both are off by default (`answer_tokens=0`, `max_waits=0`): then a chain is one call, which
is what a replay bank of logged chains can serve. Forcing needs the chain's text, so it never
triggers on completions without text (banks that keep only answers).
"""

from __future__ import annotations

from dataclasses import dataclass

from tts.answers import count_votes
from tts.prompts import CONTINUE_CUE, FINAL_ANSWER_CUE, format_question
from tts.strategies._checks import check_mode, check_positive_int, check_role, check_temperature
from tts.strategies.base import Outcome, RunContext, Steps, Strategy, insufficient
from tts.types import GenRequest, Problem, Role


def is_chain_mode(mode: str | None) -> bool:
    """Whether a bank mode holds long chains ("chain", or "chain-<L>" budget-forced ones)."""
    return mode is not None and (mode == "chain" or is_forced_chain_mode(mode))


def is_forced_chain_mode(mode: str | None) -> bool:
    """Whether a bank mode holds whole budget-forced chains ("chain-<L>", from `tts bank build
    --chain-lengths`): each sample is the outcome of a forced chain (its cues, "Wait"
    continuations and forced answer already in it), so replay serves it as one finished call
    and forcing must not run on it again."""
    return mode is not None and mode.startswith("chain-")


@dataclass(frozen=True, slots=True)
class Chain(Strategy):
    """Generate one chain of up to `max_tokens` (fewer if the budget is smaller).

    Args:
        max_tokens: cap on the chain's own tokens (all continuations together).
        min_tokens: a chain shorter than this is not worth starting (insufficient budget).
        temperature: sampling temperature of the chain.
        role: backend that writes the chain.
        answer_tokens: budget forcing: tokens held back for the forced final answer when the
            chain is cut at its share; 0 turns forcing off.
        max_waits: budget forcing: how often a chain that stopped early is told "Wait" and
            continued while its share lasts; 0 turns it off.
        min_continue: a "Wait" continuation needs at least this many tokens of share left.

    Replay needs samples of `mode` in the bank ("chain", or a budget-forced length such as
    "chain-1024" from `tts bank build`); a bank without them is reported as such.
    """

    name = "chain"
    max_tokens: int = 4096
    min_tokens: int = 64
    temperature: float = 0.7
    role: Role = "small"
    answer_tokens: int = 0
    max_waits: int = 0
    min_continue: int = 32
    mode: str = "chain"
    """Bank mode of the chain samples (live backends ignore it)."""

    def __post_init__(self) -> None:
        check_positive_int("max_tokens", self.max_tokens)
        check_positive_int("min_tokens", self.min_tokens)
        check_role("role", self.role)
        check_mode("mode", self.mode)
        check_temperature("temperature", self.temperature)
        for name in ("answer_tokens", "max_waits"):
            check_positive_int(name, getattr(self, name), low=0)
        check_positive_int("min_continue", self.min_continue)

    @property
    def roles(self) -> tuple[Role, ...]:  # type: ignore[override]
        return (self.role,)

    def steps(self, problem: Problem, ctx: RunContext) -> Steps:
        return (yield from self.chain_steps(problem, ctx))

    def chain_steps(self, problem: Problem, ctx: RunContext, *, index: int = 0,
                    stride: int = 1) -> Steps:
        """The steps of chain `index` of a series (a ladder's chain rung draws several): its
        first call is sample `index` of the seeded stream, its k-th "Wait" sample
        `index + k * stride`, so the chains of a series of `stride` never share a sample."""
        model = ctx.model(self.role)
        prompt = format_question(problem.question)
        probe = GenRequest(prompt=prompt, max_tokens=1, mode=self.mode, problem_id=problem.id)
        prompt_units = ctx.prompt_units(self.role, probe)
        per_token = ctx.ledger.cost.of(model).output
        held = self.answer_tokens * per_token  # kept back for a forced final answer
        length = min(self.max_tokens,
                     int((ctx.ledger.remaining - prompt_units - held) // per_token))
        if length < self.min_tokens:
            return insufficient(ctx, f"a {self.min_tokens}-token chain of {model}")
        request = GenRequest(prompt=prompt, max_tokens=length, temperature=self.temperature,
                             seed=ctx.seed, offset=index, mode=self.mode, problem_id=problem.id)
        call = ctx.try_call(self.role, request)
        if call is None:
            return insufficient(ctx, f"a {length}-token chain of {model}")
        (completions,) = yield [call]
        last = completions[0]
        used = last.tokens
        text = last.text
        waits = 0
        while text is not None:  # budget forcing needs the chain's text
            if last.finish_reason == "length" and self.answer_tokens:
                forced = yield from self._force_answer(ctx, request, text)
                if forced is not None:
                    used += forced.tokens
                    last = forced
                break
            left = length - used
            if last.finish_reason == "stop" and waits < self.max_waits \
                    and left >= self.min_continue:
                waits += 1
                text += CONTINUE_CUE
                more = GenRequest(prompt=prompt, max_tokens=left, temperature=self.temperature,
                                  seed=ctx.seed, offset=index + waits * stride,
                                  mode=self.mode, problem_id=problem.id,
                                  assistant_prefix=text)
                cont = ctx.try_call(self.role, more)
                if cont is None:
                    break
                ctx.note(f"chain: stopped after {used} tokens with {left} left; 'Wait' "
                         f"({waits}/{self.max_waits})")
                (completions,) = yield [cont]
                # Backends read the answer from prefix + continuation: the latest one counts.
                last = completions[0]
                used += last.tokens
                text += last.text or ""
                continue
            break
        votes = count_votes([last.answer])
        ctx.note(f"chain: {used} tokens, answer {votes.leader!r}")
        status = "answered" if votes.leader is not None else "abstained"
        return Outcome(answer=votes.leader, status=status, votes=votes,
                       tier_votes={self.role: votes})

    def _force_answer(self, ctx: RunContext, request: GenRequest, text: str):
        """Cut thinking and ask for the final answer (greedy, `answer_tokens` at most)."""
        ask = GenRequest(prompt=request.prompt, max_tokens=self.answer_tokens, temperature=0,
                         mode=self.mode, problem_id=request.problem_id,
                         assistant_prefix=text + FINAL_ANSWER_CUE)
        call = ctx.try_call(self.role, ask)
        if call is None:
            ctx.note("chain: cut at its share; no budget left to force the answer")
            return None
        ctx.note(f"chain: cut at its share; forcing the final answer ({self.answer_tokens} "
                 f"tokens)")
        (completions,) = yield [call]
        return completions[0]
