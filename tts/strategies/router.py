"""A random router: a fixed random share of questions goes to one plan, the rest to another.

The baseline every router is measured against (RouteLLM's "random" router, Ong et al. 2024):
compared with a cascade that escalates a share e of the questions, `RandomRouter(share=e,
weak=<the cascade's first rung alone>, strong=<its top rung alone>)` spends about as much on
the top model without reading anything about the question. Which questions are routed is a
function of the question id and `seed` only (a hash, not the sample stream), so the engine and
the vectorised evaluator route the same questions; average over seeds for the router's
expected accuracy.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from tts.errors import ValidationError
from tts.strategies._checks import check_fraction, check_positive_int
from tts.strategies.base import RunContext, Steps, Strategy
from tts.strategies.ladder import Ladder
from tts.types import Problem, Role

__all__ = ["RandomRouter", "routed"]


def routed(problem_id: str, share: float, seed: int) -> bool:
    """Whether a question goes to the strong plan: a uniform draw from the hash of (seed,
    problem id), below `share`."""
    u = zlib.crc32(f"{seed}\x00{problem_id}".encode()) / 2**32
    return u < share


@dataclass(frozen=True, slots=True)
class RandomRouter(Strategy):
    """Send a random `share` of questions to `strong` (marked escalated), the rest to `weak`."""

    name = "random-router"
    share: float = 0.5
    weak: Strategy = None  # type: ignore[assignment]
    strong: Strategy = None  # type: ignore[assignment]
    seed: int = 0

    def __post_init__(self) -> None:
        check_fraction("share", self.share)
        check_positive_int("seed", self.seed, low=0)
        for name in ("weak", "strong"):
            if not isinstance(getattr(self, name), Strategy):
                raise ValidationError(f"`{name}` must be a Strategy, got "
                                      f"{type(getattr(self, name)).__name__}.", parameter=name)
        if isinstance(self.strong, Ladder) and not self.strong.skipped:
            object.__setattr__(self, "strong", Ladder(rungs=self.strong.rungs,
                                                      prior=self.strong.prior, skipped=True))

    @property
    def roles(self) -> tuple[Role, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys((*self.weak.roles, *self.strong.roles)))

    def options(self) -> dict:
        return {"share": self.share, "seed": self.seed,
                "weak": [self.weak.name, self.weak.options()],
                "strong": [self.strong.name, self.strong.options()]}

    def pick(self, problem_id: str) -> Strategy:
        """The plan this question is routed to."""
        return self.strong if routed(problem_id, self.share, self.seed) else self.weak

    def steps(self, problem: Problem, ctx: RunContext) -> Steps:
        chosen = self.pick(problem.id)
        ctx.note(f"random router: {'strong' if chosen is self.strong else 'weak'} plan")
        return (yield from chosen.steps(problem, ctx))
