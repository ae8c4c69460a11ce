"""Strategies: ways to spend a budget on one problem, with a registry by name for the CLI."""

from __future__ import annotations

import dataclasses
from typing import Any

from tts.errors import UnknownNameError, ValidationError
from tts.strategies.adaptive import Adaptive
from tts.strategies.base import Call, Outcome, RunContext, Steps, Strategy
from tts.strategies.cascade import Cascade
from tts.strategies.chain import Chain
from tts.strategies.escalate import Escalate
from tts.strategies.ladder import Ladder, Rung
from tts.strategies.router import RandomRouter
from tts.strategies.vote import Vote, leader_confidence

REGISTRY: dict[str, type[Strategy]] = {
    "vote": Vote,
    "escalate": Escalate,
    "cascade": Cascade,
    "chain": Chain,
    "adaptive": Adaptive,
    "ladder": Ladder,
}


def make_strategy(name: str, **options: Any) -> Strategy:
    """Build a registered strategy by name; unknown names or options are clear errors."""
    try:
        cls = REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown strategy {name!r}; available strategies are "
                               f"{sorted(REGISTRY)}.") from None
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValidationError(f"strategy {name!r} has no option(s) {unknown}; its options are "
                              f"{sorted(fields)}.", parameter=unknown[0])
    return cls(**options)


__all__ = ["Strategy", "RunContext", "Call", "Outcome", "Steps", "Vote", "Escalate", "Cascade",
           "Chain", "Adaptive", "Ladder", "Rung", "RandomRouter", "REGISTRY", "make_strategy",
           "leader_confidence"]
