"""Policies: per prompt, which strategy (with which settings) spends the budget best."""

from __future__ import annotations

from typing import Mapping, Protocol

from tts.budgets import Budget
from tts.strategies import Cascade, Strategy, Vote
from tts.types import Problem, Role


class Policy(Protocol):
    def decide(self, problem: Problem, budget: Budget,
               models: Mapping[Role, str]) -> tuple[Strategy, float | None]:
        """The strategy for this problem and the difficulty estimate behind it (or None)."""
        ...


class DefaultPolicy:
    """Untuned default: cascade (small vote, escalate when agreement < 0.6) when a large model
    is present, else a small-model vote with Adaptive-Consistency early stopping."""

    def decide(self, problem: Problem, budget: Budget,
               models: Mapping[Role, str]) -> tuple[Strategy, float | None]:
        if "large" in models:
            return Cascade(), None
        return Vote(), None
