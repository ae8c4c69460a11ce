"""Checks of a policy file's fields, shared by every format `tts.policy.load` reads: each
problem is a ValidationError naming the field and where it is."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tts.difficulty import PromptDifficulty
from tts.errors import ValidationError


def check_top_fields(data: Any, source: str, allowed: set[str], required: set[str],
                     what: str) -> None:
    """A policy file's top level: a JSON object with only `allowed` fields and all
    `required` ones (`what` names the kind of policy in the message)."""
    if not isinstance(data, Mapping):
        raise ValidationError(f"{source}: a policy must be a JSON object, got "
                              f"{type(data).__name__}.", parameter="policy")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(f"{source}: unknown field(s) {unknown}; {what} has "
                              f"{sorted(allowed)}.", parameter=unknown[0])
    missing = sorted(required - set(data))
    if missing:
        raise ValidationError(f"{source}: missing field(s) {missing}.", parameter=missing[0])


def check_item_fields(item: Any, where: str, param: str, fields: Sequence[str], what: str, *,
                      required: bool = True) -> None:
    """One entry of a policy file's list (a level, a rung): an object with only `fields`
    (and all of them when `required`); errors name it by `where` and `param`."""
    if not isinstance(item, Mapping):
        raise ValidationError(f"{where} must be an object, got {type(item).__name__}.",
                              parameter=param)
    unknown = sorted(set(item) - set(fields))
    if unknown:
        raise ValidationError(f"{where} has unknown field(s) {unknown}; {what} has "
                              f"{list(fields)}.", parameter=f"{param}.{unknown[0]}")
    missing = [f for f in fields if f not in item] if required else []
    if missing:
        raise ValidationError(f"{where} is missing field(s) {missing}.",
                              parameter=f"{param}.{missing[0]}")


def check_feature_names(data: Mapping, source: str, key: str, features: Sequence[str]) -> None:
    """A policy file's optional list of feature names (`key`) must be this code's `features`,
    in order: weights saved for other features would be applied to the wrong inputs."""
    if key in data and data[key] != list(features):
        raise ValidationError(f"{source}: `{key}` must be {list(features)}, got "
                              f"{data[key]!r}.", parameter=key)


def levels_list(data: Mapping, source: str) -> list:
    """A policy file's `levels`: a non-empty list."""
    levels = data["levels"]
    if not isinstance(levels, list) or not levels:
        raise ValidationError(f"{source}: `levels` must be a non-empty list of objects.",
                              parameter="levels")
    return levels


def notes_of(data: Mapping, source: str) -> dict:
    """A policy file's `notes` (an object; {} when absent)."""
    notes = data.get("notes", {})
    if not isinstance(notes, Mapping):
        raise ValidationError(f"{source}: `notes` must be an object.", parameter="notes")
    return dict(notes)


def built(where: str, make: Any, *args: Any, param: str | None = None, **kwargs: Any) -> Any:
    """`make(*args, **kwargs)`, with a ValidationError's message prefixed by `where` (and its
    parameter by `param.`), so a bad value deep in a policy file names its place."""
    try:
        return make(*args, **kwargs)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}", parameter=exc.parameter if param is None
                              else f"{param}.{exc.parameter}", value=exc.value) from None


def prompt_model(data: Any, source: str) -> Any:
    """The prompt prior of a policy file's `prompt` field: a PromptDifficulty, or a
    RouterPrior when it says `"kind": "router"` (None stays None)."""
    if data is None:
        return None
    try:
        if isinstance(data, Mapping) and data.get("kind") == "router":
            from tts.routing.prior import RouterPrior  # loads the router's modules only here

            return RouterPrior.from_dict(data)
        return PromptDifficulty.from_dict(data)
    except ValidationError as exc:
        raise ValidationError(f"{source}: {exc}", parameter="prompt") from None
