"""Argument checks shared by strategy constructors; messages name the field and value."""

from __future__ import annotations

import math

from tts.errors import ValidationError
from tts.types import ROLES


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
    if value not in ROLES:
        raise ValidationError(f"`{name}` must be one of {list(ROLES)}, got {value!r}.",
                              parameter=name, value=value)
