"""Reading policy files: one loader for every format tts has written.

`load_policy(path)` reads `tts-policy/2` (the one format: a ladder of rungs per budget level,
`tts.policy.ladder`), a cross-fitted k-fold policy (`tts-crossfit-policy/1`, whose folds may be
of any format) and, converted on load with `notes.converted_from` saying so, the older
`tts-ladder-policy/1` and `tts-policy/1` (`tts.policy.legacy`). Every problem is a
ValidationError naming the file and the field.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Mapping

from tts.bank import read_json_file
from tts.errors import ValidationError
from tts.policy.crossfit import CROSSFIT_FORMAT, CrossFitPolicy
from tts.policy.expected import check_expected, check_frontier
from tts.policy.fields import (built, check_feature_names, check_item_fields, check_top_fields,
                               levels_list, notes_of, prompt_model)
from tts.policy.ladder import FORMAT, RUNG_FIELDS, LadderLevel, LadderPolicy
from tts.policy.legacy import PARAM_FORMAT, param_policy
from tts.signals import CLIMB_FEATURES
from tts.strategies.ladder import Rung
from tts.types import shown

LADDER_FORMAT_1 = "tts-ladder-policy/1"
FORMATS = (FORMAT, CROSSFIT_FORMAT, LADDER_FORMAT_1, PARAM_FORMAT)


def policy_from_dict(data: Any, *, source: str = "policy") -> LadderPolicy:
    """The policy of a `tts-policy/2` (or older, converted) JSON object."""
    if isinstance(data, Mapping) and data.get("format") == PARAM_FORMAT:
        return param_policy(data, source)
    if isinstance(data, Mapping) and data.get("format") not in (FORMAT, LADDER_FORMAT_1):
        raise ValidationError(f"{source}: `format` must be one of {list(FORMATS)}, got "
                              f"{shown(data.get('format'))}.", parameter="format",
                              value=data.get("format"))
    check_top_fields(data, source, {"format", "ladder", "climb_features", "prompt", "levels",
                                    "notes"}, {"format", "levels"}, "a policy")
    added = _features_added_since(data)
    if not added:
        check_feature_names(data, source, "climb_features", CLIMB_FEATURES)
    ladder = data.get("ladder")
    if data["format"] == LADDER_FORMAT_1 and ladder is None:
        raise ValidationError(f"{source}: missing field(s) ['ladder'].", parameter="ladder")
    if ladder is not None and not isinstance(ladder, list):
        raise ValidationError(f"{source}: `ladder` must be a list of model names (or null), got "
                              f"{shown(ladder)}.", parameter="ladder")
    levels = read_levels(levels_list(data, source), source, added)
    notes = notes_of(data, source)
    check_notes(notes, ladder, source, added)
    if data["format"] != FORMAT:
        notes["converted_from"] = data["format"]
    return built(source, LadderPolicy, None if ladder is None else tuple(ladder), levels,
                 prompt_model(data.get("prompt"), source), notes)


def read_levels(items: list, source: str, added: int = 0) -> tuple[LadderLevel, ...]:
    """The `LadderLevel`s of a policy file's `levels` list (`added`: climb features this code
    appends to the file's weights, `_features_added_since`)."""
    levels = []
    for i, lv in enumerate(items):
        where = f"{source}: levels[{i}]"
        if not isinstance(lv, Mapping) or set(lv) != {"from_budget", "rungs"} \
                or not isinstance(lv["rungs"], list):
            raise ValidationError(f"{where} must be an object with `from_budget` and a list "
                                  f"`rungs`.", parameter=f"levels[{i}]")
        rungs = []
        for j, r in enumerate(lv["rungs"]):
            at = f"{where}.rungs[{j}]"
            check_item_fields(r, at, at, RUNG_FIELDS, "a rung", required=False)
            fields = dict(r)
            if isinstance(fields.get("weights"), list):
                fields["weights"] = tuple(fields["weights"]) + (0.0,) * added
            rungs.append(built(at, Rung, **fields, param=at))
        levels.append(built(where, LadderLevel, lv["from_budget"], tuple(rungs)))
    return tuple(levels)


def check_notes(notes: Mapping[str, Any], ladder: Any, source: str, added: int = 0) -> None:
    """A policy's `notes.expected` and `notes.frontier` (`tts.policy.expected`), when
    present: numbers in range, each frontier plan's levels a valid policy's."""
    if "expected" in notes:
        check_expected(notes["expected"], f"{source}: notes.expected")
    _frontier(ladder, None, notes, source, added)


def policy_expected(policy: LadderPolicy) -> dict[str, Any] | None:
    """What `tts tune` expects the deployed `policy` to score (`notes.expected`, checked;
    see `tts.policy.expected`): its disagreement with the top model's greedy answer (and a
    95% interval), accuracy and cost share, cross-fitted. None for a policy without it."""
    if "expected" not in policy.notes:
        return None
    return check_expected(policy.notes["expected"], "policy notes.expected")


def policy_frontier(policy: LadderPolicy) -> list[tuple[LadderPolicy, dict[str, Any]]]:
    """The safer plans `tts tune` wrote for `policy` (`notes.frontier`), cheapest to safest,
    the top model alone last: each as (a LadderPolicy of the same ladder and prompt model,
    its expected numbers: `disagreement`, `disagreement_ci95`, `accuracy`, `cost_share`...).
    [] for a policy without a frontier; a malformed one is a ValidationError."""
    return _frontier(policy.ladder, policy.prompt, dict(policy.notes), "policy", 0)


_INHERITED = ("count_prompt", "objective", "reference", "ladder", "budgets")
"""Notes a frontier plan's policy takes over from the policy it belongs to."""


def _frontier(ladder: Any, prompt: Any, notes: Mapping[str, Any], source: str,
              added: int) -> list[tuple[LadderPolicy, dict[str, Any]]]:
    if "frontier" not in notes:
        return []
    where = f"{source}: notes.frontier"
    out = []
    for i, entry in enumerate(check_frontier(notes["frontier"], where)):
        at = f"{where}[{i}]"
        items = entry["levels"]
        if not isinstance(items, list) or not items:
            raise ValidationError(f"{at}.levels must be a non-empty list.",
                                  parameter=f"notes.frontier[{i}].levels")
        kept = {k: notes[k] for k in _INHERITED if k in notes}
        out.append((built(at, LadderPolicy, None if ladder is None else tuple(ladder),
                          read_levels(items, at, added), prompt,
                          {**kept, "frontier_plan": entry["name"],
                           "max_cost_share": entry.get("max_cost_share"),
                           "expected": entry["expected"]}), entry["expected"]))
    return out

def _features_added_since(data: Mapping) -> int:
    """How many climb features this code appends to a policy file's older `climb_features`
    (0 when the file names today's, or none). Such a file keeps its meaning: its rungs give
    the newer features (e.g. leader_conf) weight 0."""
    names = data.get("climb_features")
    if isinstance(names, list) and 0 < len(names) < len(CLIMB_FEATURES) \
            and names == list(CLIMB_FEATURES[:len(names)]):
        return len(CLIMB_FEATURES) - len(names)
    return 0


def crossfit_from_dict(data: Any, *, source: str = "policy") -> CrossFitPolicy:
    """A cross-fitted policy: its folds' policies (any format) and held-out ids."""
    folds = data.get("folds") if isinstance(data, Mapping) else None
    if not isinstance(folds, list) or not folds:
        raise ValidationError(f"{source}: a cross-fitted policy needs a non-empty `folds` list.",
                              parameter="folds")
    policies, heldout = [], []
    for i, fold in enumerate(folds):
        if not isinstance(fold, Mapping) or set(fold) != {"heldout_ids", "policy"}:
            raise ValidationError(f"{source}: folds[{i}] must be an object with exactly "
                                  f"`heldout_ids` and `policy`.", parameter=f"folds[{i}]")
        policies.append(policy_from_dict(fold["policy"], source=f"{source} folds[{i}]"))
        ids = fold["heldout_ids"]
        if not isinstance(ids, list) or not all(isinstance(x, (str, int)) for x in ids):
            raise ValidationError(f"{source}: folds[{i}].heldout_ids must be a list of problem "
                                  f"ids, got {shown(ids)}.", parameter=f"folds[{i}].heldout_ids")
        heldout.append([str(x) for x in ids])
    return CrossFitPolicy(policies, heldout)


def load_policy(path: str | Path) -> LadderPolicy | CrossFitPolicy:
    """Read a policy JSON file written by `tts tune` (any version) or `LadderPolicy.to_json`;
    a cross-fitted k-fold policy file (`crossfit_policy.json`) gives a CrossFitPolicy."""
    if not isinstance(path, (str, Path)):
        raise ValidationError(f"a policy file must be a path, got {type(path).__name__}.",
                              parameter="policy")
    p = Path(path)
    if not p.exists():
        raise ValidationError(f"policy file {p} does not exist.", parameter="policy",
                              value=str(p))
    data = read_json_file(p, partial(ValidationError, parameter="policy", value=str(p)),
                          f"policy file {p}")
    source = f"policy file {p}"
    if isinstance(data, Mapping) and data.get("format") == CROSSFIT_FORMAT:
        return crossfit_from_dict(data, source=source)
    return policy_from_dict(data, source=source)
