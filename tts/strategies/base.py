"""The Strategy interface and the context strategies run in.

A strategy is a generator: it yields the generation calls of one step (already reserved on the
ledger) and receives their completions. The engine drives many of these generators in
lockstep, so step k of every prompt reaches each backend in one batched `generate` call, and it
commits the real token use of every call, so a strategy cannot forget to pay.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar, Generator, Mapping

from tts.answers import Votes, count_votes
from tts.backends.contract import check_prompt_tokens
from tts.budgets import Ledger, Reservation
from tts.errors import BudgetExceeded
from tts.types import Completion, GenRequest, Problem, Role, Status


def prompt_key(request: GenRequest) -> str:
    """What the ledger pays a prompt once for: its text in one mode (a PoT prompt of the same
    question is another prompt than its CoT prompt)."""
    return f"{request.sampling_mode}\x00{request.prompt}"


@dataclass(frozen=True, slots=True)
class Call:
    """One reserved generation request for the backend playing `role`."""

    role: Role
    request: GenRequest
    reservation: Reservation


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What a strategy decided; the engine turns it into a Result."""

    answer: str | None
    status: Status
    votes: Votes
    escalated: bool = False
    difficulty: float | None = None
    """Difficulty measured while running (e.g. from probe agreement), if any."""
    tier_votes: Mapping[str, Votes] = field(default_factory=dict)
    """Votes of every tier that voted, cheapest first, by role ("small", "tier1", "large"; a
    role voting twice in one plan appears again as "role:mode"). `votes` is the deciding
    tier's."""
    leader_conf: float = 0.0
    """A vote's `tts.signals.leader_conf` (0 unless it was asked to report it,
    `Vote.report_confidence`)."""
    dropped: int = 0
    """Answering samples a vote drew but its `keep` filter left out of `votes`."""
    climb_now: bool = False
    """A vote stopped by its early climb (`Vote.climb_early`): the ladder climbs at once."""
    split: bool = False
    """A mixed vote (`Vote.mix_mode`) whose two representations' own majorities differ (or
    one has none): MoT's verification signal, read by a rung's `climb_split`."""


def with_tiers(out: Outcome, *earlier: Outcome) -> Outcome:
    """`out` with the tier votes of `earlier` outcomes (cheaper tiers) put before its own."""
    tiers: dict[str, Votes] = {}
    for o in (*earlier, out):
        for key, votes in o.tier_votes.items():
            tiers[key if key not in tiers else f"{key}:{len(tiers)}"] = votes
    return replace(out, tier_votes=tiers)


Steps = Generator[list[Call], list[list[Completion]], Outcome]


@dataclass
class RunContext:
    """Per-prompt state a strategy draws on: the ledger, model names and the trace."""

    ledger: Ledger
    models: dict[Role, str]
    prompt_tokens: Callable[[Role, GenRequest], int]
    """Prompt tokens of a request on the backend of a role (known before generating)."""
    seed: int | None = 0
    trace: list[str] = field(default_factory=list)

    def model(self, role: Role) -> str:
        return self.models[role]

    def affordable(self, role: Role, request: GenRequest, want: int) -> int:
        """How many samples (<= want) of this request the remaining budget can pay for."""
        return self.ledger.max_samples(self.models[role], request.max_tokens,
                                       prompt_key=prompt_key(request),
                                       prompt_tokens=self._prompt_tokens(role, request), cap=want)

    def call(self, role: Role, request: GenRequest) -> Call:
        """Reserve budget for `request` and wrap it as a Call (raises BudgetExceeded)."""
        res = self.ledger.reserve(self.models[role], request.n, request.max_tokens,
                                  prompt_key=prompt_key(request),
                                  prompt_tokens=self._prompt_tokens(role, request))
        return Call(role, request, res)

    def try_call(self, role: Role, request: GenRequest) -> Call | None:
        try:
            return self.call(role, request)
        except BudgetExceeded:
            return None

    def prompt_units(self, role: Role, request: GenRequest) -> float:
        """Units the request's prompt would still cost (0 unless counted and not yet paid)."""
        return self.ledger.price(self.models[role], 0, 1, prompt_key=prompt_key(request),
                                 prompt_tokens=self._prompt_tokens(role, request))

    def _prompt_tokens(self, role: Role, request: GenRequest) -> int:
        if not self.ledger.budget.count_prompt:
            return 0
        return check_prompt_tokens(self.models[role], request,
                                   self.prompt_tokens(role, request))

    def note(self, message: str) -> None:
        self.trace.append(message)


class Strategy(abc.ABC):
    """A way to spend a budget on one problem."""

    name: ClassVar[str]
    roles: ClassVar[tuple[Role, ...]] = ("small",)
    """Backends the strategy needs."""

    @abc.abstractmethod
    def steps(self, problem: Problem, ctx: RunContext) -> Steps:
        """Yield reserved calls step by step; return the Outcome."""

    def options(self) -> dict:
        """The strategy's settings, for Plans and reports."""
        from dataclasses import asdict, is_dataclass

        return asdict(self) if is_dataclass(self) else {}


def insufficient(ctx: RunContext, what: str) -> Outcome:
    """The Outcome of a plan that cannot pay for its cheapest step."""
    ctx.note(f"cannot answer within budget: {what} costs more than the "
             f"{ctx.ledger.remaining:.6g} units left")
    return Outcome(answer=None, status="insufficient_budget", votes=count_votes([]))
