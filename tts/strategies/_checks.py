"""Argument checks shared by strategy constructors; messages name the field and value."""

from __future__ import annotations

import re

from tts.errors import ValidationError
from tts.types import MAX_INT, is_finite_number, is_role, shown


def check_positive_int(name: str, value: object, *, low: int = 1) -> None:
    """An integer in [low, 1e12] (bools refused; larger is a typo and would overflow)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValidationError(f"`{name}` must be an integer >= {low}, got {shown(value)}.",
                              parameter=name, value=value)
    if value > MAX_INT:
        raise ValidationError(f"`{name}` must be an integer <= {MAX_INT:.0e}, got "
                              f"{shown(value)}.", parameter=name, value=value)


def check_fraction(name: str, value: object, *, low: float = 0.0, high: float = 1.0) -> None:
    if not is_finite_number(value) or not low <= value <= high:  # type: ignore[operator]
        raise ValidationError(f"`{name}` must be in [{low}, {high}], got {shown(value)}.",
                              parameter=name, value=value)


def check_temperature(name: str, value: object, *, positive: bool = False) -> None:
    """A finite number >= 0 (> 0 with `positive`)."""
    if not is_finite_number(value) or value < 0 or (positive and value == 0):  # type: ignore
        raise ValidationError(f"`{name}` must be a finite number {'>' if positive else '>='} 0, "
                              f"got {shown(value)}.", parameter=name, value=value)


def check_bool(name: str, value: object) -> None:
    """True or False only: a string such as "no" would be taken as true."""
    if not isinstance(value, bool):
        raise ValidationError(f"`{name}` must be true or false, got {shown(value)}.",
                              parameter=name, value=value)


def check_role(name: str, value: object) -> None:
    if not is_role(value):
        raise ValidationError(f"`{name}` must be a role (\"small\", \"large\" or \"tier<k>\" on "
                              f"a ladder), got {value!r}.",
                              parameter=name, value=value)


MODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
"""A mode name: a letter or digit, then up to 63 letters, digits, "_", ".", "+" or "-" (e.g.
"sample", "greedy-pot", "chain-2048"): never a path, a space or a control character."""


def check_mode(name: str, value: object) -> None:
    """A bank mode name (`MODE_NAME`) or None (the default mode)."""
    if value is not None and (not isinstance(value, str) or not MODE_NAME.fullmatch(value)):
        raise ValidationError(f"`{name}` must be a mode name such as \"sample\", \"pot\" or "
                              f"\"chain-2048\" (letters, digits, '_', '.', '+', '-'; at most "
                              f"64) or null, got {shown(value)}.", parameter=name, value=value)


def check_weights(name: str, value: object, features: tuple[str, ...], *,
                  nullable: bool = False) -> tuple[float, ...] | None:
    """A logistic model's weights: the bias, then one finite number per feature."""
    if value is None and nullable:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != len(features) + 1 or any(
            not is_finite_number(v) for v in value):
        raise ValidationError(f"`{name}` must be {'null or ' if nullable else ''}"
                              f"{len(features) + 1} finite numbers (bias, then "
                              f"{', '.join(features)}), got {shown(value)}.", parameter=name,
                              value=value)
    return tuple(float(v) for v in value)
