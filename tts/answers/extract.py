"""Pulling the final answer out of model text (`extract_answer`), and the answer patterns and
cleaners that canonical keys (`tts.answers.equivalence`) share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# ---------------------------------------------------------------------------------------------
# Shared patterns

_MINUS = "-\u2212"  # ASCII hyphen-minus and the Unicode minus sign models sometimes print
_NUMBER_BODY = r"(?:\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
"""Digits with optional thousands separators and decimals; "1,2345" is not a grouped number."""

# A number at the start of a span: sign, currency, digits, optional fraction or percent.
_LEADING_NUMBER = re.compile(
    rf"""
    (?P<sign>[{_MINUS}+]?)\s*
    (?:\\?\$|€|£)?\s*
    (?P<sign2>[{_MINUS}]?)
    (?P<num>{_NUMBER_BODY})
    (?:\s*/\s*(?P<den>\d+)(?!\.?\d))?
    (?:\s*\\?%)?
    """,
    re.VERBOSE,
)
_DATE = re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})(?!\d)")

# The fallback: any number (or date, or simple fraction) anywhere in the text. A minus sign
# counts only where it cannot be a binary minus ("16-7" is not -7).
_ANY_NUMBER = re.compile(
    rf"""
    (?P<date>(?<!\d)\d{{1,2}}/\d{{1,2}}/\d{{4}}(?!\d))
    |
    (?P<sign>(?<![\w)\]}}])[{_MINUS}])?
    (?:\\?\$|€|£)?
    (?<![\d.,])(?P<num>{_NUMBER_BODY})
    (?:/(?P<den>\d+)(?!\.?\d))?
    """,
    re.VERBOSE,
)

# Cues that introduce a final answer. Positions matter: the last cue in the text wins.
_ANSWER_CUE = re.compile(
    r"\banswers?\b\**\s*"
    r"(?:(?:is|would\s+be|should\s+be|will\s+be|must\s+be)\b\s*:?|:|=)\s*\**",
    re.IGNORECASE,
)
_ANS_ASSIGN = re.compile(r"\bans\s*=\s*")  # MoT logs: "ans = 18"
_HASHES = re.compile(r"####\s*")  # GSM8K: "#### 72"
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(?=\{)")
_BOXED_BARE = re.compile(r"\\boxed\s+(?P<tok>[^\s{$]+)")  # "\boxed 5"

_FILLER = re.compile(
    r"(?:(?:therefore|thus|so|then|simply|just|exactly|approximately|about|around|roughly)"
    r"\b[\s,:]*)+",
    re.IGNORECASE,
)
_MATH_DELIMITED = re.compile(
    r"\$(?P<a>\S(?:[^$\n]*?\S)?)\$|\\\((?P<b>.+?)\\\)|\\\[(?P<c>.+?)\\\]"
)
_CHOICE_PAREN = re.compile(r"\(\s*(?P<l>[A-Za-z])\s*\)")
_CHOICE_BARE = re.compile(r"(?P<l>[A-Z])(?=\s*$|[.,;:)!]|\s*\()")
_SENTENCE_END = re.compile(r"[.!?;,](?=\s|$)|\n|(?<=\S)\s+(?:because|since|as|which)\b")
_TRAILING_PUNCT = ".,;:!?"
_NOT_ANSWERS = frozenset(
    "correct incorrect right wrong not as below above clear obvious unclear given shown that "
    "this simple easy follows straightforward".split()
)
"""First words after "answer is" that judge or point elsewhere instead of giving an answer."""
_SHORT_TEXT_WORDS = 4
"""A cue followed by at most this many words (and no digits) is taken as a textual answer."""
_UNIT_WORDS = 4
"""Words allowed after a cued number ("$1,200 per month") before it reads as a sentence."""


def _clean_number(match: re.Match[str]) -> str:
    """Number text without separators, currency or percent sign: "-$1,200.50" -> "-1200.50"."""
    negative = bool(match.group("sign")) and match.group("sign") in _MINUS
    negative ^= bool(match.groupdict().get("sign2"))
    text = match.group("num").replace(",", "")
    if text.startswith("."):
        text = "0" + text
    if match.group("den"):
        text = f"{text}/{match.group('den')}"
    return f"-{text}" if negative else text


def _date(match: re.Match[str]) -> str:
    return f"{int(match['m']):02d}/{int(match['d']):02d}/{match['y']}"


# ---------------------------------------------------------------------------------------------
# Extraction


def _balanced(text: str, open_at: int) -> tuple[str, int] | None:
    """Content of the brace group opening at `open_at` and the index past it; None if unclosed."""
    depth = 0
    for i in range(open_at, len(text)):
        char = text[i]
        escaped = i > 0 and text[i - 1] == "\\"  # \{ and \} are set braces, not groups
        if char == "{" and not escaped:
            depth += 1
        elif char == "}" and not escaped:
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i], i + 1
    return None


_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|boxed|fbox)\s*(?=\{)")


def _unwrap(answer: str) -> str:
    """Strip surrounding whitespace, `$`, `\\(...\\)` and whole-answer `\\text{}`-like wrappers."""
    previous = None
    s = answer
    while s != previous:
        previous = s
        s = s.strip().rstrip(_TRAILING_PUNCT).strip()
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s.strip("$")
        elif s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2]
        elif s.startswith("\\[") and s.endswith("\\]"):
            s = s[2:-2]
        elif s.startswith("**") and s.endswith("**"):
            s = s[2:-2]
        elif (m := _WRAPPERS.match(s)) is not None:
            inner = _balanced(s, m.end())
            if inner is not None and inner[1] == len(s):
                s = inner[0]
    return s


_PLACEHOLDERS = {"answer", "your answer", "final answer", "...", "…", "x"}
"""Boxed text that echoes a prompt's template instead of answering."""


def _clean_math(content: str) -> str | None:
    """Boxed or math-delimited content as an answer: plain numbers cleaned, LaTeX kept."""
    s = _unwrap(content)
    if not s or s.strip(" .").lower() in _PLACEHOLDERS:
        return None
    lhs, eq, rhs = s.rpartition("=")
    arithmetic = re.sub(r"\\(?:times|cdot|div|[dt]?frac|left|right)", " ", lhs)
    if eq and re.fullmatch(r"[\d\s+\-*/×÷().,^{}\\a-z]*", arithmetic) \
            and not re.search(r"[a-z]{2}", arithmetic) \
            and (m := _LEADING_NUMBER.fullmatch(rhs.strip())) is not None:
        return _clean_number(m)  # arithmetic shown in the box: "160 + 80 + 20 = 260"
    if (m := _CHOICE_PAREN.fullmatch(s)) or (m := re.fullmatch(r"(?P<l>[A-Z])", s)):
        return m["l"].upper()
    if (m := _DATE.fullmatch(s)) is not None:
        return _date(m)
    # A number, possibly with a currency sign, percent or a unit ("18 \text{ dollars}").
    flat = re.sub(r"\\text\w*\s*\{([^{}]*)\}", r" \1", s).replace("\\ ", " ").strip()
    m = _LEADING_NUMBER.match(flat)
    if m is not None and re.fullmatch(r"(?:\s+[A-Za-z][A-Za-z.]+)*\s*", flat[m.end() :]):
        return _clean_number(m)
    return s


def _parse_span(span: str) -> str | None:
    """Answer that a cue ("The answer is", "####", "ans =") introduces, or None if unclear.

    The span is the rest of the cue's line. A number must be followed by at most a few unit
    words; otherwise the cue starts a sentence ("Answer: Janet uses 3 eggs ...") and is ignored.
    """
    s = span.strip().lstrip(":=*").strip()
    s = _FILLER.sub("", s, count=1) if _FILLER.match(s) else s
    if not s or s.startswith(("\\boxed", "\\fbox")):
        return None  # a boxed answer is its own, later candidate
    if (m := _MATH_DELIMITED.match(s)) is not None:
        return _clean_math(m["a"] or m["b"] or m["c"])
    if (m := _CHOICE_PAREN.match(s)) is not None:
        return m["l"].upper()
    if (m := _CHOICE_BARE.match(s)) is not None:
        return m["l"]
    if re.fullmatch(r"[a-z][.!]?", s):  # "answer: c"
        return s[0].upper()
    if (m := _DATE.match(s)) is not None:
        return _date(m)
    if (m := _LEADING_NUMBER.match(s)) is not None:
        end = _SENTENCE_END.search(s, m.end())
        rest = s[m.end() : end.start() if end else len(s)]
        if "=" in rest:  # "3 + 4 = 7": the value after the last "=" is the answer
            after = rest.rsplit("=", 1)[1]
            m2 = _LEADING_NUMBER.match(after.strip().strip("$").strip())
            return _clean_number(m2) if m2 is not None else None
        rest = rest.replace("\\%", "").replace("$", "")
        if re.search(r"\d", rest) or len(rest.split()) > _UNIT_WORDS:
            return None
        return _clean_number(m)
    return None


def _parse_text_span(span: str) -> str | None:
    """A short textual answer after a cue ("The answer is yes."), or None.

    Words that judge rather than answer ("our answer is correct") are refused.
    """
    s = span.strip().lstrip(":=*").strip()
    end = _SENTENCE_END.search(s)
    text = s[: end.start() if end else len(s)].strip().strip("*").rstrip(_TRAILING_PUNCT)
    words = text.split()
    if not words or len(words) > _SHORT_TEXT_WORDS or re.search(r"\d", text):
        return None
    if words[0].lower() in _NOT_ANSWERS or text.startswith(("\\boxed", "\\fbox")):
        return None
    return text


def _line(text: str, start: int) -> str:
    end = text.find("\n", start)
    return text[start : end if end >= 0 else len(text)]


_BOXED_RANK, _CUE_RANK, _TEXT_RANK = 3, 2, 1


def _cued_candidates(text: str) -> Iterable[tuple[int, int, str | None]]:
    """(rank, position, answer) for every cue in the text; answer None when unparseable.

    A boxed answer outranks the other cues: in math solutions "answer" also turns up in
    checks after the box ("We may check our answer: $17 \\cdot 44 = 748$"). Textual answers
    after "the answer is" rank lowest, so they only count when no boxed, numeric, letter, date
    or LaTeX answer is cued anywhere.
    """
    for m in _BOXED.finditer(text):
        inner = _balanced(text, m.end())
        yield _BOXED_RANK, m.start(), _clean_math(inner[0]) if inner else None
    for m in _BOXED_BARE.finditer(text):
        yield _BOXED_RANK, m.start(), _clean_math(m["tok"])
    for pattern in (_HASHES, _ANS_ASSIGN, _ANSWER_CUE):
        for m in pattern.finditer(text):
            span = _line(text, m.end())
            answer = _parse_span(span)
            if answer is not None:
                yield _CUE_RANK, m.start(), answer
            elif pattern is _ANSWER_CUE:
                yield _TEXT_RANK, m.start(), _parse_text_span(span)


def extract_answer(text: str) -> str | None:
    """Final answer in model text, or None (the sample abstains).

    Cues: `\\boxed{...}` / `\\fbox{...}` (nested braces allowed; the last box wins over every
    other cue), then GSM8K's `#### 72`, the MoT logs' `ans = 18`, "The answer is ...",
    "Answer: ...", "the final answer is ..." (the last of these wins). Numbers come back
    without thousands separators, currency or percent signs ("$1,200 per month" -> "1200"),
    multiple-choice letters upper-cased, dates as MM/DD/YYYY, and LaTeX (fractions, tuples) as
    written. With no usable cue the last number in the text is the answer (the GSM8K
    convention); text with neither gives None.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    best: tuple[int, int, str] | None = None  # (rank, position, answer): the max wins
    for rank, position, answer in _cued_candidates(text):
        if answer and (best is None or (rank, position) > best[:2]):
            best = (rank, position, answer)
    if best is not None:
        return best[2]
    last = None
    for last in _ANY_NUMBER.finditer(text):
        pass
    if last is None:
        return None
    if last["date"]:
        return _date(_DATE.fullmatch(last["date"]))  # type: ignore[arg-type]
    return _clean_number(last)
