"""The peers' own methods as named plans, so a sweep or a report runs them beside tts's plans on
the same questions and seeds:

* ``mot-1d-vote@T`` — MoT-1D-Vote (Yue et al. 2023, "Large Language Model Cascades with
  Mixture of Thought Representations"): one vote over K = 20 samples of the cheaper model,
  half chain-of-thought ("sample"), half program-of-thought ("pot"), drawn alternately; climb
  to the stronger model when the leader's share is below T (the paper's consistency
  threshold tau).
* ``mot-2d-vote@T`` — the same vote, which also climbs when the CoT and PoT majorities differ
  (our reading of the two-dimensional vote: the answer must hold along both the vote and
  the representation; see bench/peers.py for what the bank can and cannot separate).
* ``mot-verify`` — MoT-Verify: climb exactly when the CoT majority and the PoT majority
  (10 samples each) disagree.
* ``esc@W`` — Early-Stopping Self-Consistency (Li et al. 2024): a vote of the cheaper model in
  windows of W samples, up to 40, stopping at the first unanimous window.
* ``adaptive-consistency`` — Adaptive-Consistency (Aggarwal et al. 2023): one sample at a
  time, stopping when the Beta test says the leader is safe at 0.95.
* ``router@S`` — a random router sending a share S of questions straight to the top model,
  the rest to the cheaper model's MoT vote (its CoT vote where the bank has no PoT).

The MoT cascades climb to the stronger model's chain-of-thought self-consistency of 3
samples (GPT-4-CoT-SC, the paper's stronger-model setting and cost unit) where the bank holds
3 such samples, else to its greedy answer. `peers` names them all (taus 0.6 and 0.65, ESC's
window 5, router share 0.3).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tts.errors import ValidationError
from tts.strategies import Ladder, RandomRouter, Rung, Strategy, Vote

if TYPE_CHECKING:
    from tts.bank import SampleBank

__all__ = ["PEER_NAMES", "MOT_SAMPLES", "MOT_TAUS", "mot_rung", "top_sc_rung", "top_greedy_rung",
           "peer_plan", "is_peer_name", "router_like"]

MOT_SAMPLES = 20
"""K, the cheaper model's samples in a MoT vote (the paper's 20), half per representation."""
SC_SAMPLES = 3
"""Samples of the stronger model's chain-of-thought self-consistency (GPT-4-CoT-SC)."""
ESC_MAX = 40
"""ESC's sampling cap (its paper's 40 on most tasks)."""
MAX_TOKENS = 512
MOT_TAUS = (0.6, 0.65)
"""The MoT paper's consistency thresholds tau that the named plans use."""
PEER_NAMES = ("mot-1d-vote@0.6", "mot-1d-vote@0.65", "mot-2d-vote@0.6", "mot-2d-vote@0.65",
              "mot-verify", "esc@5", "adaptive-consistency", "router@0.3")
"""What the name `peers` expands to."""

_MOT = re.compile(r"^mot-(1d|2d)-vote@([0-9]*\.?[0-9]+)$")
_ESC = re.compile(r"^esc@(\d+)$")
_ROUTER = re.compile(r"^router@([0-9]*\.?[0-9]+)$")


def is_peer_name(name: str) -> bool:
    return bool(_MOT.match(name) or _ESC.match(name) or _ROUTER.match(name)
                or name in ("mot-verify", "adaptive-consistency"))


def mot_rung(k: int = MOT_SAMPLES, *, tau: float = 0.0, split: bool = False,
             role: str = "small") -> Rung:
    """The cheaper model's mixed CoT + PoT vote of `k` draws (no early stop), climbing below
    agreement `tau` and, with `split`, when the two representations' majorities differ."""
    return Rung(role=role, mode="sample", mix_mode="pot", max_samples=k, wave=k,
                confidence=1.0, max_tokens=MAX_TOKENS, climb_below=tau, climb_split=split)


def top_sc_rung(role: str = "large") -> Rung:
    """The stronger model's CoT self-consistency of `SC_SAMPLES` samples."""
    return Rung(role=role, mode="sample", max_samples=SC_SAMPLES, wave=SC_SAMPLES,
                confidence=1.0, max_tokens=MAX_TOKENS)


def top_greedy_rung(role: str = "large") -> Rung:
    return Rung(role=role, mode="greedy", temperature=0.0, max_samples=1, wave=1,
                max_tokens=MAX_TOKENS)


def _size(bank: SampleBank, model: str | None, mode: str) -> int:
    """Samples of (model, mode) every question has (0 when one has none)."""
    if model is None:
        return 0
    sizes = [len(rec.samples) if (rec := bank.records.get((pid, model, mode))) else 0
             for pid in bank.problems]
    return min(sizes, default=0)


def peer_plan(name: str, bank: SampleBank, small: str | None = None,
              large: str | None = None, *, top: Rung | None = None) -> tuple[Strategy, str]:
    """(the plan, "") for a peer name on `bank` (cheaper model `small`, stronger `large`, by
    default the bank's roles), or (the plan, why it cannot run there). The cascades climb to
    `top` when given (e.g. the top rung a report's tuned ladders use), else as the paper
    does (`top_sc_rung`, or `top_greedy_rung` where the bank has too few samples)."""
    small = small or bank.meta.roles.get("small")
    large = large or bank.meta.roles.get("large")
    cot, pot = _size(bank, small, "sample"), _size(bank, small, "pot")
    k = min(MOT_SAMPLES, 2 * min(cot, pot))
    if top is None:
        top = top_sc_rung() if _size(bank, large, "sample") >= SC_SAMPLES else \
            top_greedy_rung()
    no_top = "" if _size(bank, large, top.mode or "sample") else \
        f"bank has no {top.mode!r} records of a large model ({large!r}) for every question"
    no_mot = "" if k else f"bank has no 'sample' and 'pot' records of {small!r} for every question"
    m = _MOT.match(name)
    if m or name == "mot-verify":
        tau = float(m.group(2)) if m else 0.0
        if not 0 <= tau <= 1:
            raise ValidationError(f"{name}: the threshold must be in [0, 1].",
                                  parameter="strategies", value=name)
        split = not m or m.group(1) == "2d"
        plan = Ladder(rungs=(mot_rung(k or 2, tau=tau, split=split), top))
        return plan, no_mot or no_top
    m = _ESC.match(name)
    if m:
        window = int(m.group(1))
        cap = min(ESC_MAX, cot) or ESC_MAX
        if window < 1:
            raise ValidationError(f"{name}: the window must be >= 1.", parameter="strategies",
                                  value=name)
        return Vote(mode="sample", max_samples=cap, wave=min(window, cap), confidence=1.0,
                    window_stop=True, max_tokens=MAX_TOKENS), \
            "" if cot else f"bank has no 'sample' records of {small!r} for every question"
    if name == "adaptive-consistency":
        cap = min(ESC_MAX, cot) or ESC_MAX
        return Vote(mode="sample", max_samples=cap, wave=1, confidence=0.95,
                    max_tokens=MAX_TOKENS), \
            "" if cot else f"bank has no 'sample' records of {small!r} for every question"
    m = _ROUTER.match(name)
    if m:
        share = float(m.group(1))
        if not 0 <= share <= 1:
            raise ValidationError(f"{name}: the share must be in [0, 1].",
                                  parameter="strategies", value=name)
        weak = mot_rung(k) if k else Rung(role="small", mode="sample", max_samples=min(
            MOT_SAMPLES, cot) or 1, wave=min(MOT_SAMPLES, cot) or 1, confidence=1.0,
            max_tokens=MAX_TOKENS)
        return RandomRouter(share=share, weak=Ladder(rungs=(weak,)),
                            strong=Ladder(rungs=(top,))), no_top or (
            "" if k or cot else f"bank has no 'sample' records of {small!r}")
    raise ValidationError(f"unknown peer {name!r}.", parameter="strategies", value=name)


def router_like(cascade: Ladder, share: float, seed: int = 0) -> RandomRouter:
    """The random router matching a two-rung `cascade` that escalated a `share` of the
    questions: that share straight to its top rung, the rest to its first rung alone."""
    return RandomRouter(share=share, weak=Ladder(rungs=cascade.rungs[:1]),
                        strong=Ladder(rungs=cascade.rungs[-1:]), seed=seed)
