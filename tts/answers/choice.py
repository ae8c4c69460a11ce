"""Multiple-choice questions (MMLU-style "A. ..." option lines): which letters a prompt offers,
and the chosen letter in a model's text.

A prompt is multiple-choice when it lists at least two consecutive options, one per line, as
"A. text" (or "A) text", "(A) text"), starting at A. The answer is a letter among them:
either the text's first token (the MMLU evaluation convention: the letter is the first
generated token) or the letter `extract_answer` finds after an answer cue.
"""

from __future__ import annotations

import re

from tts.answers.extract import extract_answer

__all__ = ["choice_letters", "extract_choice"]

_OPTION = re.compile(r"^\s*\(?(?P<l>[A-Z])[.)]\s+\S", re.MULTILINE)
_FIRST = re.compile(r"\s*\(?(?P<l>[A-Z])(?:[.):,]|\s|$)")


def choice_letters(prompt: str) -> tuple[str, ...]:
    """The option letters a prompt lists (("A", "B", "C", "D") for MMLU), or () when it lists
    fewer than two options starting at A."""
    if not isinstance(prompt, str):
        return ()
    found = [m["l"] for m in _OPTION.finditer(prompt)]
    letters: list[str] = []
    for letter in found:
        if letter == chr(ord("A") + len(letters)):
            letters.append(letter)
        elif letter == "A":  # a second option list restarts (few-shot examples): keep the last
            letters = ["A"]
    return tuple(letters) if len(letters) >= 2 else ()


def extract_choice(text: str | None,
                   letters: tuple[str, ...] = ("A", "B", "C", "D")) -> str | None:
    """The option letter a model chose, or None: the first token when it is one of `letters`,
    else a letter given after an answer cue ("The answer is (C)")."""
    if not isinstance(text, str) or not text.strip():
        return None
    m = _FIRST.match(text)
    if m is not None and m["l"] in letters:
        return m["l"]
    answer = extract_answer(text)
    return answer if answer in letters else None
