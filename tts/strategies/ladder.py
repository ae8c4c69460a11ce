"""Climb a ladder of models, cheapest first, until a rung's own signals say its answer holds.

Each rung is a vote of one model (`role`) in one representation (`mode`), or in two drawn
alternately (`mix_mode`: the mixture-of-thought vote, which may also climb when the two
representations' majorities differ, `climb_split`), drawn in waves with Adaptive-Consistency
stopping (or ESC's stop on a unanimous wave, `window_stop`), optionally followed by a few check
samples in another representation (CoT beside PoT: the mixture-of-thought signal). A rung whose mode is a chain
mode ("chain" or "chain-<L>") instead runs up to `max_samples` long chains one after another
(`tts.strategies.chain.Chain`, each sized to what is left of the budget, with budget forcing
live when `answer_tokens` / `max_waits` say so) and votes them; one chain is the usual case,
where agreement with the rung below is the signal that matters. Several rungs may use the same
model (a vote, then a chain of the small model, then the large one). The rung then scores its vote
with `tts.signals` (agreement, entropy, check agreement, agreement with the rung below, prompt
prior, and the leader's mean min_conf where the rung asks for confidences: DeepConf, which a
vote rung may also use to weight or filter its vote, `weight` and `keep` as in `Vote`) and
climbs when `tts.signals.climbs` says so and the next rung is affordable. The last
rung's answer is final; a rung that cannot pay for its first sample, or that abstains, leaves
the answer of the rung below in place (with no answer below, the ladder climbs on: the next
rung may be affordable, as a cascade escalates past a vote it cannot pay for).

    Ladder(rungs=(Rung(role="small", mode="pot", max_samples=8, climb_below=0.6),
                  Rung(role="large", mode="greedy", temperature=0.0, max_samples=1)))
"""

from __future__ import annotations

from dataclasses import dataclass

from tts.answers import count_votes, equivalent
from tts.errors import ValidationError
from tts.prompts import format_question
from tts.signals import CLIMB_FEATURES, climb_logit, climbs, threshold_logit, vote_signals
from tts.strategies._checks import (check_bool, check_fraction, check_mode, check_positive_int,
                                    check_role, check_weights)
from tts.types import is_finite_number, shown
from tts.strategies.base import Outcome, RunContext, Steps, Strategy, with_tiers
from tts.strategies.chain import Chain, is_chain_mode
from tts.strategies.vote import EARLY_FEATURES, ClimbEarly, Vote
from tts.types import GenRequest, Problem, Role

__all__ = ["Rung", "Ladder", "rung_features"]

_CONF = 1 + CLIMB_FEATURES.index("leader_conf")
"""Position of the leader_conf weight in `Rung.weights` (after the bias)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rung:
    """One step of a ladder: a vote of one model, a check, and when to climb past it."""

    role: Role = "small"
    mode: str | None = None
    """Bank mode / representation of the vote (None: "sample", or "greedy" at T=0)."""
    wave: int = 4
    max_samples: int = 16
    max_tokens: int = 512
    temperature: float = 0.7
    confidence: float = 1.0
    """Adaptive-Consistency stop (1.0: draw all max_samples)."""
    weight: str = "none"
    """Vote rungs: `Vote.weight` (what a sample's vote counts: "none", "min_conf" or
    "logprob", DeepConf's confidence-weighted vote)."""
    keep: float = 1.0
    """Vote rungs: `Vote.keep` (vote with only the most confident share of the samples)."""
    check_mode: str | None = None
    """Another representation of the same model to check the leader against (None: none)."""
    check_samples: int = 0
    climb_below: float = 0.0
    """Climb when the vote's agreement is below this (a floor no score can override)."""
    climb_above: float = 1.0
    """Climb when the sigmoid of the score is >= this (1.0: never by score)."""
    weights: tuple[float, ...] = (0.0,) * (len(CLIMB_FEATURES) + 1)
    """Bias then one weight per `tts.signals.CLIMB_FEATURES` entry."""
    answer_tokens: int = 0
    """Chain rungs: `Chain.answer_tokens` (budget forcing's final answer; 0: off)."""
    max_waits: int = 0
    """Chain rungs: `Chain.max_waits` (budget forcing's "Wait" continuations; 0: off)."""
    probe: int | None = None
    """Vote rungs: samples in the first wave (None: `wave`)."""
    climb_early_above: float = 1.0
    """Vote rungs: climb at once after a wave whose score (over the vote's own signals and
    the prior) has a sigmoid >= this (1.0: never); the adaptive strategy's early escalation."""
    hold_next: bool = False
    """Hold the price of the next rung's first call while this rung votes, so the vote never
    eats what climbing needs (a cascade's `keep_for_large`)."""
    skip_above: float = 1.0
    """Skip this rung, before it draws anything, when the prompt's difficulty (the sigmoid of
    the ladder's `prior`: a prompt-feature model or a router) is >= this (1.0: never; 0.0:
    always). A router sending a prompt straight up the ladder; never on the top rung."""
    mix_mode: str | None = None
    """Vote rungs: `Vote.mix_mode`, a second representation the vote draws alternately with
    `mode` (the mixture-of-thought vote of Yue et al. 2023; None: one representation)."""
    window_stop: bool = False
    """Vote rungs: `Vote.window_stop`, stop after a unanimous wave (Early-Stopping
    Self-Consistency)."""
    climb_split: bool = False
    """Mixed vote rungs: also climb when the two representations' own majorities differ
    (MoT's verification: CoT and PoT answers disagree)."""

    def __post_init__(self) -> None:
        check_role("role", self.role)
        check_bool("hold_next", self.hold_next)
        check_bool("window_stop", self.window_stop)
        check_bool("climb_split", self.climb_split)
        check_mode("mix_mode", self.mix_mode)
        if self.climb_split and self.mix_mode is None:
            raise ValidationError("`climb_split` reads a mixed vote's two representations: it "
                                  "needs `mix_mode`.", parameter="climb_split", value=True)
        check_fraction("climb_early_above", self.climb_early_above)
        check_fraction("skip_above", self.skip_above)
        check_mode("mode", self.mode)
        check_mode("check_mode", self.check_mode)
        for name in ("answer_tokens", "max_waits"):
            check_positive_int(name, getattr(self, name), low=0)
        if self.is_chain:
            if self.mix_mode is not None or self.window_stop:
                raise ValidationError(f"a chain rung ({self.mode}) draws its chains one by "
                                      f"one: `mix_mode` and `window_stop` are for vote rungs.",
                                      parameter="mix_mode", value=self.mix_mode)
            if self.check_mode is not None:
                raise ValidationError(f"a chain rung ({self.mode}) takes no check; got "
                                      f"`check_mode` {self.check_mode!r}.",
                                      parameter="check_mode", value=self.check_mode)
            if self.confidence != 1.0:
                raise ValidationError(f"a chain rung ({self.mode}) draws all `max_samples` "
                                      f"chains: `confidence` must be 1.0, got "
                                      f"{shown(self.confidence)}.", parameter="confidence",
                                      value=self.confidence)
            if self.probe is not None or self.climb_early_above != 1.0:
                raise ValidationError(f"a chain rung ({self.mode}) draws its chains one by "
                                      f"one: `probe` and `climb_early_above` are for vote "
                                      f"rungs.", parameter="climb_early_above",
                                      value=self.climb_early_above)
        elif self.answer_tokens or self.max_waits:
            raise ValidationError(f"`answer_tokens` and `max_waits` are for chain rungs (mode "
                                  f"\"chain-<L>\"), not mode {self.mode!r}.",
                                  parameter="answer_tokens", value=self.answer_tokens)
        for name in ("wave", "max_samples", "max_tokens"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("check_samples", self.check_samples, low=0)
        if (self.check_samples > 0) != (self.check_mode is not None):
            raise ValidationError("a rung needs both `check_mode` and `check_samples` > 0, or "
                                  "neither.", parameter="check_mode", value=self.check_mode)
        check_fraction("confidence", self.confidence, low=0.5)
        check_fraction("climb_below", self.climb_below)
        check_fraction("climb_above", self.climb_above)
        object.__setattr__(self, "weights", check_weights("weights", self.weights,
                                                         CLIMB_FEATURES))
        if self.climb_early_above < 1.0:
            read = [f for f in EARLY_FEATURES if self.weights[1 + CLIMB_FEATURES.index(f)]]
            if read:
                raise ValidationError(f"an early climb reads only what a wave shows (the "
                                      f"vote's signals and the prior); its `weights` must give "
                                      f"{', '.join(read)} weight 0.", parameter="weights",
                                      value=self.weights)
        if self.is_chain:
            self._check_chain_confidence()
            self.chain()  # validates the chain's settings
        else:
            self.vote()  # validates temperature against max_samples / wave

    def _check_chain_confidence(self) -> None:
        """A chain rung reads no confidences: its chains vote plainly and its score gives
        `leader_conf` no weight."""
        for name, default in (("weight", "none"), ("keep", 1.0)):
            if getattr(self, name) != default:
                raise ValidationError(f"a chain rung ({self.mode}) votes its chains plainly: "
                                      f"`{name}` must be {default!r}, got "
                                      f"{getattr(self, name)!r}.", parameter=name,
                                      value=getattr(self, name))
        if self.weights[_CONF] != 0:
            raise ValidationError(f"a chain rung ({self.mode}) measures no confidence: the "
                                  f"`weights` entry of leader_conf must be 0, got "
                                  f"{shown(self.weights[_CONF])}.", parameter="weights",
                                  value=self.weights)

    @property
    def measures_leader_conf(self) -> bool:
        """Whether the rung asks for min_conf, and so measures `leader_conf` (else 0): its
        score reads it (a nonzero weight), or its vote is weighted by or filtered on min_conf.
        A vote weighted by logprob alone does not need min_conf, so it does not measure it."""
        return self.weights[_CONF] != 0 or self.weight == "min_conf" or (
            self.weight == "none" and self.keep < 1.0)

    @property
    def is_chain(self) -> bool:
        """Whether the rung runs long chains (its mode is "chain" or "chain-<L>")."""
        return is_chain_mode(self.mode)

    def chain(self) -> Chain:
        """One chain of a chain rung (up to `max_tokens`, fewer when the budget is short)."""
        return Chain(max_tokens=self.max_tokens, temperature=self.temperature, role=self.role,
                     mode=self.mode or "chain", answer_tokens=self.answer_tokens,
                     max_waits=self.max_waits)

    def steps(self, problem: Problem, ctx: RunContext, prior: float = 0.0,
              top: bool = False) -> Steps:
        """The rung's vote (a chain rung: its chains, voted); returns its Outcome. The `top`
        rung of a ladder has nothing to climb to, so it never climbs early."""
        if not self.is_chain:
            return (yield from self.vote(prior, early=not top).steps(problem, ctx))
        chain = self.chain()
        answers: list[str | None] = []
        for j in range(self.max_samples):
            out = yield from chain.chain_steps(problem, ctx, index=j, stride=self.max_samples)
            if out.status == "insufficient_budget":
                if not answers:
                    return out
                break
            answers.append(out.answer)
        votes = count_votes(answers)
        status = "answered" if votes.leader is not None else "abstained"
        return Outcome(answer=votes.leader, status=status, votes=votes,
                       tier_votes={self.role: votes})

    def vote(self, prior: float = 0.0, early: bool = True) -> Vote:
        """The vote of a vote rung (reporting `leader_conf` when the rung measures it; with
        its early climb, scored with this prompt's `prior`, unless `early` is False)."""
        climb = None if self.climb_early_above == 1.0 or not early else ClimbEarly(
            self.weights, self.climb_early_above, prior)
        return Vote(max_samples=self.max_samples, wave=self.wave, max_tokens=self.max_tokens,
                    temperature=self.temperature, confidence=self.confidence, role=self.role,
                    mode=self.mode, weight=self.weight, keep=self.keep,
                    report_confidence=self.measures_leader_conf, probe=self.probe,
                    climb_early=climb, mix_mode=self.mix_mode, window_stop=self.window_stop)

    def first_request(self, problem: Problem, ctx: RunContext) -> GenRequest:
        """The first call of a vote rung (what the rung below holds with `hold_next`)."""
        vote = self.vote()
        return vote._request(problem, ctx, min(self.probe or self.wave, self.max_samples), 0)

    def check_request(self, problem: Problem, ctx: RunContext) -> GenRequest:
        return GenRequest(prompt=format_question(problem.question), n=self.check_samples,
                          max_tokens=self.max_tokens, temperature=self.temperature or 0.7,
                          seed=ctx.seed, problem_id=problem.id, mode=self.check_mode)


def rung_features(out: Outcome, check_agree: int, check_drawn: int, lower_same: bool,
                  prior: float) -> tuple[float, ...]:
    """The `CLIMB_FEATURES` of a rung's outcome (at least one sample drawn, counting the
    answers a `keep` filter dropped; `leader_conf` as its vote reported it)."""
    votes = out.votes
    samples = votes.total + votes.abstained + out.dropped
    return (*vote_signals(votes.agreement, votes.entropy, votes.abstained, votes.distinct,
                          samples), check_agree / check_drawn if check_drawn else 0.0,
            1.0 if lower_same else 0.0, prior, out.leader_conf)


@dataclass(frozen=True, slots=True)
class Ladder(Strategy):
    """Climb `rungs` (cheapest model first) until one's answer holds; see the module doc."""

    name = "ladder"
    rungs: tuple[Rung, ...] = ()
    prior: float = 0.0
    """Prompt-feature logit of this prompt (set per prompt by a policy)."""
    skipped: bool = False
    """A router started this prompt above the ladder's first rung (`RandomRouter`):
    every answer counts as escalated."""

    def __post_init__(self) -> None:
        rungs = tuple(self.rungs)
        if not rungs or not all(isinstance(r, Rung) for r in rungs):
            raise ValidationError("a ladder needs at least one Rung.", parameter="rungs")
        object.__setattr__(self, "rungs", rungs)
        if rungs[-1].skip_above != 1.0:
            raise ValidationError("the top rung cannot be skipped: its `skip_above` must be "
                                  "1.0.", parameter="skip_above", value=rungs[-1].skip_above)
        for r, above in zip(rungs, rungs[1:] + (None,)):
            if r.hold_next and (above is None or above.is_chain or above.mix_mode is not None):
                raise ValidationError("`hold_next` holds the price of the next rung's first "
                                      "call: it needs a vote rung of one representation "
                                      "above it.",
                                      parameter="hold_next", value=True)
        if not is_finite_number(self.prior):
            raise ValidationError(f"`prior` must be a finite number, got {shown(self.prior)}.",
                                  parameter="prior", value=self.prior)

    @property
    def roles(self) -> tuple[Role, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys(r.role for r in self.rungs))

    def steps(self, problem: Problem, ctx: RunContext) -> Steps:
        best: Outcome | None = None
        rungs: list[Outcome] = []  # every rung's vote, kept for Result.votes_by_model
        for i, rung in enumerate(self.rungs):
            if rung.skip_above < 1.0 and self.prior >= threshold_logit(rung.skip_above):
                ctx.note(f"ladder: skip {ctx.model(rung.role)} (prior {self.prior:.2f})")
                continue
            held = None
            if rung.hold_next:
                nxt = self.rungs[i + 1]
                held = ctx.try_call(nxt.role, nxt.first_request(problem, ctx))
            out = yield from rung.steps(problem, ctx, self.prior, top=i == len(self.rungs) - 1)
            if held is not None:
                ctx.ledger.cancel(held.reservation)
            if out.status == "insufficient_budget":
                if best is None:
                    if i == len(self.rungs) - 1:
                        return out
                    # Nothing answered yet: the next rung may still be affordable (a held
                    # price was just released), as a cascade escalates past a vote it cannot pay.
                    ctx.note(f"ladder: cannot afford {ctx.model(rung.role)}; climbing")
                    continue
                ctx.note(f"ladder: cannot afford {ctx.model(rung.role)}; keeping the answer below")
                return best
            rungs.append(out)
            if out.status != "answered" and best is not None:
                ctx.note(f"ladder: {ctx.model(rung.role)} abstained; keeping the answer below")
                return with_tiers(Outcome(answer=best.answer, status=best.status,
                                          votes=best.votes, escalated=True), *rungs)
            lower = None if best is None else best.answer
            best = with_tiers(Outcome(answer=out.answer, status=out.status, votes=out.votes,
                                      escalated=i > 0 or self.skipped), *rungs)
            if i == len(self.rungs) - 1:
                return best
            if out.climb_now:
                ctx.note(f"ladder: climb past {ctx.model(rung.role)} at once (early score)")
                continue
            agree, drawn = 0, 0
            if rung.check_samples and out.answer is not None:
                call = ctx.try_call(rung.role, rung.check_request(problem, ctx))
                if call is not None:
                    (checks,) = yield [call]
                    drawn = len(checks)
                    agree = sum(c.answer is not None and equivalent(c.answer, out.answer)
                                for c in checks)
            same = lower is not None and out.answer is not None and equivalent(lower, out.answer)
            z = climb_logit(rung.weights, rung_features(out, agree, drawn, same, self.prior))
            if not (climbs(out.status == "answered", out.votes.agreement, z, rung.climb_below,
                           rung.climb_above) or (rung.climb_split and out.split)):
                ctx.note(f"ladder: keep {ctx.model(rung.role)}'s answer (agreement "
                         f"{out.votes.agreement:.2f}, check {agree}/{drawn}, score {z:.2f})")
                return best
            ctx.note(f"ladder: climb past {ctx.model(rung.role)} (agreement "
                     f"{out.votes.agreement:.2f}, check {agree}/{drawn}, score {z:.2f})")
        return best  # pragma: no cover  (the last rung always returns)
