"""Small-model vote first; escalate to the large model when the vote is unsure."""

from __future__ import annotations

from dataclasses import dataclass

from tts.signals import climbs
from tts.strategies._checks import check_bool, check_fraction, check_positive_int
from tts.strategies.base import Outcome, RunContext, Steps, with_tiers
from tts.strategies.escalate import Escalate, escalate_steps, large_request
from tts.strategies.vote import Vote, Waves


@dataclass(frozen=True, slots=True)
class Cascade(Waves):
    """Vote with the small model; if the leader's share of the votes is below `escalate_below`
    (or nobody answered) and the budget still pays for it, ask the large model.

    `keep_for_large` reserves the large call's price before voting, so the vote never eats
    the budget escalation would need (at the cost of fewer small samples).
    """

    name = "cascade"
    roles = ("small", "large")
    escalate_below: float = 0.6
    large_samples: int = 1
    large_max_tokens: int = 512
    keep_for_large: bool = False

    def __post_init__(self) -> None:
        check_fraction("escalate_below", self.escalate_below)
        check_positive_int("large_samples", self.large_samples)
        check_bool("keep_for_large", self.keep_for_large)
        # Vote and Escalate validate the rest when built.
        self._vote()
        self._large()

    def _vote(self) -> Vote:
        return Vote(max_samples=self.max_samples, wave=self.wave, max_tokens=self.max_tokens,
                    temperature=self.temperature, confidence=self.confidence)

    def _large(self) -> Escalate:
        return Escalate(samples=self.large_samples, max_tokens=self.large_max_tokens,
                        temperature=self.temperature)

    def steps(self, problem, ctx: RunContext) -> Steps:
        held = None
        if self.keep_for_large:
            held = ctx.try_call("large", large_request(self._large(), problem, ctx))
        small = yield from self._vote().steps(problem, ctx)
        if held is not None:
            ctx.ledger.cancel(held.reservation)
        votes = small.votes
        # The climb rule with the agreement floor alone (no score: 1.0 never fires).
        if not climbs(small.status == "answered", votes.agreement, 0.0, self.escalate_below,
                      1.0):
            ctx.note(f"cascade: keep small answer (agreement {votes.agreement:.2f} >= "
                     f"{self.escalate_below})")
            return small
        large = yield from escalate_steps(self._large(), problem, ctx, role="large")
        if large.status == "insufficient_budget":
            if small.status == "insufficient_budget":
                return large
            ctx.note("cascade: cannot afford escalation; keeping the small-model vote")
            return with_tiers(small, Outcome(answer=None, status=large.status,
                                             votes=large.votes))
        if large.status != "answered" and small.status == "answered":
            ctx.note("cascade: large model abstained; keeping the small-model vote")
            return with_tiers(Outcome(answer=small.answer, status="answered",
                                      votes=small.votes, escalated=True,
                                      tier_votes=large.tier_votes), small)
        return with_tiers(large, small)
