"""Argument checks shared by strategy constructors; messages name the field and value."""

from __future__ import annotations

import math

from tts.errors import ValidationError
from tts.types import is_role


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"`{name}` must be an integer >= 1, got {value!r}.",
                              parameter=name, value=value)


def check_fraction(name: str, value: object, *, low: float = 0.0, high: float = 1.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not low <= value <= high:
        raise ValidationError(f"`{name}` must be in [{low}, {high}], got {value!r}.",
                              parameter=name, value=value)


def check_role(name: str, value: object) -> None:
    if not is_role(value):
        raise ValidationError(f"`{name}` must be a role (\"small\", \"large\" or \"tier<k>\" on "
                              f"a ladder), got {value!r}.",
                              parameter=name, value=value)


def check_mode(name: str, value: object) -> None:
    """A bank mode name or None (the default mode)."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValidationError(f"`{name}` must be a mode name such as \"sample\" or \"pot\" (or "
                              f"null), got {value!r}.", parameter=name, value=value)
