"""Probe, measure, decide: a small-model vote that escalates on a learned difficulty score.

The strategy draws a first wave (`probe`) of small-model samples, scores the answer
distribution with a logistic model (`weights` over `PROBE_FEATURES`: agreement, entropy,
abstentions, distinct answers, 1/samples, and the prompt-feature prior the policy computed),
and then, after every wave:

* escalates at once when the difficulty is at least `escalate_early_above`;
* stops sampling when the leader is safe (`confidence`, the Adaptive-Consistency Beta test);
* otherwise draws another wave, up to `max_samples` (fewer when the budget runs short).

When sampling ends it escalates to the large model if nobody answered or the difficulty is at
least `escalate_above`, and the budget still pays for the call. The probe's tokens are part of
the vote, never thrown away. Decisions compare the logit `z` with the logit of a threshold,
so the vectorised evaluator (`tts.evaluate`) reproduces them bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tts.answers import Votes, count_votes
from tts.errors import ValidationError
from tts.prompts import format_question
from tts.signals import climb_logit, climbs, escalates_early, vote_signals, vote_stops
from tts.signals import threshold_logit as logit  # noqa: F401  (tts.policy)
from tts.strategies._checks import (check_bool, check_fraction, check_positive_int,
                                   check_temperature)
from tts.types import is_finite_number, shown
from tts.strategies.base import Outcome, RunContext, Steps, insufficient, with_tiers
from tts.strategies.escalate import Escalate, escalate_steps
from tts.strategies.vote import Waves, leader_confidence
from tts.types import GenRequest, Problem

PROBE_FEATURES: tuple[str, ...] = ("agreement", "entropy", "abstain_share", "distinct_share",
                                   "inv_samples", "prior")
"""Inputs of the probe difficulty model, in the order of `weights[1:]` (weights[0] is the bias).

agreement: leader votes / answering samples; entropy: natural-log entropy of the answer
classes; abstain_share: samples without an answer / samples drawn; distinct_share: answer
classes / samples drawn; inv_samples: 1 / samples drawn; prior: the prompt-feature logit."""

DEFAULT_PROBE_WEIGHTS: tuple[float, ...] = (3.0, -6.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""Untuned default: difficulty 0.5 at agreement 0.5, rising as agreement falls."""


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def probe_features(votes: Votes, samples: int, prior: float) -> tuple[float, ...]:
    """The `PROBE_FEATURES` of a vote over `samples` drawn samples (samples >= 1)."""
    return (*vote_signals(votes.agreement, votes.entropy, votes.abstained, votes.distinct,
                          samples), prior)


probe_logit = climb_logit
"""weights[0] + sum(w * f), summed left to right (one definition with the ladder's score)."""


@dataclass(frozen=True, slots=True)
class Adaptive(Waves):
    """Small-model vote in waves that escalates when its probe difficulty is high.

    Built per prompt by `tts.policy.ParamPolicy` (which sets `prior`, the prompt-feature
    logit), or by hand: `Adaptive(probe=4, max_samples=16, escalate_above=0.5)`.
    """

    name = "adaptive"
    confidence: float = 1.0
    """Stop sampling when leader_confidence(top, runner_up) >= this (1.0: never stop early)."""
    probe: int = 4
    """Samples in the first wave (the probe); later waves have `wave`."""
    escalate_above: float = 0.5
    """Escalate after sampling when the difficulty (sigmoid of the logit) is >= this."""
    escalate_early_above: float = 1.0
    """Stop sampling and escalate at once when the difficulty is >= this (1.0: never)."""
    weights: tuple[float, ...] = DEFAULT_PROBE_WEIGHTS
    """Bias then one weight per `PROBE_FEATURES` entry."""
    prior: float = 0.0
    """Prompt-feature logit of this prompt (0.0 when no prompt model is used)."""
    large: bool = True
    """Whether escalation is allowed (False: a plain adaptive small-model vote)."""
    large_samples: int = 1
    large_max_tokens: int = 512
    keep_for_large: bool = False
    """Hold the large call's price while voting, so the vote never eats it."""

    def __post_init__(self) -> None:
        for name in ("probe", "wave", "max_samples", "max_tokens", "large_samples",
                     "large_max_tokens"):
            check_positive_int(name, getattr(self, name))
        check_fraction("confidence", self.confidence, low=0.5)
        check_fraction("escalate_above", self.escalate_above)
        check_fraction("escalate_early_above", self.escalate_early_above)
        check_temperature("temperature", self.temperature, positive=True)  # the vote samples
        weights = self.weights
        if not isinstance(weights, (list, tuple)) or len(weights) != len(PROBE_FEATURES) + 1:
            raise ValidationError(f"`weights` must be {len(PROBE_FEATURES) + 1} numbers (bias, "
                                  f"then {', '.join(PROBE_FEATURES)}), got {weights!r}.",
                                  parameter="weights", value=weights)
        for w in (*weights, self.prior):
            if not is_finite_number(w):
                raise ValidationError(f"`weights` and `prior` must be finite numbers, got "
                                      f"{shown(w)}.",
                                      parameter="weights", value=w)
        object.__setattr__(self, "weights", tuple(float(w) for w in weights))
        object.__setattr__(self, "prior", float(self.prior))
        check_bool("large", self.large)
        check_bool("keep_for_large", self.keep_for_large)

    @property
    def roles(self):  # type: ignore[override]
        return ("small", "large") if self.large else ("small",)

    def _large(self) -> Escalate:
        return Escalate(samples=self.large_samples, max_tokens=self.large_max_tokens,
                        temperature=self.temperature)

    def difficulty_logit(self, votes: Votes, samples: int) -> float:
        return probe_logit(self.weights, probe_features(votes, samples, self.prior))

    def steps(self, problem: Problem, ctx: RunContext) -> Steps:
        held = None
        if self.large and self.keep_for_large:
            greedy = self.large_samples == 1
            held = ctx.try_call("large", GenRequest(
                prompt=format_question(problem.question), n=self.large_samples,
                max_tokens=self.large_max_tokens,
                temperature=0.0 if greedy else self.temperature, seed=ctx.seed,
                problem_id=problem.id))
        answers: list[str | None] = []
        votes = count_votes(answers)
        z: float | None = None
        escalate_now = False
        status_small = None
        while len(answers) < self.max_samples:
            want = min(self.wave if answers else self.probe, self.max_samples - len(answers))
            request = self._request(problem, ctx, want, len(answers))
            n = ctx.affordable("small", request, want)
            if n == 0:
                if not answers:
                    status_small = "insufficient_budget"
                else:
                    ctx.note(f"adaptive: budget stops sampling at {len(answers)}")
                break
            if n < want:
                request = self._request(problem, ctx, n, len(answers))
            (completions,) = yield [ctx.call("small", request)]
            answers.extend(c.answer for c in completions)
            votes = count_votes(answers)
            z = self.difficulty_logit(votes, len(answers))
            if self.large and escalates_early(z, self.escalate_early_above):
                escalate_now = True
                ctx.note(f"adaptive: difficulty {sigmoid(z):.2f} after {len(answers)} samples "
                         f">= {self.escalate_early_above}: escalate now")
                break
            if vote_stops(votes.total, leader_confidence(votes.top, votes.runner_up),
                          self.confidence):
                break
        difficulty = None if z is None else sigmoid(z)
        if status_small == "insufficient_budget":
            small = insufficient(ctx, f"one {self.max_tokens}-token sample of "
                                      f"{ctx.model('small')}")
        else:
            ctx.note(f"adaptive: {votes.total} answers of {len(answers)} samples, leader "
                     f"{votes.leader!r}, agreement {votes.agreement:.2f}, difficulty "
                     f"{difficulty:.2f}")
            small = Outcome(answer=votes.leader,
                            status="answered" if votes.leader is not None else "abstained",
                            votes=votes, difficulty=difficulty, tier_votes={"small": votes})
        if held is not None:
            ctx.ledger.cancel(held.reservation)
        if not self.large:
            return small
        if not escalate_now and not climbs(small.status == "answered", votes.agreement, z, 0.0,
                                           self.escalate_above):
            ctx.note(f"adaptive: keep small answer (difficulty {difficulty:.2f} < "
                     f"{self.escalate_above})")
            return small
        large = yield from escalate_steps(self._large(), problem, ctx, role="large")
        if large.status == "insufficient_budget":
            ctx.note("adaptive: cannot afford escalation; keeping the small-model vote")
            return small
        if large.status != "answered" and small.status == "answered":
            ctx.note("adaptive: large model abstained; keeping the small-model vote")
            return with_tiers(Outcome(answer=small.answer, status="answered",
                                      votes=small.votes, escalated=True,
                                      difficulty=difficulty, tier_votes=large.tier_votes), small)
        return with_tiers(Outcome(answer=large.answer, status=large.status, votes=large.votes,
                                  escalated=True, difficulty=difficulty,
                                  tier_votes=large.tier_votes), small)

    def _request(self, problem: Problem, ctx: RunContext, n: int, offset: int) -> GenRequest:
        return GenRequest(prompt=format_question(problem.question), n=n,
                          max_tokens=self.max_tokens, temperature=self.temperature,
                          seed=ctx.seed, offset=offset, problem_id=problem.id)
