"""When two answers are the same: canonical keys, numeric tolerance, then math-verify.

Tiers 1-3 of `tts.answers`: `canonical` keys, plain numbers compared within 1e-6, and the
rest that looks mathematical sent to math-verify (`tts.answers.mathverify`).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

from tts.answers.extract import _CHOICE_PAREN, _DATE, _MINUS, _NUMBER_BODY, _date, _unwrap
from tts.answers.mathverify import _mv_equal

# ---------------------------------------------------------------------------------------------
# Canonical keys and equivalence

_FULL_NUMBER = re.compile(
    rf"""
    (?P<sign>[{_MINUS}+]?)\s*(?:\\?\$|€|£)?\s*(?P<sign2>[{_MINUS}]?)
    (?P<num>{_NUMBER_BODY})(?:[eE](?P<exp>[-+]?\d{{1,3}}))?
    (?:\s*/\s*(?P<den>\d+))?
    \s*(?:\\?%|\^\s*\{{?\\circ\}}?)?
    """,
    re.VERBOSE,
)
_LATEX_FRACTION = re.compile(
    rf"(?P<sign>[{_MINUS}]?)\\[dt]?frac\s*"
    rf"\{{\s*(?P<n>[{_MINUS}]?\d+)\s*\}}\s*\{{\s*(?P<d>\d+)\s*\}}"
)
_KEY_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z '\-]*")
_MAX_EXPONENT = 60
"""Bound on "1e..." exponents so a hostile answer cannot make a huge exact integer."""


def _format_fraction(value: Fraction) -> str:
    """Exact decimal string when the fraction terminates ("0.75"), else "p/q" ("1/3")."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = max(twos, fives)
    scaled = value.numerator * 10**digits // value.denominator
    sign = "-" if scaled < 0 else ""
    text = str(abs(scaled)).rjust(digits + 1, "0")
    if digits:
        text = f"{text[:-digits]}.{text[-digits:]}".rstrip("0").rstrip(".")
    return sign + text


def _number_value(s: str) -> Fraction | None:
    """Exact value of a plain number ("-$1,200.50", "45%", "3/4", "\\frac{-1}{2}"), else None."""
    if (m := _FULL_NUMBER.fullmatch(s)) is not None:
        value = Fraction(m["num"].replace(",", ""))
        if m["exp"]:
            exponent = int(m["exp"])
            if abs(exponent) > _MAX_EXPONENT:
                return None
            value *= Fraction(10) ** exponent
        if m["den"]:
            if int(m["den"]) == 0:
                return None
            value /= int(m["den"])
        negative = (m["sign"] in _MINUS and m["sign"] != "") ^ bool(m["sign2"])
        return -value if negative else value
    if (m := _LATEX_FRACTION.fullmatch(s)) is not None:
        if int(m["d"]) == 0:
            return None
        value = Fraction(int(m["n"].replace("\u2212", "-")), int(m["d"]))
        return -value if m["sign"] else value
    return None


@lru_cache(maxsize=1 << 16)
def canonical(answer: str) -> str:
    """Cheap normalised key: equal keys => equivalent answers.

    Numbers become an exact decimal string ("1,000" -> "1000", "$18.00" -> "18", "-0.50" ->
    "-0.5", "45%" -> "45"); fractions become their decimal when it terminates ("3/4" and
    "\\frac{3}{4}" -> "0.75") and a reduced "p/q" key otherwise ("2/6" -> "1/3"). Single
    choice letters are upper-cased ("(b)" -> "B"), dates zero-padded ("5/1/2021" ->
    "05/01/2021"). Anything else is stripped of surrounding `$`, spaces, trailing period and
    `\\text{}`-like wrappers, with runs of whitespace collapsed and `\\dfrac`, `\\left(` spelled
    the plain way.
    """
    if not isinstance(answer, str):
        answer = str(answer)
    s = _unwrap(answer.replace("{,}", ",").replace("\\!", "").replace("\\,", ""))
    if (m := _CHOICE_PAREN.fullmatch(s)) or (m := re.fullmatch(r"(?P<l>[A-Za-z])", s)):
        return m["l"].upper()
    if (m := _DATE.fullmatch(s)) is not None:
        return _date(m)
    value = _number_value(s)
    if value is not None:
        return _format_fraction(value)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    return " ".join(s.split())


@lru_cache(maxsize=1 << 16)
def _key_value(key: str) -> Fraction | None:
    """Exact value of a canonical key when it is a plain number."""
    return Fraction(key) if _KEY_NUMBER.fullmatch(key) else None


def _numbers_equal(a: Fraction, b: Fraction) -> bool:
    """Equal, or (unless both are integers) equal to 6 significant digits or within 1e-6 rel.

    Distinct integers never match: 1234567 and 1234568 are different GSM8K answers even though
    they agree to 6 significant digits.
    """
    if a == b:
        return True
    if a.denominator == 1 and b.denominator == 1:
        return False
    try:
        fa, fb = float(a), float(b)
    except OverflowError:
        return False
    return math.isclose(fa, fb, rel_tol=1e-6) or f"{fa:.6g}" == f"{fb:.6g}"


def _is_mathy(key: str) -> bool:
    """Whether math-verify could say anything useful: not empty, a word, or a date."""
    return bool(key) and not _WORD.fullmatch(key) and not _DATE.fullmatch(key)



def _keys_equivalent(a: str, b: str) -> bool:
    """Equivalence of two canonical keys (tiers 1-3 of the module docstring)."""
    if a == b:
        return True
    if _DATE.fullmatch(a) or _DATE.fullmatch(b):
        # Dates are equal only as dates (zero-padded keys), never as numbers: math-verify
        # reads "05/01/2021" as 5/1/2021 = 5/2021, the value of "10/02/2021" too.
        return False
    va, vb = _key_value(a), _key_value(b)
    if va is not None and vb is not None:
        return _numbers_equal(va, vb)
    if not (_is_mathy(a) and _is_mathy(b)):
        return False
    return _mv_equal(a, b) if a <= b else _mv_equal(b, a)


def equivalent(a: str, b: str) -> bool:
    """Whether two answers are the same: equal keys, close numbers, or math-verify says so.

    Numbers match when exactly equal or, unless both are integers, when they agree within a
    relative 1e-6 or to 6 significant digits ("18" == "18.00", "1/3" == "0.333333"). LaTeX and
    symbolic answers ("\\frac{1}{2}" vs "0.5" is already numeric; "\\sqrt{12}" vs
    "2\\sqrt{3}") go to math-verify's LaTeX parser. Never raises on odd input and never executes
    model output.
    """
    try:
        return _keys_equivalent(canonical(a), canonical(b))
    except Exception:  # equivalence is a judgement; odd input is simply "not equivalent"
        return False


def is_correct(answer: str | None, gold: str | None) -> bool:
    """Whether `answer` matches the reference `gold`; a missing answer or gold is never correct."""
    if answer is None or gold is None:
        return False
    return equivalent(answer, gold)
