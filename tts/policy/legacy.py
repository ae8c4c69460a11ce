"""Policy files older tts versions wrote, converted on load to the one format (a ladder of
rungs per budget level) with the same decisions.

`tts-policy/1` (a "ParamPolicy": per budget level, the adaptive strategy's parameters) becomes
a roles-only ladder per level: a small-model probe rung (`probe`, `wave`, the
Adaptive-Consistency stop, the probe score as its climb score with `climb_above` =
`escalate_above` and `climb_early_above` = `escalate_early_above`, `hold_next` =
`keep_for_large`) and the large model's rung (`large_samples` greedy or sampled answers of
`large_max_tokens`); `direct_above` becomes the small rung's `skip_above` (where it could
fire: with a prompt model, or at 0), `use_large: false` drops the large rung. The probe score's weights over (agreement, entropy, abstain_share,
distinct_share, inv_samples, prior) are the climb score's with 0 for the climb features the
probe never read, so every score is the same number to the bit: `tests/test_policy_legacy.py` holds every
committed old file, and random old policies, to the same Results. One difference remains: a
level with `large_samples` > 1 whose budget cannot pay for all of them at once now draws the
large samples it can afford in waves (a vote rung's rule), where the old escalation drew all
or none; every policy tts tuned had `large_samples` 1. `tts-ladder-policy/1` reads as the
current format (it lacks only the newer optional fields).
"""

from __future__ import annotations

from typing import Any, Mapping

from tts.errors import ValidationError
from tts.policy.fields import (built, check_feature_names, check_item_fields, check_top_fields,
                               levels_list, notes_of, prompt_model)
from tts.policy.ladder import LadderLevel, LadderPolicy
from tts.signals import CLIMB_FEATURES
from tts.strategies.adaptive import PROBE_FEATURES
from tts.strategies._checks import check_fraction
from tts.strategies.ladder import Rung
from tts.types import is_finite_number, shown

PARAM_FORMAT = "tts-policy/1"
LEVEL_DEFAULTS: dict[str, Any] = {
    "from_budget": 0.0, "probe": 4, "wave": 4, "max_samples": 16, "max_tokens": 512,
    "temperature": 0.7, "confidence": 0.95, "escalate_above": 0.5, "escalate_early_above": 1.0,
    "direct_above": 1.0, "use_large": True, "large_samples": 1, "large_max_tokens": 512,
    "keep_for_large": False, "probe_weights": None}
"""A tts-policy/1 level's fields and their defaults."""


def climb_weights(probe_weights: Any, where: str) -> tuple[float, ...]:
    """The climb-score weights of a probe score (bias + one per PROBE_FEATURES)."""
    if not isinstance(probe_weights, (list, tuple)) \
            or len(probe_weights) != len(PROBE_FEATURES) + 1 \
            or not all(is_finite_number(w) for w in probe_weights):
        raise ValidationError(f"{where}: `probe_weights` must be {len(PROBE_FEATURES) + 1} finite "
                              f"numbers (bias, then {', '.join(PROBE_FEATURES)}), got "
                              f"{shown(probe_weights, 120)}.", parameter="probe_weights")
    by_name = dict(zip(PROBE_FEATURES, probe_weights[1:]))
    return (float(probe_weights[0]),
            *(float(by_name.get(name, 0.0)) for name in CLIMB_FEATURES))


def param_level(lv: Mapping[str, Any], weights: tuple[float, ...], where: str,
                prompt: bool) -> LadderLevel:
    """One tts-policy/1 level as a ladder level (see the module docstring)."""
    v = {**LEVEL_DEFAULTS, **lv}
    if v["probe_weights"] is not None:
        weights = climb_weights(v["probe_weights"], where)
    built(where, check_fraction, "direct_above", v["direct_above"])
    for name in ("use_large", "keep_for_large"):
        if not isinstance(v[name], bool):
            raise ValidationError(f"{where}: `{name}` must be true or false, got "
                                  f"{v[name]!r}.", parameter=name)
    small = built(where, Rung, role="small", wave=v["wave"], max_samples=v["max_samples"],
                  max_tokens=v["max_tokens"], temperature=v["temperature"],
                  confidence=v["confidence"], climb_above=v["escalate_above"],
                  weights=weights, probe=None if v["probe"] == v["wave"] else v["probe"],
                  climb_early_above=v["escalate_early_above"],
                  hold_next=v["keep_for_large"] and v["use_large"],
                  skip_above=v["direct_above"] if v["use_large"] and (
                      prompt or v["direct_above"] == 0.0) else 1.0)
    if not v["use_large"]:
        return built(where, LadderLevel, v["from_budget"], (small,))
    greedy = v["large_samples"] == 1
    large = built(where, Rung, role="large", temperature=0.0 if greedy else v["temperature"],
                  max_samples=v["large_samples"], wave=v["large_samples"],
                  max_tokens=v["large_max_tokens"])
    return built(where, LadderLevel, v["from_budget"], (small, large))


def param_policy(data: Any, source: str) -> LadderPolicy:
    """A tts-policy/1 file's data as the one policy (roles only: any small/large engine)."""
    check_top_fields(data, source, {"format", "probe_features", "probe_weights", "prompt",
                                    "levels", "notes"},
                     {"format", "probe_weights", "prompt", "levels"}, "a tts-policy/1 policy")
    check_feature_names(data, source, "probe_features", PROBE_FEATURES)
    weights = climb_weights(data["probe_weights"], source)
    levels = []
    for i, lv in enumerate(levels_list(data, source)):
        where = f"{source}: levels[{i}]"
        check_item_fields(lv, where, f"levels[{i}]", tuple(LEVEL_DEFAULTS), "a level",
                          required=False)
        levels.append(param_level(lv, weights, where, data["prompt"] is not None))
    notes = {**notes_of(data, source), "converted_from": PARAM_FORMAT}
    return built(source, LadderPolicy, None, tuple(levels), prompt_model(data["prompt"], source),
                 notes)
