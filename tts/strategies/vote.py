"""Majority vote over small-model samples drawn in waves, stopping early once the leader is
safe."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

from scipy.special import betainc

from tts.answers import Votes, count_votes, count_weighted_votes
from tts.errors import ValidationError
from tts.prompts import format_question
from tts.signals import (CLIMB_FEATURES, climb_logit, escalates_early, leader_conf,
                         vote_signals, vote_stops)
from tts.signals import sampling_mode
from tts.strategies._checks import (check_bool, check_fraction, check_mode, check_positive_int,
                                   check_role, check_temperature)
from tts.strategies.mixed import interleave, leaders_split, mixed_calls, unanimous
from tts.strategies.base import Outcome, RunContext, Steps, Strategy, insufficient
from tts.types import Completion, GenRequest, Problem, Role

WEIGHTS = ("none", "min_conf", "logprob")
"""What a sample's vote counts in `Vote.weight`."""


@lru_cache(maxsize=4096)
def leader_confidence(top: float, runner_up: float) -> float:
    """P(leader's true share > runner-up's) under a uniform Beta prior on the two counts.

    The stopping test of Adaptive-Consistency (Aggarwal et al. 2023, Beta criterion):
    with p ~ Beta(top + 1, runner_up + 1), the probability that p > 1/2. Counts may be
    fractional (confidence-weighted votes rescaled to counts, `Vote.weight`).
    """
    return float(betainc(runner_up + 1, top + 1, 0.5))


def missing_confidence(weight: str, keep: float, model: str, *,
                       scored: bool = False) -> ValidationError:
    """The error of a confidence vote (`Vote.weight`, `Vote.keep`) on a sample of `model`
    that came without the confidence it needs (also raised by `tts.evaluate`); `scored`: the
    missing one is the min_conf a ladder rung's climb score reads (`leader_conf`)."""
    if scored:
        asked, what, fix = ("a climb score that reads `leader_conf` (a nonzero `weights` entry "
                            "for it)"), "min_conf", "a zero leader_conf weight"
        option, value = "weights", "leader_conf"
    else:
        option, value = ("weight", weight) if weight != "none" else ("keep", keep)
        asked, fix = f"`{option}={value!r}`", "weight='none' and keep=1.0"
        what = "mean logprob" if weight == "logprob" else "min_conf"
    return ValidationError(
        f"{asked} needs each sample's {what}, but model {model} gave a sample "
        f"without one: its backend reports no confidences (a replay bank built without "
        f"logprobs, or a server that does not return them). Use {fix}, "
        f"or a backend that gives them (vLLM, or a bank built with logprobs).",
        parameter=option, value=value)


EARLY_FEATURES = ("check_agreement", "lower_agreement", "leader_conf")
"""Climb features an early climb cannot read (a wave shows none of them): a score that climbs
early must give them weight 0."""


@dataclass(frozen=True, slots=True)
class ClimbEarly:
    """Stop a vote after any wave whose climb score (`tts.signals.climb_logit` of `weights`
    over the vote's own signals and the prompt's `prior`; the other features 0) is at least
    the logit of `above`: the probe-and-escalate rule of the adaptive strategy, on a ladder
    rung. The vote's Outcome then says `climb_now`."""

    weights: tuple[float, ...]
    above: float
    prior: float = 0.0

    def fires(self, votes: Votes, samples: int) -> bool:
        features = (*vote_signals(votes.agreement, votes.entropy, votes.abstained,
                                  votes.distinct, samples), 0.0, 0.0, self.prior, 0.0)
        assert len(features) == len(CLIMB_FEATURES)
        return bool(escalates_early(climb_logit(self.weights, features), self.above))


def _count(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:.3g}"


@dataclass(frozen=True, slots=True)
class Waves(Strategy):
    """What a vote in waves samples, shared by `Vote` and `Adaptive`: up to `max_samples`
    samples of at most `max_tokens` tokens at `temperature`, `wave` at a time, stopping once
    `leader_confidence(top, runner_up) >= confidence` (1.0 never stops early)."""

    max_samples: int = 16
    wave: int = 4
    """Samples per wave (in `Adaptive`, every wave after the first, the probe)."""
    max_tokens: int = 512
    temperature: float = 0.7
    confidence: float = 0.95


@dataclass(frozen=True, slots=True)
class Vote(Waves):
    """Draw up to `max_samples` samples in waves of `wave`; answer with the majority.

    After each wave, stop when `leader_confidence(top, runner_up) >= confidence`
    (confidence 1.0 never stops early). Samples with no answer abstain.

    Confidence (DeepConf, Fu et al. 2025): `weight` makes each sample's vote count its
    confidence, and `keep` votes with only the most confident samples drawn so far. Either
    asks the backend for logprobs, and every answering sample must come with the confidence
    (else a ValidationError names the option and the model). With a weight, the stop test
    uses the weighted tallies rescaled to counts: leader and runner-up weights times
    n / (total weight of the n counted samples), so confidence can also stop sampling early
    (`tts.answers.WeightedVotes.effective_counts`). Result votes are sample counts of the
    counted samples, ordered leader first by weight.
    """

    name = "vote"
    role: Role = "small"
    mode: str | None = None
    """Bank mode / representation to sample (e.g. "pot"); None: "sample" ("greedy" at
    temperature 0)."""
    weight: str = "none"
    """What a sample's vote counts: "none" (1), "min_conf" (its lowest sliding-window
    confidence, `Completion.min_conf`) or "logprob" (exp of its mean token logprob)."""
    keep: float = 1.0
    """In (0, 1]: vote with only the ceil(keep * n) most confident of the n answering samples
    drawn so far (DeepConf's filter; ties by sample order), ranked by the `weight` confidence
    (min_conf when weight is "none"). 1.0 keeps all."""
    report_confidence: bool = False
    """Also ask for confidences and report the mean min_conf of the counted samples voting
    for the leader (`Outcome.leader_conf`, `tts.signals.leader_conf`): for a ladder rung whose
    climb score reads it. Every answering sample then needs its min_conf."""
    probe: int | None = None
    """Samples in the first wave (None: `wave`)."""
    climb_early: ClimbEarly | None = None
    """A ladder rung's early climb (None: none)."""
    mix_mode: str | None = None
    """A second representation to vote over with `mode` (the mixture-of-thought vote): draws
    alternate between the two streams, `tts.strategies.mixed`. The vote's Outcome says
    whether the two representations' own majorities differ (`split`). A mixed vote samples
    (temperature > 0) and votes plainly (no `weight`, `keep` or `report_confidence`)."""
    window_stop: bool = False
    """Stop after a wave whose samples all give one answer (Early-Stopping
    Self-Consistency, Li et al. 2024: the wave is ESC's window)."""

    def __post_init__(self) -> None:
        check_positive_int("max_samples", self.max_samples)
        check_positive_int("wave", self.wave)
        if self.probe is not None:
            check_positive_int("probe", self.probe)
        check_positive_int("max_tokens", self.max_tokens)
        check_fraction("confidence", self.confidence, low=0.5)
        check_temperature("temperature", self.temperature)
        check_role("role", self.role)
        check_mode("mode", self.mode)
        if not isinstance(self.weight, str) or self.weight not in WEIGHTS:
            raise ValidationError(f"`weight` must be one of {list(WEIGHTS)}, got "
                                  f"{self.weight!r}.", parameter="weight", value=self.weight)
        check_fraction("keep", self.keep)
        if self.keep == 0:
            raise ValidationError("`keep` must be in (0, 1], got 0.", parameter="keep",
                                  value=self.keep)
        check_bool("window_stop", self.window_stop)
        check_mode("mix_mode", self.mix_mode)
        if self.mix_mode is not None:
            self._check_mix()
        if not isinstance(self.report_confidence, bool):
            raise ValidationError(f"`report_confidence` must be True or False, got "
                                  f"{self.report_confidence!r}.", parameter="report_confidence",
                                  value=self.report_confidence)

    def _check_mix(self) -> None:
        if self.mix_mode == sampling_mode(self.mode, self.temperature):
            raise ValidationError(f"`mix_mode` must differ from the vote's own mode, got "
                                  f"{self.mix_mode!r} twice.", parameter="mix_mode",
                                  value=self.mix_mode)
        check_temperature("temperature", self.temperature, positive=True)
        if self.uses_confidence or self.report_confidence is not False:
            raise ValidationError("a mixed vote (`mix_mode`) votes plainly: `weight` must be "
                                  "'none', `keep` 1.0 and no confidence reported.",
                                  parameter="mix_mode", value=self.mix_mode)

    @property
    def uses_confidence(self) -> bool:
        """Whether votes need each sample's confidence (a weight or a filter)."""
        return self.weight != "none" or self.keep < 1.0

    def options(self) -> dict:
        """Settings for Plans and reports; `weight`, `keep` and `report_confidence` only when
        set, so plain votes describe themselves as before these options existed."""
        out = Strategy.options(self)  # slots=True dataclasses cannot use super()
        for name, default in (("weight", "none"), ("keep", 1.0), ("report_confidence", False),
                              ("probe", None), ("climb_early", None), ("mix_mode", None),
                              ("window_stop", False)):
            if out.get(name) == default:
                del out[name]
        return out

    @property
    def roles(self) -> tuple[Role, ...]:  # type: ignore[override]
        return (self.role,)

    def steps(self, problem: Problem, ctx: RunContext) -> Steps:
        answers: list[str | None] = []
        confs: list[float | None] = []  # what each sample votes with (weight, keep)
        mins: list[float | None] = []  # each sample's min_conf (report_confidence)
        members: tuple[int, ...] = ()
        dropped = 0
        votes = count_votes(answers)
        climb_now = False
        while len(answers) < self.max_samples:
            first = self.wave if answers or self.probe is None else self.probe
            want = min(first, self.max_samples - len(answers))
            if self.mix_mode is None:
                request = self._request(problem, ctx, want, len(answers))
                n = ctx.affordable(self.role, request, want)
                calls = [(0, ctx.call(self.role, request if n == want else self._request(
                    problem, ctx, n, len(answers))))] if n else []
            else:
                calls = mixed_calls(ctx, self.role, len(answers), want, lambda which, m, off:
                                    self._request(problem, ctx, m, off, which))
            if not calls:
                if not answers:
                    return insufficient(ctx, f"one {self.max_tokens}-token sample of "
                                             f"{ctx.model(self.role)}")
                ctx.note(f"vote: budget stops sampling at {len(answers)}")
                break
            replies = yield [call for _, call in calls]
            completions = replies[0] if self.mix_mode is None else interleave(
                len(answers), [(which, done) for (which, _), done in zip(calls, replies)])
            answers.extend(c.answer for c in completions)
            if self.uses_confidence:
                confs.extend(self._confidence(c, ctx) for c in completions)
            if self.report_confidence:
                mins.extend(self._confidence(c, ctx, scored=True) for c in completions)
            if self.uses_confidence or self.report_confidence:
                weighted = count_weighted_votes(answers, confs if self.uses_confidence else mins,
                                                keep=self.keep, weighted=self.weight != "none")
                votes, members, dropped = weighted.votes, weighted.members, weighted.dropped
                top, runner_up = weighted.effective_counts() if self.weight != "none" else \
                    (votes.top, votes.runner_up)
            else:
                votes = count_votes(answers)
                top, runner_up = votes.top, votes.runner_up
            if self.climb_early is not None and self.climb_early.fires(votes, len(answers)):
                ctx.note(f"vote: climb score after {len(answers)} samples >= "
                         f"{self.climb_early.above}: climb now")
                climb_now = True
                break
            if self.window_stop and unanimous([c.answer for c in completions]):
                if len(answers) < self.max_samples:
                    ctx.note(f"vote: a unanimous window of {len(completions)} after "
                             f"{len(answers)} samples")
                break
            if self.confidence < 1.0 and vote_stops(votes.total, leader_confidence(
                    top, runner_up), self.confidence):
                if len(answers) < self.max_samples:
                    ctx.note(f"vote: leader safe after {len(answers)} samples "
                             f"({_count(top)} vs {_count(runner_up)})")
                break
        out = self._outcome(votes, ctx)
        return replace(out, dropped=dropped, climb_now=climb_now, leader_conf=_leader_conf(
            mins, members) if self.report_confidence else 0.0,
            split=self.mix_mode is not None and leaders_split(answers))

    def _confidence(self, c: Completion, ctx: RunContext, *,
                    scored: bool = False) -> float | None:
        """The confidence a sample votes with, or with `scored` its min_conf for
        `leader_conf` (None for a sample without an answer)."""
        if c.answer is None:
            return None
        measure = "logprob" if self.weight == "logprob" and not scored else "min_conf"
        value = c.mean_logprob if measure == "logprob" else c.min_conf
        if value is None:
            raise missing_confidence(self.weight, self.keep, ctx.model(self.role), scored=scored)
        return math.exp(value) if measure == "logprob" else value

    def _request(self, problem: Problem, ctx: RunContext, n: int, offset: int,
                 which: int = 0) -> GenRequest:
        """A request of the vote's mode (of `mix_mode` when `which` is 1)."""
        return GenRequest(prompt=format_question(problem.question), n=n,
                          max_tokens=self.max_tokens, temperature=self.temperature,
                          seed=ctx.seed, offset=offset, problem_id=problem.id,
                          mode=self.mix_mode if which else self.mode,
                          logprobs=self.uses_confidence or self.report_confidence)

    def _outcome(self, votes: Votes, ctx: RunContext) -> Outcome:
        ctx.note(f"vote: {votes.total} answers, {votes.abstained} abstained, leader "
                 f"{votes.leader!r} with agreement {votes.agreement:.2f}")
        status = "answered" if votes.leader is not None else "abstained"
        return Outcome(answer=votes.leader, status=status, votes=votes,
                       tier_votes={self.role: votes})


def _leader_conf(mins: list[float | None], members: tuple[int, ...]) -> float:
    """`tts.signals.leader_conf` of the leader's counted samples `members` (0 without any):
    their min_confs `mins` added one at a time in draw order."""
    total = 0.0
    for i in members:
        total = total + mins[i]  # type: ignore[operator]
    return leader_conf(total, len(members))
