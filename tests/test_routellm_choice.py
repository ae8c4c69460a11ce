"""Multiple-choice prompts: their option letters and the letter a model chose."""

from __future__ import annotations

import pytest

from tts.answers import choice_letters, extract_choice

MMLU = "Which gas do plants absorb?\nA. Oxygen\nB. Carbon dioxide\nC. Helium\nD. Argon\nAnswer:"


def test_option_letters() -> None:
    assert choice_letters(MMLU) == ("A", "B", "C", "D")
    assert choice_letters("Pick one:\n(A) yes\n(B) no") == ("A", "B")
    assert choice_letters("A. only one option") == ()
    assert choice_letters("How many apples are left?") == ()
    assert choice_letters("B. starts late\nC. wrong") == ()
    few_shot = "Q1\nA. a\nB. b\nC. c\nAnswer: A\n\nQ2\nA. x\nB. y\nAnswer:"
    assert choice_letters(few_shot) == ("A", "B")


@pytest.mark.parametrize("text, letter", [
    (" B", "B"), ("C. Helium", "C"), ("(D) Argon", "D"), ("A", "A"),
    ("Plants take in carbon dioxide, so the answer is (B).", "B"),
    ("The answer is E.", None), ("I am not sure.", None), ("", None), (None, None),
])
def test_extract_choice(text, letter) -> None:
    assert extract_choice(text, ("A", "B", "C", "D")) == letter
