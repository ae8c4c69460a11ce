"""Final answers: pull them out of model text, decide when two are the same, count votes.

Majority voting and agreement-based escalation both rest on one question: do two samples give
the same answer? Answers arrive in many spellings ("1,000", "$1000.00", "\\boxed{1000}"), so
this module works in three tiers, cheapest first:

1. `canonical` maps an answer to a normalised key (numbers to an exact decimal string, choice
   letters upper-cased, dates zero-padded). Equal keys mean equivalent answers.
2. Two keys that are both plain numbers are compared with a relative tolerance of 1e-6.
3. Everything else that looks mathematical goes to math-verify (LaTeX parsed with sympy),
   with parses and verdicts cached, because it costs milliseconds per call.

Only math-verify's LaTeX parser is used: its plain-expression parser goes through
`sympy.parse_expr`, which evaluates Python, and model output must never be executed.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

__all__ = [
    "Votes",
    "WeightedVotes",
    "canonical",
    "class_ids",
    "count_votes",
    "count_weighted_votes",
    "equivalent",
    "extract_answer",
    "is_correct",
]

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


_MV_MAX_CHARS = 500
"""Longer answers skip math-verify: sympy time grows fast with size, and voting calls it often."""


_MV_SECONDS = 5.0
"""Time one math-verify comparison (parsing both answers and verifying) may take."""
_MV_START_SECONDS = 120.0
"""Time the math-verify process may take to import sympy and math-verify."""

# The math-verify process: reads JSON lines [a, b], answers "1" or "0" per line. math-verify's
# own timeouts are off (they call signal.alarm); the parent's deadline replaces them.
_MV_SERVER = r"""
import json, signal, sys
from functools import lru_cache
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
import math_verify.grader, math_verify.parser
from math_verify import LatexExtractionConfig, parse, verify
math_verify.grader.TIMEOUT_WARNING_SHOWN = math_verify.parser.TIMEOUT_WARNING_SHOWN = True

@lru_cache(maxsize=1 << 12)
def parsed(key):
    try:
        return tuple(parse("$" + key + "$", [LatexExtractionConfig()], parsing_timeout=None))
    except Exception:
        return ()

def equal(a, b):
    pa, pb = parsed(a), parsed(b)
    if not pa or not pb:
        return False
    try:
        return bool(verify(list(pa), list(pb), timeout_seconds=None))
    except Exception:
        return False

sys.stdout.write("ready\n")
sys.stdout.flush()
for line in sys.stdin:
    a, b = json.loads(line)
    sys.stdout.write("1\n" if equal(a, b) else "0\n")
    sys.stdout.flush()
"""


class _MVProcess:
    """math-verify in a child process, so comparisons never touch the caller's signals.

    math-verify's timeout calls `signal.alarm` and swaps the SIGALRM handler, which cancels an
    alarm the host program set (and works only on the main thread). A thread with a deadline
    is no substitute: sympy can sit in one long big-integer operation holding the GIL. So the
    comparisons run in one long-lived child process, started on first use; the caller waits at
    most `_MV_SECONDS` for each verdict (in `select`, no signals), and a child that overruns is
    killed (the comparison counts as "not equivalent") and restarted on the next call. If the
    child cannot start, math-verify is skipped: LaTeX answers then match only by their keys.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Any = None
        self._buffer = b""
        self.broken: str | None = None
        """Why the process could not start (then every comparison is "not equivalent")."""
        self.restarts = 0
        import atexit
        import os

        if hasattr(os, "register_at_fork"):  # a forked child must not share our pipes
            os.register_at_fork(after_in_child=self._forget)
        atexit.register(self._stop)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._proc, self._buffer = None, b""

    def equal(self, a: str, b: str) -> bool:
        import json

        with self._lock:
            if self.broken is not None:
                return False
            if self._proc is None and not self._start():
                return False
            try:
                self._proc.stdin.write(json.dumps([a, b]).encode() + b"\n")
                self._proc.stdin.flush()
                line = self._readline(_MV_SECONDS)
            except OSError:
                line = None
            if line is None:  # overran (or died): kill it, a fresh one serves the next call
                self._stop()
                self.restarts += 1
                return False
            return line == b"1"

    def _start(self) -> bool:
        import subprocess
        import sys

        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _MV_SERVER],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
        except OSError as exc:
            self.broken = f"cannot start {sys.executable}: {exc}"
            return False
        self._buffer = b""
        if self._readline(_MV_START_SECONDS) != b"ready":
            self._stop()
            self.broken = "the math-verify process did not start (is math-verify installed?)"
            return False
        return True

    def _readline(self, seconds: float) -> bytes | None:
        import os
        import select
        import time

        deadline = time.monotonic() + seconds
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ready, _, _ = select.select([fd], [], [], left)
            except InterruptedError:  # a host signal handler ran; keep waiting
                continue
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:  # the process died
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.strip()

    def _stop(self) -> None:
        proc, self._proc, self._buffer = self._proc, None, b""
        if proc is None:
            return
        try:
            proc.kill()
            proc.wait(timeout=10)
        except Exception:  # already gone
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except Exception:
                pass


_MV = _MVProcess()


@lru_cache(maxsize=1 << 14)
def _mv_equal(a: str, b: str) -> bool:
    """math-verify's verdict on two LaTeX answers, within `_MV_SECONDS` (`_MVProcess`)."""
    if len(a) > _MV_MAX_CHARS or len(b) > _MV_MAX_CHARS:
        return False
    return _MV.equal(a, b)


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


# ---------------------------------------------------------------------------------------------
# Votes


def _classes(answers: Iterable[Any]) -> tuple[list[int], list[str]]:
    """Class id per answer (-1 for None) and each class's first-seen member.

    An answer joins the first earlier class whose representative it is equivalent to. Keys seen
    before reuse their class, so each distinct key is compared at most once per class.
    """
    ids: list[int] = []
    reps: list[str] = []
    rep_keys: list[str] = []
    key_class: dict[str, int] = {}
    for answer in answers:
        if answer is None:
            ids.append(-1)
            continue
        if not isinstance(answer, str):
            answer = str(answer)
        key = canonical(answer)
        cid = key_class.get(key)
        if cid is None:
            cid = next(
                (i for i, rep_key in enumerate(rep_keys) if _keys_equivalent(key, rep_key)),
                len(reps),
            )
            if cid == len(reps):
                reps.append(answer)
                rep_keys.append(key)
            key_class[key] = cid
        ids.append(cid)
    return ids, reps


@dataclass(frozen=True, slots=True)
class Votes:
    """Tally of answers over equivalence classes."""

    counts: tuple[tuple[str, int], ...]
    """(representative answer = first-seen member, count), by count descending; ties keep the
    class seen first in front."""
    abstained: int = 0
    """Samples with no answer (None)."""

    @property
    def leader(self) -> str | None:
        """The winning answer, or None when every sample abstained."""
        return self.counts[0][0] if self.counts else None

    @property
    def top(self) -> int:
        """Votes for the leader."""
        return self.counts[0][1] if self.counts else 0

    @property
    def runner_up(self) -> int:
        """Votes for the second class (0 if there is none)."""
        return self.counts[1][1] if len(self.counts) > 1 else 0

    @property
    def total(self) -> int:
        """Non-abstaining samples."""
        return sum(count for _, count in self.counts)

    @property
    def agreement(self) -> float:
        """Share of answering samples that back the leader (0.0 with no answers)."""
        total = self.total
        return self.top / total if total else 0.0

    @property
    def distinct(self) -> int:
        """Number of equivalence classes."""
        return len(self.counts)

    @property
    def entropy(self) -> float:
        """Natural-log entropy of the class distribution (0.0 with no answers)."""
        total = self.total
        if not total:
            return 0.0
        return -sum(c / total * math.log(c / total) for _, c in self.counts if c)

    def as_dict(self) -> dict[str, int]:
        """{representative: count}, in `counts` order."""
        return dict(self.counts)


def count_votes(answers: Iterable[str | None]) -> Votes:
    """Group answers into equivalence classes and tally them.

    Equal canonical keys share a class without further work; differing keys that are both
    plain numbers are compared with the numeric tolerance; only the rest reach math-verify.
    """
    ids, reps = _classes(answers)
    tally = [0] * len(reps)
    for cid in ids:
        if cid >= 0:
            tally[cid] += 1
    order = sorted(range(len(reps)), key=lambda i: -tally[i])  # stable: ties stay first-seen
    return Votes(
        counts=tuple((reps[i], tally[i]) for i in order), abstained=ids.count(-1)
    )


def kept_count(keep: float, n: int) -> int:
    """How many of `n` answering samples a `keep` filter keeps: ceil(keep * n), at least one
    when n >= 1. Float noise is forgiven (0.14 of 50 keeps 7, although 0.14 * 50 > 7 in floats)."""
    if n <= 0:
        return 0
    return max(1, math.ceil(keep * n - 1e-9))


@dataclass(frozen=True, slots=True)
class WeightedVotes:
    """A confidence-weighted, optionally filtered tally (`count_weighted_votes`)."""

    votes: Votes
    """Sample counts of the classes that voted, leader first: classes are ordered by summed
    weight, descending, ties keeping the class seen first (so `votes.leader` is the weighted
    leader, `votes.top` its sample count, `votes.agreement` its share of the counted samples)."""
    weights: tuple[float, ...]
    """Summed weight of each class, in `votes.counts` order."""
    total_weight: float
    """Summed weight of every counted sample, added in draw order."""
    dropped: int = 0
    """Answering samples the `keep` filter left out."""

    @property
    def leader(self) -> str | None:
        return self.votes.leader

    @property
    def top_weight(self) -> float:
        return self.weights[0] if self.weights else 0.0

    @property
    def runner_up_weight(self) -> float:
        return self.weights[1] if len(self.weights) > 1 else 0.0

    def effective_counts(self) -> tuple[float, float]:
        """(leader, runner-up) weights rescaled to sample counts: each times n / total_weight,
        n the counted samples. The Beta stop test then sees as many votes as were counted,
        split between the two classes as their confidence says (weights of 1 give the plain
        counts). (0.0, 0.0) when nothing was counted or every weight is 0."""
        n, total = self.votes.total, self.total_weight
        if not total > 0:
            return 0.0, 0.0
        return self.top_weight * n / total, self.runner_up_weight * n / total


def count_weighted_votes(answers: Sequence[str | None], confidences: Sequence[float | None], *,
                         weighted: bool = True, keep: float = 1.0) -> WeightedVotes:
    """Tally answers with one confidence per sample (DeepConf, Fu et al. 2025).

    `keep` < 1 first keeps only the `kept_count(keep, n)` most confident of the n answering
    samples (ties by sample order); `weighted` makes each kept sample count its confidence
    instead of 1. Weights are summed one sample at a time in draw order (never `sum()`, which
    compensates rounding), so `tts.evaluate` reproduces the floats exactly. Samples without an
    answer abstain and need no confidence; an answering sample without one is a ValueError
    (callers name the option and the model first).
    """
    if len(confidences) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(confidences)} confidences.")
    voting = [i for i, a in enumerate(answers) if a is not None]
    if weighted or keep < 1.0:
        for i in voting:
            if confidences[i] is None:
                raise ValueError(f"sample {i} has an answer but no confidence.")
    counted = voting
    if keep < 1.0:
        ranked = sorted(voting, key=lambda i: -confidences[i])  # type: ignore[operator]
        counted = sorted(ranked[:kept_count(keep, len(voting))])  # stable: ties by order
    ids, reps = _classes(answers[i] for i in counted)
    tally = [0.0] * len(reps)
    sizes = [0] * len(reps)
    total = 0.0
    for cid, i in zip(ids, counted):
        w = float(confidences[i]) if weighted else 1.0  # type: ignore[arg-type]
        tally[cid] = tally[cid] + w
        sizes[cid] += 1
        total = total + w
    order = sorted(range(len(reps)), key=lambda c: -tally[c])  # stable: ties stay first-seen
    votes = Votes(counts=tuple((reps[c], sizes[c]) for c in order),
                  abstained=len(answers) - len(voting))
    return WeightedVotes(votes, tuple(tally[c] for c in order), total,
                         dropped=len(voting) - len(counted))


def class_ids(answers: Sequence[str | None]) -> list[int]:
    """Equivalence-class id per answer (-1 for None), numbered by first appearance.

    Lets callers precompute vote arrays once and tally any subset of samples with numpy.
    """
    return _classes(answers)[0]
