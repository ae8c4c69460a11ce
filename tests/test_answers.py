"""Tests for tts.answers: extraction, canonical keys, equivalence and vote counting."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tts.answers import (
    Votes,
    canonical,
    class_ids,
    count_votes,
    equivalent,
    extract_answer,
    is_correct,
)

DATA = Path(__file__).parents[1] / ".." / "shared" / "data"
MOT_GREEDY_COT1 = DATA / "mot_gsm8k" / "GPT4_result" / "gsm_greedy_cot1.json"


# ---------------------------------------------------------------------------------------------
# extract_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # \boxed and \fbox, nested braces, the last box wins
        (r"So the result is \boxed{18}.", "18"),
        (r"\fbox{42}", "42"),
        (r"so $\boxed{\frac{3}{4}}$", r"\frac{3}{4}"),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"first \boxed{1}, corrected: \boxed{2}.", "2"),
        (r"\boxed{\$1,200}", "1200"),
        (r"\boxed{45\%}", "45"),
        (r"\boxed{18 \text{ dollars}}", "18"),
        (r"\boxed{\text{(B)}}", "B"),
        (r"\boxed{x^2 + 1}", "x^2 + 1"),
        (
            r"Thus $17^{-1} \equiv \boxed{44} \pmod{83}$. We may check our answer: $17 \cdot 44$",
            "44",
        ),
        # GSM8K
        ("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18", "18"),
        ("#### 1,234", "1234"),
        ("#### -15\n\n(Note: The answer is negative because ...)", "-15"),
        # MoT logs
        ("Answer: Janet has 16-7=<<16-7=9>>9 eggs.\nans = 18", "18"),
        ("ans=18.5", "18.5"),
        ("ans = -3", "-3"),
        ("ans = 57,500", "57500"),
        # answer phrases
        ("The answer is: 42", "42"),
        ("the final answer is $1,234.50.", "1234.50"),
        ("Answer: 12", "12"),
        ("**Answer:** 12", "12"),
        ("The final answer is 18. I hope it is correct.", "18"),
        ("The answer is $1,200 per month.", "1200"),
        ("The answer is 45%.", "45"),
        ("The answer is −7.", "-7"),
        ("The answer is .5", "0.5"),
        ("The answer is 3 + 4 = 7.", "7"),
        ("The answer is therefore 42.", "42"),
        ("The answer is 42 because 6 times 7 is 42.", "42"),
        (r"The answer is $\frac{3}{4}$.", r"\frac{3}{4}"),
        ("The answer is 3/4.", "3/4"),
        ("The answer is yes.", "yes"),
        ("The answer is 12. Earlier I thought the answer is 10, but no.", "10"),
        # multiple choice
        ("The answer is (B)", "B"),
        ("The answer is (b).", "B"),
        ("answer: C", "C"),
        ("answer: c", "C"),
        ("So the answer is A.", "A"),
        # dates
        ("The answer is 05/01/2021", "05/01/2021"),
        ("The answer is 5/1/2021.", "05/01/2021"),
        # no cue: the last number
        ("It costs $1,200 per month", "1200"),
        ("About 45% of people agree", "45"),
        ("The temperature dropped to -5 degrees", "-5"),
        ("16-7=9", "9"),
        ("She has 3/4 of the pie left", "3/4"),
        ("The price went from 2.50 to 3.75.", "3.75"),
        ("The meeting moved to 12/25/2020.", "12/25/2020"),
        # a cue followed by a sentence is not an answer: fall back to the last number
        ("Answer: Janet uses 3 eggs and sells 9 for $18", "18"),
        ("The answer is a total of 5 apples", "5"),
    ],
)
def test_extract_answer(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\n\t", "no numbers here", "The answer is not obvious from this text at all.",
     "Our answer is correct."],
)
def test_extract_answer_abstains(text: str) -> None:
    assert extract_answer(text) is None


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_extract_answer_never_raises(text: str) -> None:
    answer = extract_answer(text)
    assert answer is None or (isinstance(answer, str) and answer)


# ---------------------------------------------------------------------------------------------
# canonical


@pytest.mark.parametrize(
    ("answer", "key"),
    [
        ("1,000", "1000"),
        ("$18.00", "18"),
        (r"\$18", "18"),
        ("18.0", "18"),
        ("-0.50", "-0.5"),
        ("-0", "0"),
        (".5", "0.5"),
        ("45%", "45"),
        (r"45\%", "45"),
        ("1e-3", "0.001"),
        ("3/4", "0.75"),
        (r"\frac{3}{4}", "0.75"),
        (r"\dfrac{3}{4}", "0.75"),
        (r"-\frac{1}{2}", "-0.5"),
        ("2/6", "1/3"),
        (r"\frac{1}{3}", "1/3"),
        ("10{,}000", "10000"),
        (" $42$ ", "42"),
        ("42.", "42"),
        (r"\boxed{42}", "42"),
        ("(b)", "B"),
        ("B", "B"),
        ("5/1/2021", "05/01/2021"),
        ("05/01/2021", "05/01/2021"),
        (r"\text{yes}.", "yes"),
        (r"\textbf{Paris}", "Paris"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"( 3, \frac{\pi}{2} )"),
        ("x  +  1", "x + 1"),
    ],
)
def test_canonical(answer: str, key: str) -> None:
    assert canonical(answer) == key


# ---------------------------------------------------------------------------------------------
# equivalent / is_correct


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("18", "18.0"),
        ("18", "18.00"),
        ("$1,000", "1000"),
        ("0.5", "1/2"),
        ("0.5", r"\frac{1}{2}"),
        ("1/3", "0.333333"),
        ("1/3", "0.3333333333"),
        ("2.0000001", "2"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\pi/2)"),
        (r"\sqrt{12}", r"2\sqrt{3}"),
        (r"\sqrt{4}", "2"),
        ("x+1", "1+x"),
        ("(B)", "b"),
        ("5/1/2021", "05/01/2021"),
        (r"\text{yes}", "yes"),
    ],
)
def test_equivalent(a: str, b: str) -> None:
    assert equivalent(a, b)
    assert equivalent(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("18", "19"),
        ("1234567", "1234568"),  # distinct integers never match, however close
        ("0.5", "0.6"),
        ("B", "C"),
        ("yes", "sey"),  # words are strings, not products of symbols
        ("05/01/2021", "01/05/2021"),
        ("05/01/2021", "0.00247"),  # a date is not a division
        (r"\frac{1}{2}", r"\frac{1}{3}"),
        ("x+1", "x-1"),
        ("18", ""),
        ("}}{{", r"\frac{"),
        ("__import__('os').system('true')", "0"),
    ],
)
def test_not_equivalent(a: str, b: str) -> None:
    assert not equivalent(a, b)
    assert not equivalent(b, a)


@pytest.mark.parametrize(("a", "b"), [("05/01/2021", "10/02/2021"), ("05/01/2021", "5/2021"),
                                      ("12/31/1899", "0.000203842")])
def test_dates_equal_only_as_dates(a: str, b: str, monkeypatch) -> None:
    # math-verify alone calls these equal (5/1/2021 == 10/2/2021 == 5/2021 as arithmetic).
    import tts.answers.equivalence as answers

    monkeypatch.setattr(answers, "_is_mathy", lambda key: True)  # the date rule stands alone
    assert not answers._keys_equivalent(canonical(a), canonical(b))
    assert not equivalent(a, b) and not equivalent(b, a)
    assert equivalent("5/1/2021", "05/01/2021.") and is_correct("5/1/2021", "05/01/2021")
    assert count_votes(["05/01/2021", "10/02/2021", "5/1/2021"]).counts == (
        ("05/01/2021", 2), ("10/02/2021", 1))


@pytest.mark.parametrize("odd", [None, 18, 18.0, ["18"], "\x00", "$", "\\", "{" * 50, "1e999"])
def test_equivalent_never_raises(odd: object) -> None:
    assert isinstance(equivalent(odd, "18"), bool)  # type: ignore[arg-type]
    assert isinstance(equivalent("18", odd), bool)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("18", "18", True),
        ("18.0", "18", True),
        (r"\frac{1}{2}", "0.5", True),
        ("17", "18", False),
        (None, "18", False),
        ("18", None, False),
        (None, None, False),
    ],
)
def test_is_correct(answer: str | None, gold: str | None, expected: bool) -> None:
    assert is_correct(answer, gold) is expected


# ---------------------------------------------------------------------------------------------
# count_votes / class_ids


def test_count_votes_groups_equivalent_answers() -> None:
    votes = count_votes(["18", "18.0", "$18", "7", None, "7.00", "9"])
    assert votes.counts == (("18", 3), ("7", 2), ("9", 1))
    assert votes.abstained == 1
    assert votes.leader == "18"
    assert (votes.top, votes.runner_up, votes.total, votes.distinct) == (3, 2, 6, 3)
    assert votes.agreement == pytest.approx(0.5)
    expected_entropy = -sum(p * math.log(p) for p in (3 / 6, 2 / 6, 1 / 6))
    assert votes.entropy == pytest.approx(expected_entropy)
    assert votes.as_dict() == {"18": 3, "7": 2, "9": 1}


def test_count_votes_ties_go_to_first_seen() -> None:
    votes = count_votes(["7", "9", "9.0", "7.0", "3"])
    assert votes.counts == (("7", 2), ("9", 2), ("3", 1))
    assert votes.leader == "7"


def test_count_votes_uses_math_verify_for_latex() -> None:
    votes = count_votes([r"\frac{1}{2}", "0.5", r"\sqrt{4}", "2", "(b)", "B"])
    assert votes.counts == ((r"\frac{1}{2}", 2), (r"\sqrt{4}", 2), ("(b)", 2))


@pytest.mark.parametrize(
    ("answers", "leader", "top", "runner_up", "total", "agreement", "entropy"),
    [
        ([], None, 0, 0, 0, 0.0, 0.0),
        ([None, None], None, 0, 0, 0, 0.0, 0.0),
        (["5"], "5", 1, 0, 1, 1.0, 0.0),
        (["5", "5.0", None], "5", 2, 0, 2, 1.0, 0.0),
        (["1", "2"], "1", 1, 1, 2, 0.5, math.log(2)),
        (["1", "2", "3", "4"], "1", 1, 1, 4, 0.25, math.log(4)),
    ],
)
def test_vote_statistics(
    answers: list[str | None],
    leader: str | None,
    top: int,
    runner_up: int,
    total: int,
    agreement: float,
    entropy: float,
) -> None:
    votes = count_votes(answers)
    assert votes.leader == leader
    assert (votes.top, votes.runner_up, votes.total) == (top, runner_up, total)
    assert votes.agreement == pytest.approx(agreement)
    assert votes.entropy == pytest.approx(entropy)
    assert votes.abstained == answers.count(None)


def test_votes_is_frozen() -> None:
    votes = Votes(counts=(("1", 1),), abstained=0)
    with pytest.raises(AttributeError):
        votes.abstained = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("answers", "ids"),
    [
        ([], []),
        ([None], [-1]),
        (["1", None, "2", "1.0", r"\frac{4}{2}"], [0, -1, 1, 0, 1]),
        (["B", "(b)", "C", "yes", "YES"], [0, 0, 1, 2, 3]),
        ([r"\sqrt{4}", "2", "3"], [0, 0, 1]),
    ],
)
def test_class_ids(answers: list[str | None], ids: list[int]) -> None:
    assert class_ids(answers) == ids


def test_count_votes_never_asks_math_verify_about_plain_numbers(monkeypatch) -> None:
    """Numbers are compared exactly (fractions), never by math-verify, which is what keeps
    voting fast on numeric answers (the speed itself is measured in bench/, not here)."""
    import tts.answers.equivalence as eq

    calls = []
    monkeypatch.setattr(eq, "_mv_equal", lambda *a: calls.append(a) or False)
    eq.canonical.cache_clear()
    answers = ["18", "18.0", "$18", "17", "1,000", "20", "18", None, "17.5", "18"] * 2
    votes = count_votes(answers)
    assert votes.leader == "18" and votes.top == 10 and not calls


# A pool in which equivalence is transitive, so grouping cannot depend on order.
_POOL = [
    "18", "18.0", "$18", "1,000", "1000", "0.5", "1/2", r"\frac{1}{2}", "B", "(b)", "7",
    "-3", r"\sqrt{4}", "2", "x+1", "1+x", "yes", None,
]


@given(st.lists(st.sampled_from(_POOL), max_size=25), st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_count_votes_properties(answers: list[str | None], rng: object) -> None:
    votes = count_votes(answers)
    assert votes.total == sum(a is not None for a in answers)
    assert votes.abstained == answers.count(None)
    assert [c for _, c in votes.counts] == sorted((c for _, c in votes.counts), reverse=True)
    shuffled = list(answers)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert Counter(c for _, c in count_votes(shuffled).counts) == Counter(
        c for _, c in votes.counts
    )
    ids = class_ids(answers)
    assert [i == -1 for i in ids] == [a is None for a in answers]
    first_seen = list(dict.fromkeys(i for i in ids if i >= 0))
    assert first_seen == list(range(len(first_seen)))  # numbered by first appearance
    assert sorted(Counter(i for i in ids if i >= 0).values()) == sorted(
        c for _, c in votes.counts
    )


# ---------------------------------------------------------------------------------------------
# Real logged generations


@pytest.mark.shared_data
@pytest.mark.skipif(
    not MOT_GREEDY_COT1.exists(), reason=f"real MoT GSM8K logs not found at {MOT_GREEDY_COT1}"
)
def test_mot_gpt4_greedy_cot_logs() -> None:
    rows = json.loads(MOT_GREEDY_COT1.read_text())
    assert len(rows) == 300
    answers = [extract_answer(row["generated"][0]) for row in rows]
    agree = sum(
        a is not None and equivalent(a, str(row["prediction"])) for a, row in zip(answers, rows)
    )
    assert agree >= 295, f"extracted answers agree with stored predictions on {agree}/300 rows"
    accuracy = sum(is_correct(a, str(row["answer"])) for a, row in zip(answers, rows)) / 300
    assert accuracy == pytest.approx(0.970, abs=0.01)


@pytest.mark.parametrize("text, expected", [
    (r"so the total is \boxed{160 + 80 + 20 = 260}", "260"),
    (r"\boxed{3 \times 4 = 12}", "12"),
    (r"\boxed{x = 5}", "5"),
    (r"\boxed{y = 2x + 3}", "y = 2x + 3"),
    (r"The answer is: \boxed{ANSWER}", None),
])
def test_boxed_arithmetic_and_template_echo(text, expected):
    assert extract_answer(text) == expected
