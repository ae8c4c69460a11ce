"""Frozen records passed between the engine, strategies and backends."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from tts.errors import ValidationError
from tts.signals import sampling_mode

Role = str
"""Which backend of the engine a request goes to: "small" (the cheapest tier), "large" (the
most expensive), and "tier1" .. "tier<n-2>" between them on ladders of n >= 3 models."""

ROLES: tuple[Role, ...] = ("small", "large")
"""The roles of the two-tier case."""


MAX_INT = 10**12
"""Largest token or sample count an option may hold (more is a typo and would overflow float
prices); equals tts.budgets.budget.MAX_COUNT."""


def is_finite_number(value: object) -> bool:
    """An int or float (numpy's included, bools excluded) that is finite as a float; integers
    too large for a float are not (never an OverflowError)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def shown(value: object, limit: int = 40) -> str:
    """repr(value), abbreviated when long (a 400-digit integer must not fill the screen)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:20]}... ({len(text)} characters)"


def ladder_roles(n: int) -> tuple[Role, ...]:
    """Role names of a ladder of `n` models, cheapest first."""
    if n < 1:
        raise ValidationError(f"a ladder needs at least one model, got {n}.", parameter="ladder")
    if n == 1:
        return ("small",)
    return ("small", *(f"tier{i}" for i in range(1, n - 1)), "large")


def is_role(name: object) -> bool:
    """Whether `name` is a role some ladder has ("small", "large" or "tier<k>", k >= 1)."""
    return isinstance(name, str) and (name in ROLES or (
        name.startswith("tier") and name[4:].isdigit() and int(name[4:]) >= 1
        and name[4:] == str(int(name[4:]))))


@dataclass(frozen=True, slots=True)
class Problem:
    """One question to answer; its check is the one definition of a valid prompt: a string
    of Unicode text (encodable as UTF-8: no lone surrogates) that is not only whitespace."""

    question: str
    """The question text, as a user would type it."""
    id: str | None = None
    """Stable identifier (bank problem id); replay backends look problems up by it."""
    gold: str | None = None
    """Reference answer when known (benchmarks); never shown to a model."""

    def __post_init__(self) -> None:
        if not isinstance(self.question, str):
            raise ValidationError(
                f"prompt must be a string, got {type(self.question).__name__}.",
                parameter="prompt",
                value=self.question,
            )
        if not self.question.strip():
            raise ValidationError("prompt must be a non-empty string, got an empty one.",
                                  parameter="prompt", value=self.question)
        try:
            self.question.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from "\ud800" in JSON
            raise ValidationError(f"prompt must be Unicode text, but character {exc.start} is "
                                  f"a lone surrogate ({self.question[exc.start]!r}), which no "
                                  f"tokenizer can encode.", parameter="prompt",
                                  value=self.question) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class GenRequest:
    """Ask a backend for samples `offset .. offset + n - 1` of one seeded sample stream.

    A backend must make sample i of a stream depend only on (prompt, seed, i, sampling
    settings), never on how the stream was split into waves: drawing 4 then 4 gives the same
    8 samples as drawing 8 at once. Replay backends read the stream from a bank in a seeded
    order without replacement; live backends derive a per-sample engine seed from (seed, i).
    """

    prompt: str
    """User message (the formatted question). Backends apply their chat template."""
    n: int = 1
    """Number of samples to return."""
    max_tokens: int = 512
    """Cap on generated tokens per sample; the budget reserves n * max_tokens."""
    temperature: float = 0.7
    """0 means greedy (then n must be 1)."""
    seed: int | None = None
    """Seed of the sample stream. Replay with None reads the bank's stored order."""
    offset: int = 0
    """Index of the first requested sample in the stream."""
    stop: tuple[str, ...] = ()
    """Stop sequences."""
    problem_id: str | None = None
    """Bank problem id, for replay lookups."""
    mode: str | None = None
    """Kind of generation asked for: "sample" (default when temperature > 0), "greedy"
    (temperature 0) or "chain" (one long reasoning chain). Replay selects the bank records
    with this mode."""
    logprobs: bool = False
    """Ask for the mean token logprob of each sample when the backend can give it."""
    assistant_prefix: str = ""
    """Text the assistant has already written; generation continues after it (budget forcing
    of long chains). Backends put it right after the chat template's assistant header."""

    def __post_init__(self) -> None:
        _check_int("n", self.n, low=1)
        _check_int("max_tokens", self.max_tokens, low=1)
        _check_int("offset", self.offset, low=0)
        if not is_finite_number(self.temperature) or self.temperature < 0:
            raise ValidationError(f"`temperature` must be a finite number >= 0, got "
                                  f"{shown(self.temperature)}.", parameter="temperature",
                                  value=self.temperature)
        if self.temperature == 0 and self.n != 1:
            raise ValidationError(f"`n` must be 1 for greedy sampling (temperature 0), got "
                                  f"{self.n}.", parameter="n", value=self.n)
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))

    @property
    def sampling_mode(self) -> str:
        """The mode this request asks for, defaulting from the temperature
        (`tts.signals.sampling_mode`)."""
        return sampling_mode(self.mode, self.temperature)


FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """One generated sample."""

    text: str | None
    """Generated text; None when replaying a bank that keeps only answers."""
    answer: str | None
    """Extracted final answer; None means the sample abstains."""
    tokens: int
    """Generated tokens, as counted by the engine's tokenizer."""
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    """Prompt tokens the engine processed for this request (same for all samples of it)."""
    mean_logprob: float | None = None
    """Mean log-probability of the generated tokens, when requested and available."""
    min_conf: float | None = None
    """Lowest sliding-window confidence (DeepConf, Fu et al. 2025): token confidence is minus
    the mean of the top-k logprobs at a position, averaged over a sliding window of tokens
    (the whole sample when shorter); the minimum over windows. When requested and available."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A strategy name and its options: what the policy decided for one prompt."""

    strategy: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.strategy}({opts})"


Status = Literal["answered", "abstained", "insufficient_budget"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What `solve` returns for one prompt.

    `status` is "insufficient_budget" when the budget cannot pay for even the cheapest
    generation of the plan: then nothing was generated, `answer` is None and `spent` is
    empty. "abstained" means samples were drawn but none gave an extractable answer.
    """

    answer: str | None
    status: Status
    strategy: str
    """Name of the strategy that produced the answer (e.g. "cascade")."""
    plan: Plan
    tokens: Mapping[str, int]
    """Generated plus counted prompt tokens, per model name."""
    cost: float
    """Budget units spent (small-model-token units), always <= budget."""
    budget: float
    votes: Mapping[str, int]
    """Votes per answer class (representative answer -> count), leader first: the deciding
    model's."""
    votes_by_model: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Every model's votes, cheapest tier first: {model name: {answer: count}} (a model that
    voted twice in one plan appears again as "model:mode")."""
    difficulty: float | None = None
    """Difficulty estimate in [0, 1] used for the plan, when one was made."""
    escalated: bool = False
    """True when the large model was asked."""
    trace: tuple[str, ...] = ()
    """Short human-readable log of the decisions taken."""
    problem_id: str | None = None
    seconds: float | None = field(default=None, compare=False)
    """Wall time from the start of the (batched) call until this prompt was decided."""

    @property
    def samples(self) -> int:
        """Answers counted in the vote (samples that abstained are not)."""
        return sum(self.votes.values())


def _check_int(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_INT:
        raise ValidationError(f"`{name}` must be an integer >= {low} (at most {MAX_INT:.0e}), "
                              f"got {shown(value)}.",
                              parameter=name, value=value)
